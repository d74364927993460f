package relay

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// readBatch is read with recvmmsg/sendmmsg (x/net ipv4 ReadBatch and
// WriteBatch; one datagram per call on systems without them): up to
// batchSize datagrams per system call each way.
func (c *Call) readBatch(s *stream, side Side, comp component, conn *net.UDPConn) {
	defer c.readers.Done()
	m := c.r.m
	in := newBatchConn(conn)
	outConns := [2]batchConn{newBatchConn(s.pairs[1-side].rtp), newBatchConn(s.pairs[1-side].rtcp)}
	msgs := make([]ipv4.Message, batchSize)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, maxDatagram+1)}
	}
	var (
		out  [2][]ipv4.Message
		bufs [2][][]byte
		dsts [2]*net.UDPAddr // last destination per socket: it rarely changes
	)
	for i := range out {
		out[i] = make([]ipv4.Message, 0, batchSize)
		bufs[i] = make([][]byte, batchSize)
	}
	udpAddr := func(oc int, ap netip.AddrPort) *net.UDPAddr {
		if a := dsts[oc]; a != nil && a.AddrPort() == ap {
			return a
		}
		dsts[oc] = net.UDPAddrFromAddrPort(ap)
		return dsts[oc]
	}
	for {
		n, err := in.ReadBatch(msgs, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(time.Millisecond)
			continue
		}
		now := time.Now()
		out[0], out[1] = out[0][:0], out[1][:0]
		alive := false
		s.mu.Lock()
		for i := range n {
			msg := &msgs[i]
			ua, ok := msg.Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			var d decision
			if msg.N > maxDatagram {
				d.verdict = verdictMalformed
			} else {
				d = s.decide(side, comp, msg.Buffers[0][:msg.N], ua.AddrPort(), now)
			}
			if d.latched {
				c.log.Debug("media latched", "stream", s.index, "side", side, "component", comp, "remote_addr", ua)
			}
			if d.verdict == verdictForward || d.verdict == verdictNoPeer {
				alive = true
			}
			if d.verdict != verdictForward {
				m.drops[d.verdict].Inc()
				continue
			}
			oc := int(d.out)
			j := len(out[oc])
			bufs[oc][j] = msg.Buffers[0][:msg.N]
			out[oc] = append(out[oc], ipv4.Message{Buffers: bufs[oc][j : j+1], Addr: udpAddr(oc, d.dst)})
		}
		s.mu.Unlock()
		if alive {
			c.last.Store(now.UnixNano())
		}
		for oc := range out {
			for ms := out[oc]; len(ms) > 0; {
				k, err := outConns[oc].WriteBatch(ms, 0)
				if err != nil {
					if errors.Is(err, net.ErrClosed) {
						return
					}
					m.sendErrors.Inc()
					k = max(k, 1) // skip the datagram that failed
				}
				for _, msg := range ms[:k] {
					m.packets.Inc()
					m.bytes.Add(float64(len(msg.Buffers[0])))
				}
				ms = ms[k:]
			}
		}
	}
}

const batchSize = 16

// batchConn is the common method set of x/net's ipv4 and ipv6 packet
// conns; both use the same Message type.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

func newBatchConn(c *net.UDPConn) batchConn {
	if la, ok := c.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() == nil {
		return ipv6.NewPacketConn(c)
	}
	return ipv4.NewPacketConn(c)
}
