package sipserver

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestNonceCounts drives the replay table through its generations with a
// capacity of 4 (two generations of 2).
func TestNonceCounts(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	tab := newNonceCounts(4)
	steps := []struct {
		nonce  string
		nc     uint64
		issued int
		want   error
	}{
		{"a", 1, 0, nil},
		{"a", 1, 0, errDigestReplay},
		{"a", 2, 0, nil},
		{"b", 1, 1, nil},
		{"c", 1, 2, nil}, // the current generation (a, b) becomes the previous one
		{"a", 3, 0, nil}, // still held, in the previous generation
		{"a", 3, 0, errDigestReplay},
		{"d", 1, 3, nil},
		{"e", 1, 4, nil},            // (a, b) dropped: the floor is 1
		{"a", 1, 0, errDigestStale}, // its count is gone: never from nc=1 again
		{"b", 9, 1, errDigestStale},
		{"x", 1, 1, errDigestStale}, // unseen, but issued at the floor
		{"c", 2, 2, nil},
		{"f", 1, 5, nil},
	}
	for i, s := range steps {
		if err := tab.use(s.nonce, s.nc, at(s.issued), at(s.issued+300)); !errors.Is(err, s.want) || (err == nil) != (s.want == nil) {
			t.Fatalf("step %d: use(%s, nc=%d, issued %d) = %v, want %v", i, s.nonce, s.nc, s.issued, err, s.want)
		}
		if n := tab.len(); n > 4 {
			t.Fatalf("step %d: %d nonces held, more than 4", i, n)
		}
	}
	tab.sweep(at(303)) // c (issued 2) and older expire
	for _, k := range tab.keys() {
		if k == "c" || k == "a" || k == "b" {
			t.Errorf("%s held after it expired", k)
		}
	}
}

// TestNonceCountsBounded: a flood of new nonces keeps the table within
// its bound, and each stays usable until its generation is dropped.
func TestNonceCountsBounded(t *testing.T) {
	tab := newNonceCounts(1000)
	now := time.Unix(1_800_000_000, 0)
	for i := range 10_000 {
		issued := now.Add(time.Duration(i) * time.Millisecond)
		if err := tab.use(fmt.Sprint("n", i), 1, issued, issued.Add(time.Hour)); err != nil {
			t.Fatalf("nonce %d: %v", i, err)
		}
		if tab.len() > 1000 {
			t.Fatalf("nonce %d: %d held", i, tab.len())
		}
	}
	if err := tab.use("n9999", 2, now, now.Add(time.Hour)); err != nil {
		t.Errorf("the newest nonce: %v", err)
	}
}

// TestFailureLimiterFullTable: a full failure table is swept for a new key
// at most once a second, so a flood of new keys does not scan it on every
// request; expired keys do go at the next sweep.
func TestFailureLimiterFullTable(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	l := newFailureLimiter(5, 100*time.Millisecond)
	for i := range maxFailureKeys {
		l.fail(fmt.Sprint("k", i), t0)
	}
	for _, s := range []struct {
		after time.Duration
		key   string
		held  int // keys held afterwards
	}{
		{50 * time.Millisecond, "x", maxFailureKeys},  // swept: nothing expired yet; x not counted
		{500 * time.Millisecond, "y", maxFailureKeys}, // all expired, but swept 0.45 s ago
		{1100 * time.Millisecond, "z", 1},             // swept: only z is held
	} {
		l.reserve(s.key, t0.Add(s.after), true)
		if n := len(l.keys); n != s.held {
			t.Errorf("after %v (%s): %d keys held, want %d", s.after, s.key, n, s.held)
		}
	}
}
