package media

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
)

// StreamConfig is one RTP stream of a call: where it runs and what it
// carries. The UDP sockets belong to the caller, who opened them before the
// SDP exchange; a Session reads and writes them between Start and Stop and
// leaves them open.
type StreamConfig struct {
	Kind      string // KindAudio or KindVideo
	PT        uint8
	ClockRate uint32
	Local     *net.UDPConn
	// LocalRTCP is the RTCP socket; nil multiplexes RTCP on Local (RFC 5761).
	LocalRTCP *net.UDPConn
	// Remote is where RTP goes, and the only address RTP is accepted from
	// (symmetric RTP: the relay answers from the port we send to).
	Remote netip.AddrPort
	// RemoteRTCP is where RTCP goes; the zero value means Remote with
	// rtcp-mux and Remote's port+1 without.
	RemoteRTCP netip.AddrPort
	Source     Source // nil receives only
	Sink       Sink   // nil discards what arrives; Stop closes it
	MTU        int    // largest RTP payload; 0 means DefaultMTU
	// UseFIR asks for keyframes with FIR instead of PLI.
	UseFIR bool
	// SSRC is the source this stream sends from; 0 picks a random one.
	// Set it to the SSRC the SDP announced (Sources).
	SSRC uint32
	// SRTP, when set, protects the stream with SRTP and SRTCP (the keys
	// the SDP exchange agreed, StreamParams.SRTP); nil runs plain RTP.
	SRTP *SRTPKeys
}

// SessionConfig describes the media of one call.
type SessionConfig struct {
	Streams []StreamConfig
	// CNAME is the RTCP canonical name; "" picks a random one (RFC 7022).
	CNAME string
	// RTCPInterval is the mean report interval; 0 means one second.
	RTCPInterval time.Duration
	Logger       *slog.Logger
}

// Session sends and receives the RTP and RTCP of one call over UDP. It
// starts sending at once on Start, so that a relay that latches on the
// first packet from each leg (and a NAT on the way) opens before the peer's
// media arrives.
type Session struct {
	log          *slog.Logger
	cname        string
	rtcpInterval time.Duration
	streams      []*stream

	mu      sync.Mutex // guards the following
	started bool
	stopped bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type stream struct {
	cfg     StreamConfig
	sender  *Sender
	recv    *Receiver
	rtcpDst netip.AddrPort
	srtp    *SRTPContext // nil: plain RTP

	sendErrors   atomic.Uint64
	srtpRejected atomic.Uint64 // failed authentication, replays, undecryptable
	foreign      atomic.Uint64 // datagrams from addresses other than the peer's
}

// NewSession validates cfg and prepares every stream.
func NewSession(cfg SessionConfig) (*Session, error) {
	if len(cfg.Streams) == 0 {
		return nil, fmt.Errorf("media: session without streams: %w", ErrBadConfig)
	}
	s := &Session{
		log:          cfg.Logger,
		cname:        cfg.CNAME,
		rtcpInterval: cfg.RTCPInterval,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.rtcpInterval <= 0 {
		s.rtcpInterval = time.Second
	}
	if s.cname == "" {
		var b [12]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("media: random cname: %w", err)
		}
		s.cname = hex.EncodeToString(b[:])
	}
	for i, sc := range cfg.Streams {
		st, err := newStream(sc)
		if err != nil {
			return nil, fmt.Errorf("media: stream %d (%s): %w", i, sc.Kind, err)
		}
		s.streams = append(s.streams, st)
	}
	return s, nil
}

func newStream(sc StreamConfig) (*stream, error) {
	switch {
	case sc.Local == nil:
		return nil, fmt.Errorf("no local socket: %w", ErrBadConfig)
	case !sc.Remote.IsValid() || sc.Remote.Port() == 0:
		return nil, fmt.Errorf("remote address %v: %w", sc.Remote, ErrBadConfig)
	}
	sender, err := NewSender(SenderConfig{Kind: sc.Kind, PT: sc.PT, ClockRate: sc.ClockRate, MTU: sc.MTU, SSRC: sc.SSRC})
	if err != nil {
		return nil, err
	}
	st := &stream{cfg: sc, sender: sender, rtcpDst: sc.RemoteRTCP}
	if sc.SRTP != nil {
		if st.srtp, err = NewSRTPContext(sc.SRTP); err != nil {
			return nil, err
		}
	}
	if !st.rtcpDst.IsValid() {
		st.rtcpDst = sc.Remote
		if sc.LocalRTCP != nil {
			if sc.Remote.Port() == 65535 {
				return nil, fmt.Errorf("remote rtp port 65535 leaves no port+1 for rtcp: %w", ErrBadConfig)
			}
			st.rtcpDst = netip.AddrPortFrom(sc.Remote.Addr(), sc.Remote.Port()+1)
		}
	}
	var onKey func()
	if ks, ok := sc.Source.(KeyframeSource); ok {
		onKey = ks.RequestKeyframe
	}
	st.recv, err = NewReceiver(ReceiverConfig{
		Kind:              sc.Kind,
		PT:                sc.PT,
		ClockRate:         sc.ClockRate,
		LocalSSRC:         sender.SSRC(),
		Sink:              sc.Sink,
		UseFIR:            sc.UseFIR,
		OnKeyframeRequest: onKey,
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// Start begins sending and receiving on every stream. The streams run
// until ctx ends or Stop is called; Stop must be called either way.
func (s *Session) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopped {
		return errors.New("media: session already started or stopped")
	}
	s.started = true
	ctx, s.cancel = context.WithCancel(ctx)
	for _, st := range s.streams {
		s.log.Debug("media stream start", "stream", st.cfg.Kind, "ssrc", st.sender.SSRC(),
			"local_addr", st.cfg.Local.LocalAddr().String(), "remote_addr", st.cfg.Remote.String(),
			"rtcp_mux", st.cfg.LocalRTCP == nil, "srtp", st.cfg.SRTP)
		s.wg.Go(func() { s.readLoop(ctx, st, st.cfg.Local, false) })
		if st.cfg.LocalRTCP != nil {
			s.wg.Go(func() { s.readLoop(ctx, st, st.cfg.LocalRTCP, true) })
		}
		if st.cfg.Source != nil {
			s.wg.Go(func() { s.sendLoop(ctx, st) })
		} else if st.cfg.LocalRTCP != nil {
			// Nothing to send on the RTP port, yet the relay and any NAT
			// must see it: an empty datagram (RFC 6263 4.1) opens it.
			if _, err := st.cfg.Local.WriteToUDPAddrPort(nil, st.cfg.Remote); err != nil {
				st.sendErrors.Add(1)
			}
		}
		s.wg.Go(func() { s.rtcpLoop(ctx, st) })
	}
	// Unblock the readers when the call ends, however it ends.
	s.wg.Go(func() {
		<-ctx.Done()
		for _, st := range s.streams {
			st.cfg.Local.SetReadDeadline(time.Now())
			if st.cfg.LocalRTCP != nil {
				st.cfg.LocalRTCP.SetReadDeadline(time.Now())
			}
		}
	})
	return nil
}

// Stop sends RTCP BYE, stops every stream, waits for its goroutines, and
// closes the sinks. It returns the first error closing a sink. Stop is
// idempotent; the sockets stay open for the caller to close or reuse.
func (s *Session) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	if s.started {
		now := time.Now()
		for _, st := range s.streams {
			s.sendRTCP(st, now, nil, true)
		}
		s.cancel()
		s.wg.Wait()
		for _, st := range s.streams {
			st.cfg.Local.SetReadDeadline(time.Time{})
			if st.cfg.LocalRTCP != nil {
				st.cfg.LocalRTCP.SetReadDeadline(time.Time{})
			}
		}
	}
	var err error
	for _, st := range s.streams {
		if st.cfg.Sink == nil {
			continue
		}
		if cerr := st.cfg.Sink.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("media: close %s recording: %w", st.cfg.Kind, cerr)
		}
	}
	return err
}

// sendLoop paces the source in real time: each frame leaves when the sum
// of the previous durations has elapsed, so timer jitter does not add up.
// After a stall of over a second it resumes without a catch-up burst.
func (s *Session) sendLoop(ctx context.Context, st *stream) {
	next := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for fired(ctx, timer) {
		frame, dur, err := st.cfg.Source.Next()
		if err == nil && dur <= 0 {
			err = fmt.Errorf("frame duration %v", dur)
		}
		if err != nil {
			s.log.Warn("media source failed, sending stops", "stream", st.cfg.Kind, "error", err)
			return
		}
		now := time.Now()
		pkts, err := st.sender.Packetize(frame, dur, now)
		if err != nil {
			s.log.Warn("media packetize failed, sending stops", "stream", st.cfg.Kind, "error", err)
			return
		}
		for _, p := range pkts {
			if st.srtp != nil {
				if p, err = st.srtp.ProtectRTP(p); err != nil {
					st.sendErrors.Add(1)
					continue
				}
			}
			if _, err := st.cfg.Local.WriteToUDPAddrPort(p, st.cfg.Remote); err != nil {
				st.sendErrors.Add(1)
				if s.log.Enabled(ctx, slog.LevelDebug) {
					s.log.Debug("rtp send failed", "stream", st.cfg.Kind, "remote_addr", st.cfg.Remote.String(), "error", err)
				}
			}
		}
		next = next.Add(dur)
		if now.Sub(next) > time.Second {
			next = now
		}
		timer.Reset(time.Until(next))
	}
}

// fired waits for t to fire; false when ctx ends first.
func fired(ctx context.Context, t *time.Timer) bool {
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// rtcpLoop sends a report at once (it opens the RTCP path through the
// relay) and then at randomized intervals of 0.5-1.5 times the mean (RFC
// 3550 6.3.1), with any keyframe request still pending.
func (s *Session) rtcpLoop(ctx context.Context, st *stream) {
	s.sendRTCP(st, time.Now(), nil, false)
	timer := time.NewTimer(s.reportDelay())
	defer timer.Stop()
	for fired(ctx, timer) {
		now := time.Now()
		s.sendRTCP(st, now, st.recv.Feedback(now), false)
		timer.Reset(s.reportDelay())
	}
}

func (s *Session) reportDelay() time.Duration {
	return time.Duration(float64(s.rtcpInterval) * (0.5 + mrand.Float64()))
}

// sendRTCP sends one compound packet: SR (or RR before we sent anything)
// with the report block on the peer's stream, SDES CNAME, then feedback and
// BYE (RFC 3550 6.1).
func (s *Session) sendRTCP(st *stream, now time.Time, feedback []rtcp.Packet, bye bool) {
	ssrc := st.sender.SSRC()
	var pkts []rtcp.Packet
	rr, haveRR := st.recv.ReceptionReport(now)
	if sr, ok := st.sender.SenderReport(now); ok {
		if haveRR {
			sr.Reports = []rtcp.ReceptionReport{rr}
		}
		pkts = append(pkts, &sr)
	} else {
		r := &rtcp.ReceiverReport{SSRC: ssrc}
		if haveRR {
			r.Reports = []rtcp.ReceptionReport{rr}
		}
		pkts = append(pkts, r)
	}
	pkts = append(pkts, rtcp.NewCNAMESourceDescription(ssrc, s.cname))
	pkts = append(pkts, feedback...)
	if bye {
		pkts = append(pkts, &rtcp.Goodbye{Sources: []uint32{ssrc}})
	}
	b, err := rtcp.Marshal(pkts)
	if err != nil {
		s.log.Warn("rtcp marshal failed", "stream", st.cfg.Kind, "error", err)
		return
	}
	if st.srtp != nil {
		if b, err = st.srtp.ProtectRTCP(b); err != nil {
			st.sendErrors.Add(1)
			return
		}
	}
	conn := st.cfg.Local
	if st.cfg.LocalRTCP != nil {
		conn = st.cfg.LocalRTCP
	}
	if _, err := conn.WriteToUDPAddrPort(b, st.rtcpDst); err != nil {
		st.sendErrors.Add(1)
	}
}

// readLoop receives on one socket until the session ends. On a muxed
// socket RTCP is told from RTP by the second octet (RFC 5761 4): RTCP packet
// types 192-223 fall where RTP would have marker bit set and payload types
// 64-95, which are never used.
func (s *Session) readLoop(ctx context.Context, st *stream, conn *net.UDPConn, rtcpOnly bool) {
	buf := make([]byte, 1<<16)
	var plain []byte // decrypted SRTP, when the stream is encrypted
	if st.srtp != nil {
		plain = make([]byte, 1<<16)
	}
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue // a deadline left by an earlier session
			}
			// ICMP errors surface here on some systems; keep reading.
			if s.log.Enabled(ctx, slog.LevelDebug) {
				s.log.Debug("media read failed", "stream", st.cfg.Kind, "error", err)
			}
			continue
		}
		if n == 0 {
			continue // keepalive
		}
		pkt := buf[:n]
		now := time.Now()
		isRTCP := rtcpOnly || (n >= 2 && pkt[1] >= 192 && pkt[1] <= 223)
		if !st.fromPeer(from, isRTCP) {
			st.foreign.Add(1)
			continue
		}
		if st.srtp != nil {
			if isRTCP {
				pkt, err = st.srtp.UnprotectRTCP(plain, pkt)
			} else {
				pkt, err = st.srtp.UnprotectRTP(plain, pkt)
			}
			if err != nil {
				// Forged, corrupted or replayed: it never reaches the
				// receiver, so it cannot move its state.
				st.srtpRejected.Add(1)
				if s.log.Enabled(ctx, slog.LevelDebug) {
					s.log.Debug("srtp packet rejected", "stream", st.cfg.Kind, "remote_addr", from.String(), "error", err)
				}
				continue
			}
		}
		if isRTCP {
			err = st.recv.HandleRTCP(pkt, now)
		} else {
			err = st.recv.HandleRTP(pkt, now)
			if fb := st.recv.Feedback(now); fb != nil {
				s.sendRTCP(st, now, fb, false)
			}
		}
		if err != nil && s.log.Enabled(ctx, slog.LevelDebug) {
			s.log.Debug("media packet rejected", "stream", st.cfg.Kind, "remote_addr", from.String(), "error", err)
		}
	}
}

// fromPeer accepts RTP only from the peer's RTP address, and RTCP from its
// RTP or RTCP address (a muxing relay answers RTCP from the RTP port).
func (st *stream) fromPeer(from netip.AddrPort, isRTCP bool) bool {
	same := func(a, b netip.AddrPort) bool {
		return a.Addr().Unmap() == b.Addr().Unmap() && a.Port() == b.Port()
	}
	return same(from, st.cfg.Remote) || (isRTCP && same(from, st.rtcpDst))
}

// StreamStats are the statistics of one stream of the call, both ways.
type StreamStats struct {
	Kind          string  `json:"kind"`
	LocalSSRC     uint32  `json:"local_ssrc"`
	RemoteSSRC    uint32  `json:"remote_ssrc"`
	PacketsSent   uint64  `json:"packets_sent"`
	BytesSent     uint64  `json:"bytes_sent"`
	FramesSent    uint64  `json:"frames_sent"`
	KeyframesSent uint64  `json:"keyframes_sent"`
	SendKbps      float64 `json:"send_kbps"`
	SendErrors    uint64  `json:"send_errors"`

	PacketsReceived uint64  `json:"packets_received"`
	BytesReceived   uint64  `json:"bytes_received"`
	FramesReceived  uint64  `json:"frames_received"` // video: decodable frames; audio: packets
	FramesDropped   uint64  `json:"frames_dropped"`
	Lost            int64   `json:"lost"`
	FractionLost    float64 `json:"fraction_lost"`
	JitterMs        float64 `json:"jitter_ms"`
	RecvKbps        float64 `json:"recv_kbps"`
	// RTTMs is 0 until the peer reported on one of our sender reports.
	RTTMs float64 `json:"rtt_ms"`

	// The peer's reports on what we send.
	RemoteReports      uint64  `json:"remote_reports"`
	RemoteLost         int64   `json:"remote_lost"`
	RemoteFractionLost float64 `json:"remote_fraction_lost"`
	RemoteJitterMs     float64 `json:"remote_jitter_ms"`
	RemoteBye          bool    `json:"remote_bye"`

	PLISent     uint64 `json:"pli_sent"`
	FIRSent     uint64 `json:"fir_sent"`
	PLIReceived uint64 `json:"pli_received"`
	FIRReceived uint64 `json:"fir_received"`
	Foreign     uint64 `json:"foreign"`   // datagrams from other addresses or SSRCs
	Malformed   uint64 `json:"malformed"` // unparsable RTP or RTCP
	RecordError string `json:"record_error,omitempty"`
	// Encrypted: the stream runs SRTP; SRTPRejected counts packets that
	// failed SRTP/SRTCP authentication or replay checks.
	Encrypted    bool   `json:"encrypted"`
	SRTPRejected uint64 `json:"srtp_rejected"`
}

// Stats returns the statistics of every stream, in configuration order.
func (s *Session) Stats() []StreamStats {
	now := time.Now()
	out := make([]StreamStats, 0, len(s.streams))
	for _, st := range s.streams {
		ss := st.sender.Stats(now)
		rs := st.recv.Stats(now)
		x := StreamStats{
			Kind:               st.cfg.Kind,
			LocalSSRC:          ss.SSRC,
			RemoteSSRC:         rs.RemoteSSRC,
			PacketsSent:        ss.Packets,
			BytesSent:          ss.Bytes,
			FramesSent:         ss.Frames,
			KeyframesSent:      ss.Keyframes,
			SendKbps:           ss.Kbps,
			SendErrors:         st.sendErrors.Load(),
			PacketsReceived:    rs.Packets,
			BytesReceived:      rs.Bytes,
			FramesReceived:     rs.Frames,
			FramesDropped:      rs.FramesDropped,
			Lost:               rs.Lost,
			FractionLost:       rs.FractionLost,
			JitterMs:           rs.JitterMs,
			RecvKbps:           rs.Kbps,
			RTTMs:              float64(rs.RTT) / float64(time.Millisecond),
			RemoteReports:      rs.RemoteReports,
			RemoteLost:         rs.RemoteLost,
			RemoteFractionLost: rs.RemoteFractionLost,
			RemoteJitterMs:     rs.RemoteJitterMs,
			RemoteBye:          rs.RemoteBye,
			PLISent:            rs.PLISent,
			FIRSent:            rs.FIRSent,
			PLIReceived:        rs.PLIReceived,
			FIRReceived:        rs.FIRReceived,
			Foreign:            st.foreign.Load() + rs.ForeignSSRC,
			Malformed:          rs.Malformed + rs.BadRTCP,
			Encrypted:          st.srtp != nil,
			SRTPRejected:       st.srtpRejected.Load(),
		}
		if rs.RecordError != nil {
			x.RecordError = rs.RecordError.Error()
		}
		out = append(out, x)
	}
	return out
}
