package relay

import (
	"math"
	"testing"
	"time"
)

func TestSeqStats(t *testing.T) {
	type pk struct {
		seq    uint16
		ts     uint32
		arrive time.Duration // since the first packet
		ssrc   uint32
	}
	tests := []struct {
		name   string
		pkts   []pk
		lost   int64
		jitter float64 // ms at 8 kHz
	}{
		{"steady 20ms", []pk{{1, 0, 0, 1}, {2, 160, 20 * time.Millisecond, 1}, {3, 320, 40 * time.Millisecond, 1}}, 0, 0},
		{"one lost", []pk{{1, 0, 0, 1}, {2, 160, 20 * time.Millisecond, 1}, {4, 480, 60 * time.Millisecond, 1}, {5, 640, 80 * time.Millisecond, 1}}, 1, 0},
		{"reordered", []pk{{1, 0, 0, 1}, {3, 320, 40 * time.Millisecond, 1}, {2, 160, 40 * time.Millisecond, 1}}, 0, 160.0 / 16 / 8}, // seq 2 arrives 20ms late
		{"duplicate counts negative", []pk{{1, 0, 0, 1}, {2, 160, 20 * time.Millisecond, 1}, {2, 160, 20 * time.Millisecond, 1}}, -1, 0},
		{"sequence wraps", []pk{{65534, 0, 0, 1}, {65535, 160, 20 * time.Millisecond, 1}, {1, 480, 60 * time.Millisecond, 1}}, 1, 0},
		// RFC 3550 A.8: transit 0, 80, 0 samples: J = 80/16 = 5, then
		// 5 + (80-5)/16 = 9.6875 samples = 1.2109375 ms at 8 kHz.
		{"jitter", []pk{{1, 0, 0, 1}, {2, 160, 30 * time.Millisecond, 1}, {3, 320, 40 * time.Millisecond, 1}}, 0, 9.6875 / 8},
		// A jump of 20000 is believed only when the next packet follows it.
		{"restart after a jump", []pk{{1, 0, 0, 1}, {2, 160, 20 * time.Millisecond, 1}, {20000, 320, 40 * time.Millisecond, 1},
			{20001, 480, 60 * time.Millisecond, 1}, {20003, 800, 100 * time.Millisecond, 1}}, 1, 0},
		{"restart keeps earlier loss", []pk{{1, 0, 0, 1}, {3, 320, 40 * time.Millisecond, 1}, {20000, 9000, 60 * time.Millisecond, 1},
			{20001, 9160, 80 * time.Millisecond, 1}, {20002, 9320, 100 * time.Millisecond, 1}}, 1, 0},
		{"new SSRC keeps earlier loss", []pk{{1, 0, 0, 1}, {3, 320, 40 * time.Millisecond, 1},
			{500, 9000, 60 * time.Millisecond, 2}, {501, 9160, 80 * time.Millisecond, 2}}, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s seqStats
			t0 := time.Unix(1700000000, 0)
			for _, p := range tt.pkts {
				s.update(rtpPacket(0, p.seq, p.ts, p.ssrc, ""), t0.Add(p.arrive), 8000)
			}
			if got := s.lost(); got != tt.lost {
				t.Errorf("lost = %d, want %d", got, tt.lost)
			}
			if got := s.jitterMS(); math.Abs(got-tt.jitter) > 1e-9 {
				t.Errorf("jitter = %v ms, want %v", got, tt.jitter)
			}
		})
	}
}

func TestReportStats(t *testing.T) {
	var r reportStats
	r.update(receiverReport(1, 0xaaaa, 5, 160))
	r.update(receiverReport(1, 0xbbbb, 0xffffff, 80)) // -1: duplicates
	r.update(receiverReport(1, 0xaaaa, 7, 80))        // newer report replaces
	r.update([]byte{0x81, 0xc9, 0, 1})                // truncated: ignored
	if got := r.lost(); got != 6 {
		t.Errorf("lost = %d, want 6", got)
	}
	if got := r.jitterMS(8000); got != 10 {
		t.Errorf("jitter = %v ms, want 10", got)
	}
	for i := range uint32(20) {
		r.update(receiverReport(1, 0x1000+i, 0, 0))
	}
	if len(r.blocks) > maxReportedSSRCs {
		t.Errorf("%d SSRCs kept, bound is %d", len(r.blocks), maxReportedSSRCs)
	}
}
