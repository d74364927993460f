package sipcore

import (
	"testing"
	"time"
)

func TestReserveFailure(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const max, window = 3, 10 * time.Minute
	for _, tc := range []struct {
		name    string
		f       Failures
		now     time.Time
		enforce bool
		want    Failures
		ok      bool
	}{
		{"first", Failures{}, t0, true, Failures{1, t0}, true},
		{"below the limit", Failures{2, t0}, t0.Add(time.Minute), true, Failures{3, t0}, true},
		{"at the limit", Failures{3, t0}, t0.Add(time.Minute), true, Failures{3, t0}, false},
		{"at the limit, not enforced", Failures{3, t0}, t0.Add(time.Minute), false, Failures{4, t0}, true},
		{"window passed", Failures{3, t0}, t0.Add(window + time.Second), true, Failures{1, t0.Add(window + time.Second)}, true},
		{"released to zero opens a new window", Failures{0, t0}, t0.Add(time.Minute), true, Failures{1, t0.Add(time.Minute)}, true},
	} {
		got, ok := ReserveFailure(tc.f, max, window, tc.now, tc.enforce)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: got %+v %v, want %+v %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// TestReserveFailureConcurrentGuesses: guesses taken one after another on
// the same count, none finished yet, stop at the limit.
func TestReserveFailureConcurrentGuesses(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var f Failures
	admitted := 0
	for range 20 {
		var ok bool
		if f, ok = ReserveFailure(f, 5, time.Minute, t0, true); ok {
			admitted++
		}
	}
	if admitted != 5 || !FailureBlocked(f, 5, time.Minute, t0) {
		t.Fatalf("admitted %d of 20 in flight, count %+v; want 5 and blocked", admitted, f)
	}
	f = ReleaseFailure(f)
	if FailureBlocked(f, 5, time.Minute, t0) {
		t.Fatal("still blocked after one reservation was given back")
	}
	if FailureBlocked(Failures{5, t0}, 5, time.Minute, t0.Add(2*time.Minute)) {
		t.Fatal("blocked after the window")
	}
}
