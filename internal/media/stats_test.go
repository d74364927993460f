package media

import (
	"testing"
	"time"
)

func TestRTTFromReport(t *testing.T) {
	sent := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	lsr := ntpMiddle(ntpTime(sent))
	// The peer held our SR 250 ms; it came back 340 ms after we sent it.
	arrival := sent.Add(340 * time.Millisecond)
	rtt, ok := rttFromReport(arrival, lsr, uint32(0.25*65536))
	if !ok || rtt < 89*time.Millisecond || rtt > 91*time.Millisecond {
		t.Errorf("rtt %v %t, want 90ms", rtt, ok)
	}
	if _, ok := rttFromReport(arrival, 0, 0); ok {
		t.Error("LSR 0 (no SR seen) gave an RTT")
	}
	if _, ok := rttFromReport(arrival, lsr, uint32(0.5*65536)); ok {
		t.Error("DLSR longer than the round trip gave an RTT")
	}
}

func TestNTPTime(t *testing.T) {
	// 1 Jan 1970 is 2208988800 s after 1 Jan 1900; half a second is 2^31.
	got := ntpTime(time.Unix(0, 500_000_000))
	if got != 2208988800<<32|1<<31 {
		t.Errorf("ntpTime = %#x", got)
	}
}
