package zdial

import (
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestSourceKey: every per-source limit counts an IPv4 address or an IPv6
// /64, so a host rotating through its /64 stays one source.
func TestSourceKey(t *testing.T) {
	for _, tt := range []struct{ a, b string }{
		{"198.18.0.1", "198.18.0.1/32"},
		{"::ffff:198.18.0.1", "198.18.0.1/32"}, // IPv4-mapped counts as IPv4
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"fe80::1%eth0", "fe80::/64"}, // the zone is not part of the source
		{"::1", "::/64"},
	} {
		if got := sourceKey(netip.MustParseAddr(tt.a)); got != netip.MustParsePrefix(tt.b) {
			t.Errorf("sourceKey(%s) = %s, want %s", tt.a, got, tt.b)
		}
	}
}

// TestBuckets runs on the fake clock of a synctest bubble: time passes only
// by time.Sleep, whatever the machine's speed.
func TestBuckets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBuckets[netip.Prefix](3, 1.0/60, 100)
		a := sourceKey(netip.MustParseAddr("198.18.0.1"))
		for i := range 3 {
			if _, ok := b.take(a, time.Now()); !ok {
				t.Fatalf("take %d refused within capacity", i)
			}
		}
		if wait, ok := b.take(a, time.Now()); ok || wait != time.Minute {
			t.Errorf("4th take: ok=%v wait=%v, want refused for 1m", ok, wait)
		}
		// A refusal takes nothing: after a minute exactly one more.
		time.Sleep(time.Minute)
		if _, ok := b.take(a, time.Now()); !ok {
			t.Errorf("refused after a minute")
		}
		if _, ok := b.take(a, time.Now()); ok {
			t.Errorf("two takes after one minute")
		}
		// giveBack undoes a take.
		b.giveBack(a, time.Now())
		if _, ok := b.take(a, time.Now()); !ok {
			t.Errorf("refused after giveBack")
		}
		if _, ok := b.take(sourceKey(netip.MustParseAddr("198.18.0.2")), time.Now()); !ok {
			t.Errorf("another address refused")
		}
	})
}

// TestBucketsIPv6Slash64: addresses of one /64 share one bucket; the next
// /64 has its own.
func TestBucketsIPv6Slash64(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newBuckets[netip.Prefix](2, 1.0/60, 100)
	for i := range 2 {
		if _, ok := b.take(sourceKey(netip.MustParseAddr("2001:db8:1:2::"+strconv.Itoa(i+1))), now); !ok {
			t.Fatalf("take %d refused", i)
		}
	}
	if _, ok := b.take(sourceKey(netip.MustParseAddr("2001:db8:1:2:ffff::9")), now); ok {
		t.Errorf("same /64 not limited")
	}
	if _, ok := b.take(sourceKey(netip.MustParseAddr("2001:db8:1:3::1")), now); !ok {
		t.Errorf("other /64 refused")
	}
}

func TestBucketsBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newBuckets[netip.Prefix](1, 1.0/60, 50)
	for i := range 1000 {
		b.take(sourceKey(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})), now)
		if n := b.m.Len(); n > 50 {
			t.Fatalf("%d buckets after %d addresses, want <= 50", n, i+1)
		}
	}
	// Drained buckets are dropped as traffic goes on.
	later := now.Add(time.Hour)
	for i := range 10 {
		b.take(sourceKey(netip.AddrFrom4([4]byte{198, 19, 0, byte(i)})), later)
	}
	if n := b.m.Len(); n > 50-10+10 {
		t.Errorf("%d buckets", n)
	}
}

func TestLocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLocks(3, 15*time.Minute, 2)
		for i := range 3 {
			if d := l.reserve("ghost", time.Now()); d != 0 {
				t.Fatalf("reservation %d refused: %v", i, d)
			}
		}
		// The third reservation set the lock.
		time.Sleep(time.Minute)
		if d := l.reserve("ghost", time.Now()); d != 14*time.Minute {
			t.Errorf("reserve while locked = %v, want 14m", d)
		}
		if d := l.lockedFor("ghost", time.Now()); d != 14*time.Minute {
			t.Errorf("lockedFor = %v, want 14m", d)
		}
		// An undone reservation (its password never checked) lifts it.
		l.undo("ghost")
		if d := l.lockedFor("ghost", time.Now()); d != 0 {
			t.Errorf("still locked after undo: %v", d)
		}
		if d := l.reserve("ghost", time.Now()); d != 0 {
			t.Errorf("reserve after undo refused: %v", d)
		}
		time.Sleep(15 * time.Minute)
		if d := l.reserve("ghost", time.Now()); d != 0 {
			t.Errorf("still locked after the lockout: %v", d)
		}
		// A success clears the count.
		l.clear("ghost")
		for i := range 2 {
			if d := l.reserve("ghost", time.Now()); d != 0 {
				t.Fatalf("reservation %d after clear refused: %v", i, d)
			}
		}
		// Bounded: a third name evicts the least recently used.
		l.reserve("a", time.Now())
		l.reserve("b", time.Now())
		if l.m.Len() != 2 {
			t.Errorf("keys = %d, want 2", l.m.Len())
		}
	})
}

// TestLocksConcurrent: of many reservations at once exactly maxFailures
// pass; the rest are refused without being counted.
func TestLocksConcurrent(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLocks(5, 15*time.Minute, 100)
	var passed atomic.Int64
	var wg sync.WaitGroup
	for range 80 {
		wg.Go(func() {
			if l.reserve("victim", now) == 0 {
				passed.Add(1)
			}
		})
	}
	wg.Wait()
	if n := passed.Load(); n != 5 {
		t.Errorf("%d of 80 concurrent reservations passed, want 5", n)
	}
}
