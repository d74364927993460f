// Package rtpstats is the receiver side of RFC 3550's statistics for one
// RTP source: sequence tracking and loss (appendix A.1 and A.3),
// interarrival jitter (A.8) and the signed 24-bit loss field of a
// reception report (section 6.4.1). The relay keeps one Receiver per leg
// on its per-packet path and the media stack one per received stream.
// It is pure: arrival times come from the caller.
package rtpstats

import "time"

// RFC 3550 A.1 constants.
const (
	seqMod     = 1 << 16
	maxDropout = 3000
	// MaxMisorder is how far back a sequence number may be and still be a
	// late packet rather than a restart.
	MaxMisorder = 100
)

// Outcome is what Update made of a packet.
type Outcome int

const (
	// Counted: the packet was accounted.
	Counted Outcome = iota
	// Held: a far jump in sequence numbers, not counted; it is believed
	// only when the next packet follows it.
	Held
	// Restarted: that next packet came, the sender restarted its sequence
	// without a new SSRC; the counts started afresh from this packet.
	Restarted
)

// Receiver is the reception state of one source. The zero value is ready;
// a source with a new SSRC wants a new Receiver.
type Receiver struct {
	started  bool
	maxSeq   uint16 // highest sequence number seen
	cycles   uint32 // shifted count of sequence number cycles
	baseSeq  uint32
	badSeq   uint32 // last 'bad' sequence number + 1
	received uint64

	expectedPrior uint64
	receivedPrior uint64
	fraction      uint8 // of the last report interval, in 1/256

	epoch       time.Time // origin of the arrival clock: the first packet
	clock       uint32    // clock rate the transit times are in
	haveTransit bool
	transit     int32   // relative transit time of the last packet, in clock units
	jitter      float64 // in clock units
}

func (s *Receiver) initSeq(seq uint16) {
	s.baseSeq = uint32(seq)
	s.maxSeq = seq
	s.badSeq = seqMod + 1 // so seq == badSeq is false
	s.cycles = 0
	s.received = 0
	s.receivedPrior = 0
	s.expectedPrior = 0
}

// Update accounts one packet with sequence number seq and RTP timestamp ts
// that arrived at arrival, its payload's clock rate being clock (0:
// unknown, no jitter). It is RFC 3550 A.1 update_seq without the probation
// period: both users only count a source they already accepted. A change
// of clock rate starts the jitter estimate afresh.
func (s *Receiver) Update(seq uint16, ts uint32, arrival time.Time, clock uint32) Outcome {
	out := Counted
	if !s.started {
		s.started, s.epoch = true, arrival
		s.initSeq(seq)
	} else {
		udelta := seq - s.maxSeq
		switch {
		case udelta < maxDropout:
			// In order, with permissible gap.
			if seq < s.maxSeq {
				s.cycles += seqMod // wrapped
			}
			s.maxSeq = seq
		case uint32(udelta) <= seqMod-MaxMisorder:
			// A very large jump.
			if uint32(seq) != s.badSeq {
				s.badSeq = (uint32(seq) + 1) & (seqMod - 1)
				return Held
			}
			// Two sequential packets: the other side restarted
			// without telling us. Its timestamps start afresh too.
			s.initSeq(seq)
			s.haveTransit = false
			out = Restarted
		default:
			// Duplicate or reordered packet.
		}
	}
	s.received++
	s.updateJitter(ts, arrival, clock)
	return out
}

// updateJitter is RFC 3550 A.8: J += (|D(i-1,i)| - J) / 16, where D is the
// difference of relative transit times in the stream's clock units.
func (s *Receiver) updateJitter(ts uint32, arrival time.Time, clock uint32) {
	if clock == 0 {
		return
	}
	if clock != s.clock {
		s.clock, s.haveTransit, s.jitter = clock, false, 0
	}
	// Whole seconds and the rest apart, so the product cannot overflow
	// however long the call; the result wraps like an RTP timestamp.
	el := max(arrival.Sub(s.epoch), 0)
	secs, rest := uint64(el/time.Second), uint64(el%time.Second)
	at := uint32(secs*uint64(clock) + rest*uint64(clock)/uint64(time.Second))
	transit := int32(at - ts)
	if s.haveTransit {
		d := float64(transit - s.transit)
		if d < 0 {
			d = -d
		}
		s.jitter += (d - s.jitter) / 16
	}
	s.transit, s.haveTransit = transit, true
}

// ExtendedMax is the highest sequence number received, extended with the
// count of wraps (a reception report's "extended highest sequence number").
func (s *Receiver) ExtendedMax() uint32 { return s.cycles + uint32(s.maxSeq) }

// Expected is the number of packets expected since the first (A.3).
func (s *Receiver) Expected() uint64 {
	if !s.started {
		return 0
	}
	return uint64(s.ExtendedMax()) - uint64(s.baseSeq) + 1
}

// Lost is the cumulative number of packets lost (A.3). It goes negative
// when duplicates arrive, as RFC 3550 allows.
func (s *Receiver) Lost() int64 { return int64(s.Expected()) - int64(s.received) }

// CloseInterval ends a report interval and returns its fraction lost in
// 1/256 (A.3); it is 0 when the interval lost nothing or gained
// duplicates.
func (s *Receiver) CloseInterval() uint8 {
	expected := s.Expected()
	expInterval := int64(expected - s.expectedPrior)
	recvInterval := int64(s.received - s.receivedPrior)
	s.expectedPrior, s.receivedPrior = expected, s.received
	lostInterval := expInterval - recvInterval
	s.fraction = 0
	if expInterval > 0 && lostInterval > 0 {
		s.fraction = uint8(lostInterval << 8 / expInterval)
	}
	return s.fraction
}

// Fraction is the fraction lost of the last closed interval, in 1/256.
func (s *Receiver) Fraction() uint8 { return s.fraction }

// Clock is the clock rate of the jitter estimate; 0 before any packet
// with a known one.
func (s *Receiver) Clock() uint32 { return s.clock }

// Jitter is the interarrival jitter estimate in clock units, the unit of
// a reception report's jitter field.
func (s *Receiver) Jitter() float64 { return s.jitter }

// JitterMS is the jitter estimate in milliseconds.
func (s *Receiver) JitterMS() float64 {
	if s.clock == 0 {
		return 0
	}
	return s.jitter * 1000 / float64(s.clock)
}

// ClampLost24 fits a cumulative loss into the signed 24-bit field of a
// reception report.
func ClampLost24(lost int64) uint32 {
	lost = max(min(lost, 0x7fffff), -0x800000)
	return uint32(lost) & 0xffffff
}

// Lost24 decodes that field.
func Lost24(v uint32) int64 {
	v &= 0xffffff
	if v&0x800000 != 0 {
		return int64(v) - 0x1000000
	}
	return int64(v)
}
