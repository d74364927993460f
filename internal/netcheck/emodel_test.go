package netcheck

import (
	"testing"
	"time"
)

func TestEstimate(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		rtt, jitter time.Duration
		loss        float64
		r, mos      float64
		rating      string
	}{
		// d = 20 ms: Id = 0.48, R = 92.72.
		{0, 0, 0, 92.7, 4.40, "excellent"},
		// d = 50 + 20 + 20 = 90 ms: Id = 2.16, R = 91.04.
		{100 * ms, 10 * ms, 0, 91.0, 4.36, "excellent"},
		// 1% loss: Ie,eff = 95*1/5.3 = 17.92, R = 74.80.
		{0, 0, 0.01, 74.8, 3.81, "fair"},
		// d = 150 + 60 + 20 = 230 ms: Id = 5.52 + 0.11*52.7 = 11.32, R = 81.88.
		{300 * ms, 30 * ms, 0, 81.9, 4.09, "good"},
		// d = 50 ms: Id = 1.2; 5% loss: Ie,eff = 95*5/9.3 = 51.08; R = 40.92.
		{40 * ms, 5 * ms, 0.05, 40.9, 2.11, "bad"},
		{2 * time.Second, 0, 1, 0, 1, "bad"},
	} {
		got := Estimate(tc.rtt, tc.jitter, tc.loss)
		if got.R != tc.r || got.MOS != tc.mos || got.Rating != tc.rating {
			t.Errorf("Estimate(rtt %s, jitter %s, loss %.2f) = %+v, want R %.1f MOS %.2f %s",
				tc.rtt, tc.jitter, tc.loss, got, tc.r, tc.mos, tc.rating)
		}
	}
}

func TestJitterAndPercentile(t *testing.T) {
	// Sent every 20 ms; arrivals (relay clock) delayed by 0, 10, 0, 10 ms:
	// |D| = 10 each time, J = 10*(1-(15/16)^3).
	var es []echo
	for i, extra := range []int64{0, 10, 0, 10} {
		s := int64(i) * 20e6
		es = append(es, echo{sent: s, recv: 5e9 + s + extra*1e6})
	}
	want := time.Duration(1760254) // 10 ms * (1 - (15/16)^3)
	if got := jitter(es); got < want-time.Microsecond || got > want+time.Microsecond {
		t.Errorf("jitter = %s, want %s", got, want)
	}
	if jitter(nil) != 0 || jitter(es[:1]) != 0 {
		t.Error("jitter of fewer than two packets is not 0")
	}
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[int]time.Duration{50: 50 * time.Millisecond, 95: 95 * time.Millisecond, 100: 100 * time.Millisecond} {
		if got := percentile(ds, p); got != want {
			t.Errorf("p%d = %s, want %s", p, got, want)
		}
	}
	if percentile(nil, 50) != 0 || percentile(ds[:1], 95) != time.Millisecond {
		t.Error("percentile of short lists")
	}
}
