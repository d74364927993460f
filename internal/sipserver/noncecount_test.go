package sipserver

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestNonceCounts drives the replay table with 4 slots: nonce ids 0-3
// hold them until ids 4-7 take them over.
func TestNonceCounts(t *testing.T) {
	tab := newNonceCounts(4)
	ids := make([]uint64, 6)
	for i := range ids[:3] {
		ids[i] = tab.issue()
	}
	steps := []struct {
		issue bool // issue the next nonce first
		nonce int  // index in ids
		nc    uint64
		want  error
	}{
		{false, 0, 1, nil},
		{false, 0, 1, errDigestReplay},
		{false, 0, 3, nil}, // counts may skip
		{false, 0, 2, errDigestReplay},
		{false, 1, 1, nil},
		{false, 2, 0, errDigestReplay}, // nc=0 is never valid
		{false, 2, 1 << 32, errDigestReplay},
		{true, 3, 1, nil},             // id 3: the last slot
		{true, 4, 1, nil},             // id 4 takes id 0's slot
		{false, 0, 4, errDigestStale}, // never accepted again, whatever the count
		{false, 1, 2, nil},            // id 1 keeps its slot
		{true, 5, 1, nil},             // id 5 takes id 1's
		{false, 1, 3, errDigestStale},
		{false, 5, 1, errDigestReplay},
	}
	next := 3
	for i, s := range steps {
		if s.issue {
			ids[next] = tab.issue()
			next++
		}
		err := tab.use(ids[s.nonce], s.nc)
		if !errors.Is(err, s.want) || (err == nil) != (s.want == nil) {
			t.Fatalf("step %d: use(id %d, nc=%d) = %v, want %v", i, ids[s.nonce], s.nc, err, s.want)
		}
	}
}

// TestNonceCountsConcurrent: of many goroutines presenting the same
// nonce-count at once, exactly one is accepted (go test -race).
func TestNonceCountsConcurrent(t *testing.T) {
	tab := newNonceCounts(1 << 10)
	id := tab.issue()
	for nc := uint64(1); nc <= 50; nc++ {
		var wg sync.WaitGroup
		var mu sync.Mutex
		accepted := 0
		for range 8 {
			wg.Go(func() {
				if tab.use(id, nc) == nil {
					mu.Lock()
					accepted++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if accepted != 1 {
			t.Fatalf("nc %d: accepted %d times", nc, accepted)
		}
	}
}

// TestNonceReplayThroughVerify: a nonce whose slot a later nonce took is
// stale through verify too (the client is challenged again, stale=true).
func TestNonceReplayThroughVerify(t *testing.T) {
	a := newDigestAuth("mcs.z5.test", time.Hour, []string{"MD5"})
	a.nc = newNonceCounts(2)
	now := time.Now()
	bind := nonceBinding("TCP", "192.0.2.7:5071")
	h, _ := digestHash("MD5")
	ha1 := hexHash(h, "alice", "mcs.z5.test", "pw")
	cred := func(nonce, nc string) digestCredentials {
		c := digestCredentials{Username: "alice", Realm: "mcs.z5.test", Nonce: nonce, URI: "sip:mcs.z5.test",
			Algorithm: "MD5", CNonce: "cn", QOP: "auth", NC: nc, Opaque: a.opaque}
		c.Response = digestResponse(h, ha1, c.Nonce, c.NC, c.CNonce, c.QOP, "REGISTER", c.URI)
		return c
	}
	any := func(string) bool { return true }
	first := a.newNonce(now, bind)
	for _, s := range []struct {
		nonce, nc string // nonce "": a new one
		want      error
	}{
		{first, "00000001", nil},
		{first, "00000001", errDigestReplay},
		{first, "00000002", nil},
		{"", "00000001", nil},
		{"", "00000001", nil}, // takes first's slot
		{first, "00000003", errDigestStale},
	} {
		if s.nonce == "" {
			s.nonce = a.newNonce(now, bind)
		}
		err := a.verify(cred(s.nonce, s.nc), "REGISTER", ha1, now, bind, any)
		if !errors.Is(err, s.want) || (err == nil) != (s.want == nil) {
			t.Fatalf("nonce %.8s nc %s: %v, want %v", s.nonce, s.nc, err, s.want)
		}
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
