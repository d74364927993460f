package media

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/z5vrs/z5/internal/rtpstats"
)

// Feedback pacing: a receiver waiting for a keyframe repeats its request at
// most this often, and a sender honours requests at most this often, so a
// lost keyframe is asked for again but a flood of PLI cannot turn the stream
// into keyframes only.
const (
	minFeedbackInterval = 500 * time.Millisecond
	minKeyframeInterval = 200 * time.Millisecond
)

var errRTPVersion = errors.New("rtp version is not 2")

// ReceiverConfig describes one incoming RTP stream.
type ReceiverConfig struct {
	Kind      string // KindAudio or KindVideo
	PT        uint8  // payload type delivered to Sink; others are counted only
	ClockRate uint32
	// LocalSSRC is our own sending SSRC on this stream: reports, PLI and
	// FIR addressed to it concern what we send.
	LocalSSRC uint32
	Sink      Sink // nil discards the media
	// UseFIR asks for keyframes with FIR (RFC 5104) instead of PLI (RFC
	// 4585), for peers that negotiated only "ccm fir".
	UseFIR bool
	// OnKeyframeRequest runs, on the goroutine that called HandleRTCP, when
	// the peer asks for a keyframe of our stream (PLI or a new FIR).
	OnKeyframeRequest func()
}

// Receiver holds the state of one incoming RTP stream and the RTCP that
// comes back about both directions: RFC 3550 reception statistics, H.264
// reassembly and keyframe recovery, and the round-trip time measured from
// reports on our sender reports. It does no I/O: arrival times and bytes
// come from the caller, and feedback to send is pulled with Feedback.
type Receiver struct {
	cfg ReceiverConfig

	mu         sync.Mutex // guards the following
	haveRemote bool
	remoteSSRC uint32
	haveCand   bool // a new SSRC on probation
	candSSRC   uint32
	candSeq    uint16
	stats      *rtpstats.Receiver
	depack     H264Depacketizer
	rate       rateMeter

	needKey      bool // video: drop frames until a keyframe
	feedbackDue  bool
	lastFeedback time.Time
	firSeq       uint8
	lastKeyReq   time.Time
	haveFIRSeq   bool
	lastFIRSeq   uint8

	haveLSR    bool // the peer's last SR, echoed in our reports
	lsrSSRC    uint32
	lsr        uint32
	lsrArrival time.Time

	remoteReports  uint64 // the peer's reports on our stream
	remoteLost     int64
	remoteFraction uint8
	remoteJitter   uint32
	rtt            time.Duration
	remoteBye      bool

	packets, bytes        uint64
	frames, framesDropped uint64
	otherPT, foreignSSRC  uint64
	malformed, badRTCP    uint64
	pliSent, firSent      uint64
	pliRecv, firRecv      uint64
	sinkErr               error
}

// checkRTPStream is what a sender and a receiver both need of their
// stream: audio or video, a clock rate, and a payload type that fits RTP's
// 7 bits. role names which one in the error.
func checkRTPStream(role, kind string, clockRate uint32, pt uint8) error {
	if kind != KindAudio && kind != KindVideo {
		return fmt.Errorf("media: %s kind %q, want audio or video: %w", role, kind, ErrBadConfig)
	}
	if clockRate == 0 || pt > 127 {
		return fmt.Errorf("media: %s clock rate %d, payload type %d: %w", role, clockRate, pt, ErrBadConfig)
	}
	return nil
}

// NewReceiver validates cfg.
func NewReceiver(cfg ReceiverConfig) (*Receiver, error) {
	if err := checkRTPStream("receiver", cfg.Kind, cfg.ClockRate, cfg.PT); err != nil {
		return nil, err
	}
	return &Receiver{cfg: cfg, needKey: cfg.Kind == KindVideo}, nil
}

// HandleRTP processes one RTP packet that arrived at now. Errors describe
// malformed packets and failed recording; the stream goes on either way.
func (r *Receiver) HandleRTP(buf []byte, now time.Time) error {
	var p rtp.Packet
	err := p.Unmarshal(buf)
	if err == nil && p.Version != 2 {
		err = errRTPVersion
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.malformed++
		return fmt.Errorf("media: %s rtp packet of %d bytes: %w", r.cfg.Kind, len(buf), err)
	}
	if !r.acceptSSRC(&p, now) {
		return nil
	}
	r.stats.Update(p.SequenceNumber, p.Timestamp, now, r.cfg.ClockRate)
	r.packets++
	r.bytes += uint64(len(buf))
	r.rate.add(len(buf), now)
	if p.PayloadType != r.cfg.PT {
		// telephone-event, comfort noise: same stream, not recorded.
		r.otherPT++
		return nil
	}
	if r.cfg.Kind == KindAudio {
		r.frames++
		return r.record(p.Payload, p.Timestamp)
	}
	var werr error
	for _, f := range r.depack.Push(&p) {
		if err := r.acceptFrame(f); err != nil && werr == nil {
			werr = err
		}
	}
	return werr
}

// acceptSSRC follows the peer's SSRC. A new one replaces the current only
// after two packets in sequence (RFC 3550 A.1 probation), so a stray packet
// cannot reset the stream; then everything starts over, keyframe included.
func (r *Receiver) acceptSSRC(p *rtp.Packet, now time.Time) bool {
	switch {
	case !r.haveRemote:
	case p.SSRC == r.remoteSSRC:
		return true
	case r.haveCand && p.SSRC == r.candSSRC && p.SequenceNumber == r.candSeq+1:
	default:
		r.haveCand, r.candSSRC, r.candSeq = true, p.SSRC, p.SequenceNumber
		r.foreignSSRC++
		return false
	}
	r.haveRemote, r.remoteSSRC, r.haveCand = true, p.SSRC, false
	r.stats = &rtpstats.Receiver{}
	r.depack = H264Depacketizer{}
	r.needKey = r.cfg.Kind == KindVideo
	return true
}

// acceptFrame records a decodable frame and otherwise drops it and waits
// for a keyframe: a P frame whose reference is gone only smears the
// picture, so nothing is recorded until the next IDR.
func (r *Receiver) acceptFrame(f H264Frame) error {
	decodable := f.Complete && (f.Keyframe || (!r.needKey && !f.Discontinuity))
	if !decodable {
		r.framesDropped++
		r.needKey, r.feedbackDue = true, true
		return nil
	}
	if f.Keyframe {
		r.needKey, r.feedbackDue = false, false
	}
	r.frames++
	return r.record(f.Data, f.Timestamp)
}

func (r *Receiver) record(payload []byte, ts uint32) error {
	if r.cfg.Sink == nil {
		return nil
	}
	err := r.cfg.Sink.WriteFrame(payload, ts)
	if err != nil && r.sinkErr == nil {
		r.sinkErr = err
	}
	if err != nil {
		return fmt.Errorf("media: record %s: %w", r.cfg.Kind, err)
	}
	return nil
}

// HandleRTCP processes one RTCP compound packet that arrived at now:
// sender reports (remembered for our LSR/DLSR), reception reports on our
// stream (round-trip time, the peer's view of loss and jitter), PLI and
// FIR for our SSRC (OnKeyframeRequest), BYE.
func (r *Receiver) HandleRTCP(buf []byte, now time.Time) error {
	pkts, err := rtcp.Unmarshal(buf)
	if err != nil {
		r.mu.Lock()
		r.badRTCP++
		r.mu.Unlock()
		return fmt.Errorf("media: %s rtcp packet of %d bytes: %w", r.cfg.Kind, len(buf), err)
	}
	keyReq := false
	r.mu.Lock()
	for _, pkt := range pkts {
		switch p := pkt.(type) {
		case *rtcp.SenderReport:
			r.haveLSR, r.lsrSSRC, r.lsr, r.lsrArrival = true, p.SSRC, ntpMiddle(p.NTPTime), now
			r.reports(p.Reports, now)
		case *rtcp.ReceiverReport:
			r.reports(p.Reports, now)
		case *rtcp.PictureLossIndication:
			// One stream per transport: media SSRC 0 can only mean ours.
			if p.MediaSSRC == r.cfg.LocalSSRC || p.MediaSSRC == 0 {
				r.pliRecv++
				keyReq = true
			}
		case *rtcp.FullIntraRequest:
			for _, e := range p.FIR {
				// A repeated sequence number is a retransmission of
				// a request already served (RFC 5104 4.3.1.2).
				if e.SSRC != r.cfg.LocalSSRC || (r.haveFIRSeq && e.SequenceNumber == r.lastFIRSeq) {
					continue
				}
				r.haveFIRSeq, r.lastFIRSeq = true, e.SequenceNumber
				r.firRecv++
				keyReq = true
			}
		case *rtcp.Goodbye:
			for _, s := range p.Sources {
				if r.haveRemote && s == r.remoteSSRC {
					r.remoteBye = true
				}
			}
		}
	}
	if keyReq && !r.lastKeyReq.IsZero() && now.Sub(r.lastKeyReq) < minKeyframeInterval {
		keyReq = false
	}
	if keyReq {
		r.lastKeyReq = now
	}
	r.mu.Unlock()
	if keyReq && r.cfg.OnKeyframeRequest != nil {
		r.cfg.OnKeyframeRequest()
	}
	return nil
}

func (r *Receiver) reports(rrs []rtcp.ReceptionReport, now time.Time) {
	for _, rr := range rrs {
		if rr.SSRC != r.cfg.LocalSSRC {
			continue
		}
		r.remoteReports++
		r.remoteLost = rtpstats.Lost24(rr.TotalLost)
		r.remoteFraction = rr.FractionLost
		r.remoteJitter = rr.Jitter
		if rtt, ok := rttFromReport(now, rr.LastSenderReport, rr.Delay); ok {
			r.rtt = rtt
		}
	}
}

// ReceptionReport builds the report block on the peer's stream for an SR
// or RR sent at now (RFC 3550 6.4.1) and starts a new loss interval. ok is
// false before the first packet.
func (r *Receiver) ReceptionReport(now time.Time) (rtcp.ReceptionReport, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.haveRemote {
		return rtcp.ReceptionReport{}, false
	}
	rr := rtcp.ReceptionReport{
		SSRC:               r.remoteSSRC,
		FractionLost:       r.stats.CloseInterval(),
		TotalLost:          rtpstats.ClampLost24(r.stats.Lost()),
		LastSequenceNumber: r.stats.ExtendedMax(),
		Jitter:             uint32(r.stats.Jitter()),
	}
	if r.haveLSR && r.lsrSSRC == r.remoteSSRC {
		rr.LastSenderReport = r.lsr
		rr.Delay = uint32(now.Sub(r.lsrArrival).Seconds() * 65536)
	}
	return rr, true
}

// Feedback returns the keyframe request (PLI, or FIR with UseFIR) to send
// now, if video is broken and the last request is old enough.
func (r *Receiver) Feedback(now time.Time) []rtcp.Packet {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.feedbackDue || !r.haveRemote ||
		(!r.lastFeedback.IsZero() && now.Sub(r.lastFeedback) < minFeedbackInterval) {
		return nil
	}
	r.feedbackDue, r.lastFeedback = false, now
	if r.cfg.UseFIR {
		r.firSeq++
		r.firSent++
		return []rtcp.Packet{&rtcp.FullIntraRequest{
			SenderSSRC: r.cfg.LocalSSRC,
			FIR:        []rtcp.FIREntry{{SSRC: r.remoteSSRC, SequenceNumber: r.firSeq}},
		}}
	}
	r.pliSent++
	return []rtcp.Packet{&rtcp.PictureLossIndication{SenderSSRC: r.cfg.LocalSSRC, MediaSSRC: r.remoteSSRC}}
}

// ReceiverStats are the counters of one incoming stream and the peer's
// reports on our outgoing one.
type ReceiverStats struct {
	RemoteSSRC    uint32
	Packets       uint64
	Bytes         uint64
	Lost          int64   // RFC 3550 cumulative loss; negative with duplicates
	FractionLost  float64 // last report interval, 0-1
	JitterMs      float64
	Kbps          float64
	Frames        uint64 // video: decodable frames recorded; audio: packets
	FramesDropped uint64 // video frames dropped as lost or undecodable
	OtherPT       uint64
	ForeignSSRC   uint64
	Malformed     uint64
	BadRTCP       uint64
	PLISent       uint64
	FIRSent       uint64
	PLIReceived   uint64
	FIRReceived   uint64
	// RTT is 0 until a report on one of our SRs came back.
	RTT                time.Duration
	RemoteReports      uint64 // reception reports the peer sent on our stream
	RemoteLost         int64
	RemoteFractionLost float64
	RemoteJitterMs     float64
	RemoteBye          bool
	RecordError        error
}

// Stats returns the counters as of now.
func (r *Receiver) Stats(now time.Time) ReceiverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := ReceiverStats{
		RemoteSSRC:         r.remoteSSRC,
		Packets:            r.packets,
		Bytes:              r.bytes,
		Kbps:               r.rate.rate(now),
		Frames:             r.frames,
		FramesDropped:      r.framesDropped,
		OtherPT:            r.otherPT,
		ForeignSSRC:        r.foreignSSRC,
		Malformed:          r.malformed,
		BadRTCP:            r.badRTCP,
		PLISent:            r.pliSent,
		FIRSent:            r.firSent,
		PLIReceived:        r.pliRecv,
		FIRReceived:        r.firRecv,
		RTT:                r.rtt,
		RemoteReports:      r.remoteReports,
		RemoteLost:         r.remoteLost,
		RemoteFractionLost: float64(r.remoteFraction) / 256,
		RemoteJitterMs:     float64(r.remoteJitter) * 1000 / float64(r.cfg.ClockRate),
		RemoteBye:          r.remoteBye,
		RecordError:        r.sinkErr,
	}
	if r.stats != nil {
		s.Lost = r.stats.Lost()
		s.FractionLost = float64(r.stats.Fraction()) / 256
		s.JitterMs = r.stats.JitterMS()
	}
	return s
}
