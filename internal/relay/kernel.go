package relay

import (
	"net/netip"
	"time"

	"github.com/z5vrs/z5/internal/kfwd"
)

// The kernel path (internal/kfwd) takes over a direction of a stream's
// RTP once the relay has decided everything about it: its source latched,
// the other side latched, RTP leaving by the RTP socket. From then on the
// kernel forwards that direction's RTP and counts it; RTCP, DTLS, ZRTP,
// strangers and anything unusual still reach the relay's sockets and its
// rules. Any new description of the stream takes the directions back (the
// next packet decides afresh), so the kernel never holds a decision the
// relay would no longer make.

// KernelForwarding reports whether the kernel path is loaded.
func (r *Relay) KernelForwarding() bool { return r.kern != nil }

// kernDir is one direction of a stream in the kernel, from side's client
// to the other side's: the flow as installed, zero when not installed.
type kernDir struct{ flow kfwd.Flow }

func (d kernDir) on() bool { return d.flow.At.IsValid() }

// kernFolded is what the kernel forwarded for a leg in directions already
// taken back.
type kernFolded struct {
	packets, bytes uint64
	lost           int64
	jitter, clock  uint32 // the last direction's jitter, RTP units
}

func (f *kernFolded) add(c kfwd.Counters) {
	f.packets += c.Packets
	f.bytes += c.Bytes
	f.lost += c.Lost
	if c.Clock != 0 && c.Packets > 0 {
		f.jitter, f.clock = c.Jitter, c.Clock
	}
}

// steady reports whether the direction from side, which just forwarded a
// packet of kind k that arrived on comp toward dst, may move to the
// kernel. The caller holds s.mu.
func (s *stream) steady(side Side, comp component, k kind, out component, dst netip.AddrPort) bool {
	y := &s.legs[1-side]
	return k == kindRTP && comp == compRTP && out == compRTP &&
		!s.kern[side].on() && y.ep[compRTP].latched == dst && dst.IsValid()
}

// toKernel installs the direction from side, whose RTP packet b just
// passed decide; a failure leaves it with the relay. The caller holds s.mu.
func (c *Call) toKernel(s *stream, side Side, b []byte) {
	kf := c.r.kern
	x, y := &s.legs[side], &s.legs[1-side]
	bind := c.r.cfg.Bind
	fl := kfwd.Flow{From: x.ep[compRTP].latched, At: netip.AddrPortFrom(bind, s.pairs[side].port)}
	pt := b[1] & 0x7f
	rt := kfwd.Route{
		From:  netip.AddrPortFrom(bind, s.pairs[1-side].port),
		To:    y.ep[compRTP].latched,
		PT:    pt,
		Clock: s.clockFor(pt),
	}
	if err := kf.Add(fl, rt); err != nil {
		c.log.Debug("relay kernel path refused", "stream", s.index, "side", side, "error", err)
		return
	}
	s.kern[side] = kernDir{flow: fl}
	c.r.m.kernelFlows.Inc()
	c.log.Debug("relay kernel path", "stream", s.index, "side", side, "remote_addr", fl.From, "peer_addr", rt.To)
}

// fromKernel takes every direction of s back from the kernel, keeping
// what it counted. The caller holds s.mu.
func (c *Call) fromKernel(s *stream) {
	for side := SideA; side <= SideB; side++ {
		d := &s.kern[side]
		if !d.on() {
			continue
		}
		if n, ok := c.r.kern.Remove(d.flow); ok {
			s.legs[side].kern.add(n)
			c.r.m.packets.Add(float64(n.Packets))
			c.r.m.bytes.Add(float64(n.Bytes))
			c.r.m.kernelPackets.Add(float64(n.Packets))
		}
		*d = kernDir{}
		c.r.m.kernelFlows.Dec()
	}
}

// kernLive reads what the kernel has counted so far on the direction from
// side; zero when the kernel does not hold it. The caller holds s.mu.
func (c *Call) kernLive(s *stream, side Side) kfwd.Counters {
	if !s.kern[side].on() {
		return kfwd.Counters{}
	}
	n, _ := c.r.kern.Read(s.kern[side].flow)
	return n
}

// kernLast is the time of the last packet the kernel forwarded for any of
// the call's streams; zero when none. The caller holds c.mu.
func (c *Call) kernLast() time.Time {
	var last time.Time
	if c.r.kern == nil {
		return last
	}
	for _, s := range c.streams {
		s.mu.Lock()
		for side := SideA; side <= SideB; side++ {
			if n := c.kernLive(s, side); n.Last.After(last) {
				last = n.Last
			}
		}
		s.mu.Unlock()
	}
	return last
}

// legStats adds the kernel's share to what the relay counted itself for
// side: packets, bytes, loss, and the kernel's jitter while it forwards
// the direction. The caller holds s.mu.
func (c *Call) legStats(s *stream, side Side, st *StreamStats) {
	x := &s.legs[side]
	live := c.kernLive(s, side)
	st.Packets += x.kern.packets + live.Packets
	st.Bytes += x.kern.bytes + live.Bytes
	st.Lost += x.kern.lost + live.Lost
	switch {
	case live.Clock != 0 && live.Packets > 0:
		st.JitterMS = float64(live.Jitter) / float64(live.Clock) * 1000
	case !x.rx.started && x.kern.clock != 0:
		st.JitterMS = float64(x.kern.jitter) / float64(x.kern.clock) * 1000
	}
}
