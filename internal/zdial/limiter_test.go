package zdial

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestIPLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newIPLimiter(rate.Limit(1.0/60), 3, 100)
	a := netip.MustParseAddr("198.18.0.1")
	for i := range 3 {
		if _, ok := l.allow(a, now); !ok {
			t.Fatalf("attempt %d refused within burst", i)
		}
	}
	wait, ok := l.allow(a, now)
	if ok || wait != time.Minute {
		t.Errorf("4th attempt: ok=%v wait=%v, want refused for 1m", ok, wait)
	}
	// A refusal does not consume: after a minute exactly one more.
	if _, ok := l.allow(a, now.Add(time.Minute)); !ok {
		t.Errorf("refused after refill")
	}
	if _, ok := l.allow(a, now.Add(time.Minute)); ok {
		t.Errorf("allowed twice after one refill")
	}
	// Another address is independent.
	if _, ok := l.allow(netip.MustParseAddr("198.18.0.2"), now); !ok {
		t.Errorf("other address refused")
	}
}

func TestIPLimiterIPv6Prefix(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newIPLimiter(rate.Limit(1.0/60), 2, 100)
	// One host rotating through its /64 shares one bucket.
	for i := range 2 {
		if _, ok := l.allow(netip.MustParseAddr("2001:db8:1:2::"+strconv.Itoa(i+1)), now); !ok {
			t.Fatalf("attempt %d refused", i)
		}
	}
	if _, ok := l.allow(netip.MustParseAddr("2001:db8:1:2:ffff::9"), now); ok {
		t.Errorf("same /64 not limited")
	}
	if _, ok := l.allow(netip.MustParseAddr("2001:db8:1:3::1"), now); !ok {
		t.Errorf("other /64 refused")
	}
	// IPv4-mapped addresses are their IPv4 selves (clientIP unmaps).
	if addrKey(netip.MustParseAddr("::ffff:198.18.0.1").Unmap()) != addrKey(netip.MustParseAddr("198.18.0.1")) {
		t.Errorf("mapped address keyed apart")
	}
}

func TestIPLimiterBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newIPLimiter(rate.Limit(1.0/60), 1, 50)
	for i := range 1000 {
		ip := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		l.allow(ip, now)
		if n := l.buckets.len(); n > 50 {
			t.Fatalf("%d buckets after %d addresses, want <= 50", n, i+1)
		}
	}
	// Refilled buckets are dropped as traffic goes on.
	later := now.Add(time.Hour)
	for i := range 10 {
		l.allow(netip.AddrFrom4([4]byte{198, 19, 0, byte(i)}), later)
	}
	if n := l.buckets.len(); n > 50-10+10 {
		t.Errorf("%d buckets", n)
	}
}

func TestPhantomLocks(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := newPhantomLocks(3, 15*time.Minute, 2)
	for range 3 {
		if d := p.lockedFor("ghost", now); d != 0 {
			t.Fatalf("locked early: %v", d)
		}
		p.fail("ghost", now)
	}
	if d := p.lockedFor("ghost", now.Add(time.Minute)); d != 14*time.Minute {
		t.Errorf("lockedFor = %v, want 14m", d)
	}
	if d := p.lockedFor("ghost", now.Add(15*time.Minute)); d != 0 {
		t.Errorf("still locked after lockout: %v", d)
	}
	// Bounded: a third name evicts the least recently used.
	p.fail("a", now)
	p.fail("b", now)
	if p.m.len() != 2 {
		t.Errorf("phantoms = %d, want 2", p.m.len())
	}
}
