package media

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// Stream kinds.
const (
	KindAudio = "audio"
	KindVideo = "video"
)

// SenderConfig describes one outgoing RTP stream.
type SenderConfig struct {
	Kind      string // KindAudio or KindVideo
	PT        uint8
	ClockRate uint32
	MTU       int    // largest RTP payload; 0 means DefaultMTU
	SSRC      uint32 // 0 picks a random one
}

// Sender holds the state of one outgoing RTP stream: SSRC, sequence
// numbers and timestamps (random starts, RFC 3550 5.1), the media clock, and
// the counters its sender reports carry. It does no I/O.
type Sender struct {
	kind      string
	pt        uint8
	clockRate uint32
	ssrc      uint32
	h264      H264Packetizer

	mu        sync.Mutex // guards the following
	seq       uint16
	tsBase    uint32
	mediaTime time.Duration // media time of the next frame since the first
	lastTS    uint32        // timestamp of the last frame sent
	lastSent  time.Time     // when it was sent
	packets   uint64
	octets    uint64 // payload octets, as in the SR
	bytes     uint64 // whole RTP packets
	frames    uint64
	keyframes uint64
	rate      rateMeter
}

// NewSender validates cfg and draws the random SSRC, sequence number and
// timestamp starts.
func NewSender(cfg SenderConfig) (*Sender, error) {
	if err := checkRTPStream("sender", cfg.Kind, cfg.ClockRate, cfg.PT); err != nil {
		return nil, err
	}
	var r [10]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, fmt.Errorf("media: random rtp start: %w", err)
	}
	s := &Sender{
		kind:      cfg.Kind,
		pt:        cfg.PT,
		clockRate: cfg.ClockRate,
		ssrc:      cfg.SSRC,
		h264:      H264Packetizer{MTU: cfg.MTU},
		seq:       binary.BigEndian.Uint16(r[0:]),
		tsBase:    binary.BigEndian.Uint32(r[2:]),
	}
	for s.ssrc == 0 {
		s.ssrc = binary.BigEndian.Uint32(r[6:])
		if s.ssrc == 0 {
			if _, err := rand.Read(r[6:]); err != nil {
				return nil, fmt.Errorf("media: random ssrc: %w", err)
			}
		}
	}
	return s, nil
}

// SSRC is the stream's synchronization source.
func (s *Sender) SSRC() uint32 { return s.ssrc }

// Packetize turns one frame lasting dur into marshaled RTP packets, all
// with the frame's timestamp, and counts them as sent at now. Video frames
// go through H264Packetizer with the marker bit on the last packet (RFC
// 6184 5.1); an audio frame is one packet, with the marker bit only on the
// first packet of the stream, the start of the talkspurt (RFC 3551 4.1).
func (s *Sender) Packetize(frame []byte, dur time.Duration, now time.Time) ([][]byte, error) {
	var payloads [][]byte
	if s.kind == KindVideo {
		payloads = s.h264.Packetize(frame)
	} else if len(frame) > 0 {
		payloads = [][]byte{frame}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.tsBase + s.ticks(s.mediaTime)
	first := s.frames == 0
	out := make([][]byte, 0, len(payloads))
	for i, pl := range payloads {
		p := rtp.Packet{
			Header: rtp.Header{
				Version:        2,
				PayloadType:    s.pt,
				SequenceNumber: s.seq,
				Timestamp:      ts,
				SSRC:           s.ssrc,
			},
			Payload: pl,
		}
		if s.kind == KindVideo {
			p.Marker = i == len(payloads)-1
		} else {
			p.Marker = first
		}
		b, err := p.Marshal()
		if err != nil {
			return nil, fmt.Errorf("media: marshal rtp: %w", err)
		}
		out = append(out, b)
		s.seq++
		s.packets++
		s.octets += uint64(len(pl))
		s.bytes += uint64(len(b))
		s.rate.add(len(b), now)
	}
	s.mediaTime += dur
	if len(out) > 0 {
		s.frames++
		if s.kind == KindVideo && isKeyframe(frame) {
			s.keyframes++
		}
		s.lastTS, s.lastSent = ts, now
	}
	return out, nil
}

// ticks converts media time to clock units, rounding so that 30 frames of
// 1/30 s make exactly 90000 ticks at 90 kHz.
func (s *Sender) ticks(d time.Duration) uint32 {
	return uint32((int64(d)*int64(s.clockRate) + int64(time.Second)/2) / int64(time.Second))
}

// SenderReport builds the SR for now (RFC 3550 6.4.1), with the RTP
// timestamp extrapolated from the last frame so receivers can map it to
// wall-clock time. ok is false before the first packet.
func (s *Sender) SenderReport(now time.Time) (sr rtcp.SenderReport, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.packets == 0 {
		return rtcp.SenderReport{SSRC: s.ssrc}, false
	}
	return rtcp.SenderReport{
		SSRC:        s.ssrc,
		NTPTime:     ntpTime(now),
		RTPTime:     s.lastTS + uint32(now.Sub(s.lastSent).Seconds()*float64(s.clockRate)),
		PacketCount: uint32(s.packets),
		OctetCount:  uint32(s.octets),
	}, true
}

// SenderStats are the counters of one outgoing stream.
type SenderStats struct {
	SSRC      uint32
	Packets   uint64
	Bytes     uint64
	Frames    uint64
	Keyframes uint64
	Kbps      float64
}

// Stats returns the counters as of now.
func (s *Sender) Stats(now time.Time) SenderStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return SenderStats{
		SSRC:      s.ssrc,
		Packets:   s.packets,
		Bytes:     s.bytes,
		Frames:    s.frames,
		Keyframes: s.keyframes,
		Kbps:      s.rate.rate(now),
	}
}
