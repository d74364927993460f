package media

import (
	"time"
)

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
