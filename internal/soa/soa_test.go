package soa_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/z5vrs/z5/internal/soa"
	"github.com/z5vrs/z5/internal/soa/soatest"
	"github.com/z5vrs/z5/internal/store"
)

// TestComputeGeneratedMonth checks the report on soatest's generated
// month against the figures worked out by hand (soatest.Want).
func TestComputeGeneratedMonth(t *testing.T) {
	got, err := soa.Compute(soatest.Month, soatest.Calls())
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(soatest.Want, got); d != "" {
		t.Errorf("report (-want +got):\n%s", d)
	}
}

func TestCompute(t *testing.T) {
	q := time.Date(2026, 2, 10, 12, 0, 0, 0, time.UTC)
	answered := func(id string, wait time.Duration) store.Call {
		return store.Call{CallID: id, Direction: store.CallOutbound, QueuedAt: q, SessionStart: q.Add(wait)}
	}
	tests := []struct {
		name  string
		calls []store.Call
		want  soa.Report
	}{
		{"nothing offered", nil, soa.Report{Month: "2026-02", PercentWithin: 100, MeetsStandard: true, ByDirection: map[string]int{}}},
		{"exactly 120 s is within", []store.Call{answered("a", 120*time.Second)},
			soa.Report{Month: "2026-02", Offered: 1, Answered: 1, AnsweredWithin: 1, PercentWithin: 100, MeetsStandard: true,
				MeanWait: 120, P95Wait: 120, ByDirection: map[string]int{store.CallOutbound: 1}}},
		{"120.001 s is not", []store.Call{answered("a", 120*time.Second+time.Millisecond)},
			soa.Report{Month: "2026-02", Offered: 1, Answered: 1, PercentWithin: 0, MeanWait: 120, P95Wait: 120,
				ByDirection: map[string]int{store.CallOutbound: 1}}},
		{"4 of 5 is exactly 80%", []store.Call{answered("a", time.Second), answered("b", 2*time.Second), answered("c", 3*time.Second),
			answered("d", 4*time.Second), {CallID: "e", Direction: store.CallInbound, QueuedAt: q, EndReason: "abandoned"}},
			soa.Report{Month: "2026-02", Offered: 5, Answered: 4, AnsweredWithin: 4, PercentWithin: 80, MeetsStandard: true,
				MeanWait: 2.5, P95Wait: 4, Abandoned: 1, ByDirection: map[string]int{store.CallOutbound: 4, store.CallInbound: 1}}},
		{"still waiting counts as offered, unanswered", []store.Call{{CallID: "w", Direction: store.CallOutbound, QueuedAt: q}},
			soa.Report{Month: "2026-02", Offered: 1, PercentWithin: 0, ByDirection: map[string]int{store.CallOutbound: 1}}},
		{"a re-queued call is not offered again", []store.Call{answered("a", 10*time.Second),
			{CallID: "r", Direction: store.CallOutbound, QueuedAt: q, SessionStart: q.Add(time.Second), RequeueOf: "a"}},
			soa.Report{Month: "2026-02", Offered: 1, Answered: 1, AnsweredWithin: 1, PercentWithin: 100, MeetsStandard: true,
				MeanWait: 10, P95Wait: 10, Requeued: 1, ByDirection: map[string]int{store.CallOutbound: 1}}},
		{"a clock step never makes a wait negative", []store.Call{answered("a", -time.Second)},
			soa.Report{Month: "2026-02", Offered: 1, Answered: 1, AnsweredWithin: 1, PercentWithin: 100, MeetsStandard: true,
				ByDirection: map[string]int{store.CallOutbound: 1}}},
	}
	for _, tt := range tests {
		got, err := soa.Compute("2026-02", tt.calls)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, d)
		}
	}
}

func TestMonth(t *testing.T) {
	from, to, err := soa.Month("2024-02")
	if err != nil || !from.Equal(time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)) || !to.Equal(time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("soa.Month(2024-02) = %v, %v, %v", from, to, err)
	}
	for _, bad := range []string{"", "2024-2", "2024-13", "2024-02-01", "02-2024", "2024/02", " 2024-02"} {
		if _, _, err := soa.Month(bad); err == nil {
			t.Errorf("soa.Month(%q) accepted", bad)
		}
	}
}
