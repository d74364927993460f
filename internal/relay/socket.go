package relay

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"time"
)

// maxDatagram is the largest datagram the relay forwards. Media stays
// under the path MTU; one byte more than the limit is read so an oversized
// datagram shows up as such instead of being forwarded truncated.
const maxDatagram = 4096

// read is the loop of one socket: read into a buffer reused for the life of
// the socket, decide, send from the other side's socket. It returns when
// the socket is closed.
func (c *Call) read(s *stream, side Side, comp component, conn *net.UDPConn) {
	defer c.readers.Done()
	m := c.r.m
	buf := make([]byte, maxDatagram+1)
	debug := c.log.Enabled(context.Background(), slog.LevelDebug)
	for {
		n, src, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient errors (e.g. ICMP reflected on some systems) must
			// not end the stream; a short pause keeps a persistent one
			// from spinning.
			c.log.Debug("relay read", "stream", s.index, "side", side, "error", err)
			time.Sleep(time.Millisecond)
			continue
		}
		now := time.Now()
		dst, oc, ok := c.judge(s, side, comp, buf[:n], src, now, debug)
		if !ok {
			continue
		}
		out := s.pairs[1-side].rtp
		if oc == compRTCP {
			out = s.pairs[1-side].rtcp
		}
		if _, err := out.WriteToUDPAddrPort(buf[:n], dst); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			m.sendErrors.Inc()
			if debug {
				c.log.Debug("relay send", "stream", s.index, "side", 1-side, "remote_addr", dst, "error", err)
			}
			continue
		}
		m.packets.Inc()
		m.bytes.Add(float64(n))
	}
}

// judge runs the forwarding rule on one datagram b from src arriving on
// side's socket comp, and does its bookkeeping (latch log, liveness, drop
// counters). ok: send b to dst from the other side's socket out.
func (c *Call) judge(s *stream, side Side, comp component, b []byte, src netip.AddrPort, now time.Time, debug bool) (dst netip.AddrPort, out component, ok bool) {
	var d decision
	if len(b) > maxDatagram {
		d.verdict = verdictMalformed
	} else {
		s.mu.Lock()
		d = s.decide(side, comp, b, src, now)
		if d.steady && c.r.kern != nil {
			c.toKernel(s, side, b)
		}
		s.mu.Unlock()
	}
	if d.latched {
		c.log.Debug("media latched", "stream", s.index, "side", side, "component", comp, "remote_addr", src)
	}
	if d.verdict == verdictForward || d.verdict == verdictNoPeer {
		// Media from the latched client keeps the call alive even
		// while the other side has no address yet.
		c.last.Store(now.UnixNano())
	}
	if d.verdict != verdictForward {
		c.r.m.drops[d.verdict].Inc()
		if debug {
			c.log.Debug("relay drop", "stream", s.index, "side", side, "component", comp, "remote_addr", src, "reason", d.verdict)
		}
		return netip.AddrPort{}, 0, false
	}
	return d.dst, d.out, true
}
