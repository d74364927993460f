package relay

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Call is the relay state of one call: one stream per m-line.
type Call struct {
	r         *Relay
	owner     Owner // charged for every port the call binds
	id        string
	onTimeout func()
	log       *slog.Logger

	last    atomic.Int64   // UnixNano of the last accepted packet or SDP
	readers sync.WaitGroup // socket goroutines

	mu         sync.Mutex // guards the following
	streams    []*stream
	answered   bool
	answeredAt time.Time
	fired      bool // onTimeout has been scheduled
	closed     bool
	out        [2]sdpVersion // by side: the last description sent on its behalf
	charged    int           // ports charged to owner
}

// sdpVersion remembers what went out for one side, so the o= version
// moves exactly when the rewritten description changes (RFC 3264 section 8),
// whatever the client did with its own version.
type sdpVersion struct {
	set     bool
	body    []byte // rewritten with version 0
	version uint64
}

// stream is one m-line: a port pair per side.
type stream struct {
	index  int
	pairs  [2]pair    // by side; set once, before the readers start
	io     *streamIO  // the sockets, when a loop reads them; set once with pairs
	policy *dstPolicy // where media may go; the relay's, read-only

	mu      sync.Mutex // guards the following
	media   string
	enabled bool
	secure  bool
	clocks  map[uint8]uint32
	legs    [2]leg
	sdpPeer [2]netip.AddrPort // last valid SDP RTP address per side
	kern    [2]kernDir        // by side: its direction, when the kernel forwards it
}

func (s *stream) allocated() bool { return s.pairs[SideA].port != 0 }

// clockFor is the RTP clock rate of a payload type, defaulting by media.
func (s *stream) clockFor(pt uint8) uint32 {
	if c, ok := s.clocks[pt]; ok {
		return c
	}
	if s.media == "video" {
		return 90000
	}
	return 8000
}

// RewriteSDP records what side from's description says (its addresses are
// the side's initial peers, and only signalIP may latch the side) and
// returns the description to pass to the other side: anchored on the
// relay's ports facing that other side, ICE stripped, everything else kept.
// Streams match m-lines by index; new m-lines get ports (ErrNoPorts when the
// range is full), port-0 m-lines stay disabled. Errors wrap ErrBadSDP for a
// description the relay rejects, ErrNoPorts or ErrClosed.
func (c *Call) RewriteSDP(from Side, body []byte, signalIP netip.Addr) ([]byte, error) {
	if from != SideA && from != SideB {
		return nil, fmt.Errorf("relay: call %s: unknown side %d", c.id, int(from))
	}
	if !signalIP.IsValid() || signalIP.IsUnspecified() {
		return nil, fmt.Errorf("relay: call %s: %s signalling address %v cannot latch media", c.id, from, signalIP)
	}
	signalIP = signalIP.Unmap()
	p, err := parseSDP(body)
	if err != nil {
		return nil, fmt.Errorf("call %s: %s: %w", c.id, from, err)
	}
	if c.r.cfg.RequireSRTP {
		if err := p.requireSRTP(); err != nil {
			return nil, fmt.Errorf("call %s: %s: %w", c.id, from, err)
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("call %s: %w", c.id, ErrClosed)
	}
	// A stream holds four ports until the call ends, even once disabled,
	// so the cap counts streams that hold or would get ports.
	streams := 0
	for i, st := range p.streams {
		if (i < len(c.streams) && c.streams[i].allocated()) || st.enabled() {
			streams++
		}
	}
	if streams > c.r.cfg.MaxStreams {
		return nil, fmt.Errorf("call %s: %s: %w: %d media streams, at most %d", c.id, from, ErrBadSDP, streams, c.r.cfg.MaxStreams)
	}
	// Bind first, change nothing until every port is there: a refused
	// re-INVITE leaves the running streams as they were.
	for i, st := range p.streams {
		if i == len(c.streams) {
			c.streams = append(c.streams, &stream{index: i, policy: &c.r.dst})
		}
		if s := c.streams[i]; st.enabled() && !s.allocated() {
			if err := c.allocate(s); err != nil {
				return nil, fmt.Errorf("call %s: m-line %d (%s): %w", c.id, i+1, st.media, err)
			}
		}
	}

	ports := make([]int, len(p.streams))
	for i, st := range p.streams {
		s := c.streams[i]
		s.mu.Lock()
		if c.r.kern != nil {
			c.fromKernel(s) // the next packet decides afresh (kernel.go)
		}
		s.apply(from, &st, signalIP)
		if s.enabled {
			ports[i] = int(s.pairs[1-from].port)
		}
		s.mu.Unlock()
	}
	c.last.Store(time.Now().UnixNano())

	inVersion := p.desc.Origin.SessionVersion
	// Rewrite once with version 0 to see whether anything changed.
	zero, err := p.rewrite(ports, c.r.cfg.Advertise, 0)
	if err != nil {
		return nil, fmt.Errorf("call %s: %s: %w", c.id, from, err)
	}
	v := &c.out[from]
	switch {
	case !v.set:
		v.set, v.version = true, inVersion
	case !bytes.Equal(v.body, zero):
		v.version++
	}
	v.body = zero
	if v.version == 0 {
		return zero, nil
	}
	p.desc.Origin.SessionVersion = v.version
	out, err := p.desc.Marshal()
	if err != nil {
		return nil, fmt.Errorf("relay: call %s: %s sdp: marshal: %w", c.id, from, err)
	}
	return out, nil
}

// allocate binds both port pairs of s and starts its readers. The caller
// holds c.mu.
func (c *Call) allocate(s *stream) error {
	const ports = 4 // two pairs
	if !c.r.quota.take(c.owner, ports) {
		c.r.m.quotaRefused.Inc()
		cust, src := c.r.quota.held(c.owner)
		c.log.Warn("relay port quota reached", "customer_id", c.owner.Customer, "customer_ports", cust,
			"source", c.owner.Source, "source_ports", src)
		return ErrQuota
	}
	a, err := c.r.pool.bindPair(c.r.cfg.Bind)
	if err != nil {
		c.r.quota.give(c.owner, ports)
		c.noteBindError(err)
		return err
	}
	b, err := c.r.pool.bindPair(c.r.cfg.Bind)
	if err != nil {
		c.r.pool.release(a)
		c.r.quota.give(c.owner, ports)
		c.noteBindError(err)
		return err
	}
	loop, err := c.r.loop()
	if err == nil && loop != nil {
		s.pairs = [2]pair{a, b}
		err = loop.add(c, s) // closes the conns on error
	}
	if err != nil {
		s.pairs = [2]pair{}
		c.r.pool.release(a)
		c.r.pool.release(b)
		c.r.quota.give(c.owner, ports)
		return err
	}
	c.charged += ports
	s.pairs = [2]pair{a, b}
	if loop != nil {
		s.pairs[SideA].rtp, s.pairs[SideA].rtcp, s.pairs[SideB].rtp, s.pairs[SideB].rtcp = nil, nil, nil, nil
	}
	c.r.m.allocated.Set(float64(c.r.pool.allocated()))
	for side := SideA; side <= SideB && loop == nil; side++ {
		for comp, conn := range []*net.UDPConn{s.pairs[side].rtp, s.pairs[side].rtcp} {
			c.readers.Add(1)
			if c.r.io == ioPerSocketBatch {
				go c.readBatch(s, side, component(comp), conn)
			} else {
				go c.read(s, side, component(comp), conn)
			}
		}
	}
	c.log.Debug("stream allocated", "stream", s.index, "caller_port", a.port, "callee_port", b.port)
	return nil
}

func (c *Call) noteBindError(err error) {
	if errors.Is(err, ErrNoPorts) {
		c.r.m.exhausted.Inc()
		c.log.Warn("relay port range exhausted", "range", c.r.cfg.Ports)
	}
}

// apply records one side's m-line. The caller holds s.mu.
func (s *stream) apply(from Side, st *sdpStream, signalIP netip.Addr) {
	x := &s.legs[from]
	s.media = st.media
	s.enabled = st.enabled() && s.allocated()
	s.secure = st.secure
	if s.clocks == nil {
		s.clocks = make(map[uint8]uint32, len(st.clocks))
	}
	maps.Copy(s.clocks, st.clocks)

	// A new signalling address (the client moved) or a new SDP address
	// (the client reopened its media socket) comes through authenticated
	// signalling, so the side may latch afresh. Hold (no address) keeps
	// the latch: the client comes back from the same socket.
	peer := st.rtpPeer()
	if x.allowed != signalIP || (peer.IsValid() && s.sdpPeer[from].IsValid() && peer != s.sdpPeer[from]) {
		x.ep[compRTP].latched = netip.AddrPort{}
		x.ep[compRTCP].latched = netip.AddrPort{}
	}
	if peer.IsValid() {
		s.sdpPeer[from] = peer
	}
	x.allowed = signalIP
	x.hasSDP = true
	x.mux = st.mux
	x.ssrcs = st.ssrcs
	x.dtls, x.zrtp = st.dtls, st.zrtp
	x.encrypted = st.encrypted && st.enabled()
	x.silent = st.inactive || !st.enabled()
	x.ep[compRTP].sdp = peer
	x.ep[compRTCP].sdp = st.rtcpPeer()
}

// Answered starts media-timeout supervision; later calls change nothing.
func (c *Call) Answered() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.answered {
		return
	}
	c.answered = true
	c.answeredAt = time.Now()
}

// expire reports, once, that an answered call carried no media for
// timeout. A call whose every stream is on hold (inactive, c=0.0.0.0 or
// disabled) is not timed out: silence is what hold means.
func (c *Call) expire(now time.Time, timeout time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.answered || c.fired || c.closed {
		return false
	}
	last := time.Unix(0, c.last.Load())
	if k := c.kernLast(); k.After(last) {
		last = k
	}
	if c.answeredAt.After(last) {
		last = c.answeredAt
	}
	if now.Sub(last) < timeout || c.heldLocked() {
		return false
	}
	c.fired = true
	return true
}

func (c *Call) heldLocked() bool {
	if len(c.streams) == 0 {
		return false
	}
	for _, s := range c.streams {
		s.mu.Lock()
		silent := !s.enabled || s.legs[SideA].silent || s.legs[SideB].silent
		s.mu.Unlock()
		if !silent {
			return false
		}
	}
	return true
}

// StreamStats are one leg's counters of a relayed stream, for the call
// record.
type StreamStats struct {
	Leg       string // "caller" or "callee"
	Media     string // "audio" or "video"
	Packets   uint64
	Bytes     uint64
	Lost      int64
	JitterMS  float64
	Dropped   uint64 // packets from strangers, never forwarded
	RTCPCount uint64
	// Encrypted: both sides' SDP keyed the stream end to end (SRTP), so
	// the relay forwarded ciphertext it cannot read.
	Encrypted bool
}

// Stats returns two entries per stream that ever carried media, caller
// leg first. Packets, Bytes and RTCPCount count what that leg's client sent
// and the relay accepted; Dropped counts strangers on the leg's ports. Lost
// and JitterMS describe the media the leg sent: from the other client's
// RTCP reports when they pass through (end to end), otherwise as the relay
// measured it on arrival (RFC 3550 A.3, A.8).
func (c *Call) Stats() []StreamStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []StreamStats
	for _, s := range c.streams {
		if !s.allocated() {
			continue
		}
		s.mu.Lock()
		for side := SideA; side <= SideB; side++ {
			x := &s.legs[side]
			st := StreamStats{
				Leg:       side.String(),
				Media:     s.media,
				Packets:   x.packets,
				Bytes:     x.bytes,
				Dropped:   x.dropped,
				RTCPCount: x.rtcp,
				Lost:      x.rx.lost(),
				JitterMS:  x.rx.jitterMS(),
				Encrypted: s.legs[SideA].encrypted && s.legs[SideB].encrypted,
			}
			c.legStats(s, side, &st)
			if x.reported.valid() {
				clock := x.rx.clock()
				if clock == 0 {
					clock = s.clockFor(255)
				}
				st.Lost = x.reported.lost()
				st.JitterMS = x.reported.jitterMS(clock)
			}
			out = append(out, st)
		}
		s.mu.Unlock()
	}
	return out
}

// Close stops the call's readers and returns its ports to the range. It is
// idempotent.
func (c *Call) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	streams := c.streams
	charged := c.charged
	c.charged = 0
	c.mu.Unlock()

	// Sockets first, so the readers return, then wait for them; the
	// kernel's directions before the sockets, so none outlives its ports.
	for _, s := range streams {
		if c.r.kern != nil {
			s.mu.Lock()
			c.fromKernel(s)
			s.mu.Unlock()
		}
		if s.io != nil {
			s.io.loop.remove(s.io)
		}
		for _, p := range s.pairs {
			if p.rtp != nil {
				p.rtp.Close()
				p.rtcp.Close()
			}
		}
	}
	c.readers.Wait()
	for _, s := range streams {
		for _, p := range s.pairs {
			c.r.pool.release(p)
		}
	}
	c.r.quota.give(c.owner, charged)
	c.r.m.allocated.Set(float64(c.r.pool.allocated()))
	c.r.removeCall(c)
	return nil
}
