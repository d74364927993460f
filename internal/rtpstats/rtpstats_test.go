package rtpstats

import (
	"math"
	"testing"
	"time"
)

func TestLoss(t *testing.T) {
	tests := []struct {
		name     string
		seqs     []uint16
		expected uint64
		lost     int64
		extMax   uint32
		fraction uint8 // of the one interval
		last     Outcome
	}{
		{"in order", []uint16{10, 11, 12, 13}, 4, 0, 13, 0, Counted},
		{"one lost", []uint16{10, 11, 13, 14}, 5, 1, 14, 256 / 5, Counted},
		{"burst of three lost", []uint16{1, 5, 6, 7}, 7, 3, 7, 3 * 256 / 7, Counted},
		{"wrap", []uint16{65534, 65535, 0, 1}, 4, 0, 65537, 0, Counted},
		{"loss across wrap", []uint16{65534, 0, 1}, 4, 1, 65537, 64, Counted},
		{"reordered", []uint16{1, 3, 2, 4}, 4, 0, 4, 0, Counted},
		{"duplicate: loss goes negative", []uint16{1, 2, 2, 3}, 3, -1, 3, 0, Counted},
		{"late packet from before the wrap", []uint16{65535, 0, 65534, 1}, 3, -1, 65537, 0, Counted},
		// A far jump counts only once confirmed: the sender restarted.
		{"far jump once is held", []uint16{100, 101, 40000}, 2, 0, 101, 0, Held},
		{"far jump once is ignored", []uint16{100, 101, 40000, 102}, 3, 0, 102, 0, Counted},
		{"far jump twice restarts", []uint16{100, 101, 40000, 40001}, 1, 0, 40001, 0, Restarted},
		{"loss before a restart is forgotten", []uint16{100, 105, 40000, 40001, 40002}, 2, 0, 40002, 0, Counted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			epoch := time.Unix(1000, 0)
			var s Receiver
			var out Outcome
			for i, seq := range tt.seqs {
				out = s.Update(seq, uint32(i*160), epoch.Add(time.Duration(i)*20*time.Millisecond), 8000)
			}
			if out != tt.last {
				t.Errorf("last outcome %d, want %d", out, tt.last)
			}
			if got := s.Expected(); got != tt.expected {
				t.Errorf("expected %d, want %d", got, tt.expected)
			}
			if got := s.Lost(); got != tt.lost {
				t.Errorf("lost %d, want %d", got, tt.lost)
			}
			if got := s.ExtendedMax(); got != tt.extMax {
				t.Errorf("extended max %d, want %d", got, tt.extMax)
			}
			if got := s.CloseInterval(); got != tt.fraction || s.Fraction() != tt.fraction {
				t.Errorf("fraction %d/256 (kept %d), want %d/256", got, s.Fraction(), tt.fraction)
			}
			// A second interval with nothing new lost nothing.
			if got := s.CloseInterval(); got != 0 {
				t.Errorf("empty interval fraction %d", got)
			}
		})
	}
	var zero Receiver
	if zero.Expected() != 0 || zero.Lost() != 0 || zero.JitterMS() != 0 {
		t.Error("a receiver without packets reports something")
	}
}

func TestJitter(t *testing.T) {
	const clock = 8000
	type pk struct {
		seq    uint16
		ts     uint32
		arrive float64 // ms after the first packet
		clock  uint32
	}
	alternating := 0.0
	for range 5 {
		alternating += (32 - alternating) / 16
	}
	tests := []struct {
		name   string
		pkts   []pk
		wantMs float64
	}{
		{"perfectly paced", []pk{{0, 0, 0, clock}, {1, 160, 20, clock}, {2, 320, 40, clock}, {3, 480, 60, clock}}, 0},
		// RFC 3550 A.8: one packet 10 ms late gives D = 80 ticks, then 80
		// back: J1 = 80/16 = 5, J2 = 5 + (80-5)/16 = 9.6875 ticks.
		{"one late packet", []pk{{0, 0, 0, clock}, {1, 160, 20, clock}, {2, 320, 50, clock}, {3, 480, 60, clock}}, 9.6875 * 1000 / clock},
		// Seq 2 arrives 20 ms late, after seq 3: D = 160 ticks once.
		{"reordered", []pk{{1, 0, 0, clock}, {3, 320, 40, clock}, {2, 160, 40, clock}}, 160.0 / 16 * 1000 / clock},
		// Alternating 0 and +4 ms: |D| = 32 ticks each time after the first.
		{"alternating", []pk{{0, 0, 0, clock}, {1, 160, 24, clock}, {2, 320, 40, clock}, {3, 480, 64, clock}, {4, 640, 80, clock}, {5, 800, 104, clock}},
			alternating * 1000 / clock},
		{"unknown clock: none", []pk{{0, 0, 0, 0}, {1, 160, 50, 0}}, 0},
		// A new clock rate (another payload type) starts afresh.
		{"clock change", []pk{{0, 0, 0, clock}, {1, 160, 50, clock}, {2, 1000, 60, 90000}, {3, 2800, 80, 90000}}, 0},
		// A restarted sequence brings new timestamps: no jump in jitter.
		{"restart", []pk{{1, 0, 0, clock}, {2, 160, 20, clock}, {20000, 99999, 40, clock}, {20001, 100159, 60, clock}, {20002, 100319, 80, clock}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			epoch := time.Unix(5000, 0)
			var s Receiver
			for _, p := range tt.pkts {
				s.Update(p.seq, 12345+p.ts, epoch.Add(time.Duration(p.arrive*float64(time.Millisecond))), p.clock)
			}
			if got := s.JitterMS(); math.Abs(got-tt.wantMs) > 1e-9 {
				t.Errorf("jitter %.6f ms, want %.6f", got, tt.wantMs)
			}
			if got, want := s.Jitter(), tt.wantMs*float64(s.Clock())/1000; math.Abs(got-want) > 1e-9 {
				t.Errorf("jitter %.6f ticks, want %.6f", got, want)
			}
		})
	}
}

// The jitter clock is exact however long the call: after 30 hours of
// 90 kHz video paced perfectly, jitter is still 0.
func TestJitterLongCall(t *testing.T) {
	epoch := time.Unix(1700000000, 0)
	var s Receiver
	const clock = 90000
	for i, at := range []time.Duration{0, 30 * time.Hour, 30*time.Hour + 33*time.Millisecond} {
		ts := uint32(uint64(at) * clock / uint64(time.Second))
		s.Update(uint16(i), ts, epoch.Add(at), clock)
	}
	if got := s.JitterMS(); got > 0.02 {
		t.Errorf("jitter %v ms after 30 hours", got)
	}
}

func TestLost24(t *testing.T) {
	for _, tt := range []struct {
		lost int64
		wire uint32
	}{
		{0, 0}, {5, 5}, {-1, 0xffffff}, {1 << 30, 0x7fffff}, {-1 << 30, 0x800000},
	} {
		if got := ClampLost24(tt.lost); got != tt.wire {
			t.Errorf("ClampLost24(%d) = %#x, want %#x", tt.lost, got, tt.wire)
		}
		if back := Lost24(tt.wire); tt.lost >= -0x800000 && tt.lost <= 0x7fffff && back != tt.lost {
			t.Errorf("Lost24(%#x) = %d, want %d", tt.wire, back, tt.lost)
		}
	}
}
