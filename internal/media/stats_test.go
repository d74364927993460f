package media

import (
	"math"
	"testing"
	"time"
)

func TestReceptionLoss(t *testing.T) {
	tests := []struct {
		name     string
		seqs     []uint16
		expected uint64
		lost     int64
		extMax   uint32
		fraction uint8 // of the one interval
	}{
		{"in order", []uint16{10, 11, 12, 13}, 4, 0, 13, 0},
		{"one lost", []uint16{10, 11, 13, 14}, 5, 1, 14, 256 / 5},
		{"burst of three lost", []uint16{1, 5, 6, 7}, 7, 3, 7, 3 * 256 / 7},
		{"wrap", []uint16{65534, 65535, 0, 1}, 4, 0, 65537, 0},
		{"loss across wrap", []uint16{65534, 0, 1}, 4, 1, 65537, 64},
		{"reordered", []uint16{1, 3, 2, 4}, 4, 0, 4, 0},
		{"duplicate: loss goes negative", []uint16{1, 2, 2, 3}, 3, -1, 3, 0},
		{"late packet from before the wrap", []uint16{65535, 0, 65534, 1}, 3, -1, 65537, 0},
		// A far jump counts only once confirmed: the sender restarted.
		{"far jump once is ignored", []uint16{100, 101, 40000, 102}, 3, 0, 102, 0},
		{"far jump twice restarts", []uint16{100, 101, 40000, 40001, 40002}, 2, 0, 40002, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			epoch := time.Unix(1000, 0)
			s := newReceptionStats(8000, epoch)
			for i, seq := range tt.seqs {
				s.update(seq, uint32(i*160), epoch.Add(time.Duration(i)*20*time.Millisecond))
			}
			if got := s.expected(); got != tt.expected {
				t.Errorf("expected %d, want %d", got, tt.expected)
			}
			if got := s.lost(); got != tt.lost {
				t.Errorf("lost %d, want %d", got, tt.lost)
			}
			if got := s.extendedMax(); got != tt.extMax {
				t.Errorf("extended max %d, want %d", got, tt.extMax)
			}
			if got := s.closeInterval(); got != tt.fraction {
				t.Errorf("fraction %d/256, want %d/256", got, tt.fraction)
			}
			// A second interval with nothing new lost nothing.
			if got := s.closeInterval(); got != 0 {
				t.Errorf("empty interval fraction %d", got)
			}
		})
	}
}

func TestReceptionJitter(t *testing.T) {
	const clock = 8000
	tests := []struct {
		name string
		// arrival offsets in ms of packets sent every 20 ms (160 ticks)
		arrivals []float64
		wantMs   float64
	}{
		{"perfectly paced", []float64{0, 20, 40, 60, 80}, 0},
		// One packet 10 ms late: D = 80 ticks then 80 back.
		// J1 = 80/16 = 5, J2 = 5 + (80-5)/16 = 9.6875 ticks.
		{"one late packet", []float64{0, 20, 50, 60}, 9.6875 * 1000 / clock},
		// Alternating 0 and +4 ms: |D| = 32 ticks each time after the first.
		{"alternating", []float64{0, 24, 40, 64, 80, 104}, func() float64 {
			j := 0.0
			for range 5 {
				j += (32 - j) / 16
			}
			return j * 1000 / clock
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			epoch := time.Unix(5000, 0)
			s := newReceptionStats(clock, epoch)
			for i, ms := range tt.arrivals {
				s.update(uint16(i), 12345+uint32(i*160), epoch.Add(time.Duration(ms*float64(time.Millisecond))))
			}
			if got := s.jitterMs(); math.Abs(got-tt.wantMs) > 0.01 {
				t.Errorf("jitter %.4f ms, want %.4f", got, tt.wantMs)
			}
		})
	}
}

func TestLost24(t *testing.T) {
	for _, tt := range []struct {
		lost int64
		wire uint32
	}{
		{0, 0}, {5, 5}, {-1, 0xffffff}, {1 << 30, 0x7fffff}, {-1 << 30, 0x800000},
	} {
		if got := clampLost24(tt.lost); got != tt.wire {
			t.Errorf("clampLost24(%d) = %#x, want %#x", tt.lost, got, tt.wire)
		}
		if back := lost24(tt.wire); tt.lost >= -0x800000 && tt.lost <= 0x7fffff && back != tt.lost {
			t.Errorf("lost24(%#x) = %d, want %d", tt.wire, back, tt.lost)
		}
	}
}

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
