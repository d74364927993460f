package media

import (
	"time"
)

// RFC 3550 A.1 constants.
const (
	rtpSeqMod   = 1 << 16
	maxDropout  = 3000
	maxMisorder = 100
)

// receptionStats is the per-source state of RFC 3550 A.1 (sequence
// tracking), A.3 (expected and lost packets) and A.8 (interarrival jitter).
// It is pure: arrival times come from the caller.
type receptionStats struct {
	clockRate uint32
	epoch     time.Time // origin of the arrival clock

	started bool
	maxSeq  uint16 // highest sequence number seen
	cycles  uint32 // shifted count of sequence number cycles
	baseSeq uint32
	badSeq  uint32 // last 'bad' sequence number + 1

	received      uint64
	expectedPrior uint64
	receivedPrior uint64
	fraction      uint8 // of the last report interval, in 1/256

	haveTransit bool
	transit     uint32  // relative transit time of the last packet, in clock units
	jitter      float64 // in clock units
}

func newReceptionStats(clockRate uint32, epoch time.Time) *receptionStats {
	return &receptionStats{clockRate: clockRate, epoch: epoch}
}

func (s *receptionStats) initSeq(seq uint16) {
	s.baseSeq = uint32(seq)
	s.maxSeq = seq
	s.badSeq = rtpSeqMod + 1 // so seq == badSeq is false
	s.cycles = 0
	s.received = 0
	s.receivedPrior = 0
	s.expectedPrior = 0
}

// update records one packet (RFC 3550 A.1 update_seq, without probation:
// the relay only forwards the peer it latched). It reports false for a
// packet that was not counted: the first of a far jump, which is counted
// only when the next packet confirms that the sender restarted.
func (s *receptionStats) update(seq uint16, rtpTS uint32, arrival time.Time) bool {
	if !s.started {
		s.started = true
		s.initSeq(seq)
	} else {
		udelta := seq - s.maxSeq
		switch {
		case udelta < maxDropout:
			// In order, with permissible gap.
			if seq < s.maxSeq {
				s.cycles += rtpSeqMod // wrapped
			}
			s.maxSeq = seq
		case uint32(udelta) <= rtpSeqMod-maxMisorder:
			// A very large jump.
			if uint32(seq) != s.badSeq {
				s.badSeq = (uint32(seq) + 1) & (rtpSeqMod - 1)
				return false
			}
			// Two sequential packets: the other side restarted
			// without telling us.
			s.initSeq(seq)
			s.haveTransit = false
		default:
			// Duplicate or reordered packet.
		}
	}
	s.received++
	s.updateJitter(rtpTS, arrival)
	return true
}

// updateJitter is RFC 3550 A.8: J += (|D(i-1,i)| - J) / 16, where D is the
// difference of relative transit times in the stream's clock units.
func (s *receptionStats) updateJitter(rtpTS uint32, arrival time.Time) {
	arrivalTS := uint32(uint64(arrival.Sub(s.epoch).Seconds() * float64(s.clockRate)))
	transit := arrivalTS - rtpTS
	if s.haveTransit {
		d := int32(transit - s.transit)
		if d < 0 {
			d = -d
		}
		s.jitter += (float64(d) - s.jitter) / 16
	}
	s.transit, s.haveTransit = transit, true
}

func (s *receptionStats) extendedMax() uint32 { return s.cycles + uint32(s.maxSeq) }

func (s *receptionStats) expected() uint64 {
	if !s.started {
		return 0
	}
	return uint64(s.extendedMax()) - uint64(s.baseSeq) + 1
}

// lost is the cumulative number of packets lost (RFC 3550 A.3). It goes
// negative when duplicates arrive.
func (s *receptionStats) lost() int64 {
	return int64(s.expected()) - int64(s.received)
}

// closeInterval ends a report interval and returns its fraction lost in
// 1/256 (RFC 3550 A.3); it is 0 when the interval lost nothing or gained
// duplicates.
func (s *receptionStats) closeInterval() uint8 {
	expected := s.expected()
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

// jitterMs converts the jitter estimate from clock units to milliseconds.
func (s *receptionStats) jitterMs() float64 {
	return s.jitter * 1000 / float64(s.clockRate)
}

// clampLost24 fits a cumulative loss into the signed 24-bit field of a
// reception report.
func clampLost24(lost int64) uint32 {
	lost = max(min(lost, 0x7fffff), -0x800000)
	return uint32(lost) & 0xffffff
}

// lost24 decodes that field.
func lost24(v uint32) int64 {
	v &= 0xffffff
	if v&0x800000 != 0 {
		return int64(v) - 0x1000000
	}
	return int64(v)
}

// NTP timestamps (RFC 3550 4): seconds since 1900 in the high 32 bits,
// fraction in the low 32.
const ntpEpochOffset = 2208988800

func ntpTime(t time.Time) uint64 {
	sec := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return sec<<32 | frac
}

// ntpMiddle is the middle 32 bits of an NTP timestamp, the unit of LSR and
// DLSR (1/65536 s).
func ntpMiddle(ntp uint64) uint32 { return uint32(ntp >> 16) }

// rttFromReport is RFC 3550 6.4.1: A - LSR - DLSR, all in 1/65536 s, with A
// the arrival time of the report. ok is false when the peer has not seen an
// SR from us yet or the clocks make no sense.
func rttFromReport(arrival time.Time, lsr, dlsr uint32) (time.Duration, bool) {
	if lsr == 0 {
		return 0, false
	}
	rtt := int32(ntpMiddle(ntpTime(arrival)) - lsr - dlsr)
	if rtt < 0 {
		return 0, false
	}
	return time.Duration(int64(rtt) * int64(time.Second) >> 16), true
}

// rateMeter measures a bitrate over windows of about one second.
type rateMeter struct {
	start time.Time
	bytes uint64
	kbps  float64
	last  time.Time
}

func (m *rateMeter) add(n int, now time.Time) {
	if m.start.IsZero() {
		m.start = now
	}
	m.bytes += uint64(n)
	m.last = now
	if el := now.Sub(m.start); el >= time.Second {
		m.kbps = float64(m.bytes) * 8 / el.Seconds() / 1000
		m.start, m.bytes = now, 0
	}
}

// rate is the last window's bitrate, or 0 once the stream has been silent
// for two seconds.
func (m *rateMeter) rate(now time.Time) float64 {
	if m.last.IsZero() || now.Sub(m.last) > 2*time.Second {
		return 0
	}
	return m.kbps
}
