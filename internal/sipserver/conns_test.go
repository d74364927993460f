package sipserver

import (
	"net/netip"
	"testing"
	"time"
)

func TestConnTable(t *testing.T) {
	tb := newConnTable(2, 4)
	t0 := time.Unix(1000, 0)
	ip := netip.MustParseAddr("2001:2:0:7::1")
	sameNet := netip.MustParseAddr("2001:2:0:7::2")
	other := netip.MustParseAddr("192.0.2.1")

	a, ev := tb.admit(ip, t0, nil)
	if a == nil || ev != nil {
		t.Fatal("first connection not admitted")
	}
	b, ev := tb.admit(sameNet, t0.Add(time.Second), nil)
	if b == nil || ev != nil {
		t.Fatal("second connection of the /64 not admitted")
	}
	// a makes progress: b is now the stalest of the /64.
	a.touch(t0.Add(2 * time.Second))
	c, ev := tb.admit(ip, t0.Add(3*time.Second), nil)
	if c == nil || ev != b {
		t.Fatalf("at the cap: evicted %v, want the stalest (b)", ev)
	}
	if n := tb.unauthenticated(ip); n != 2 {
		t.Fatalf("unauthenticated %d, want 2", n)
	}
	// An authenticated connection leaves the source's count, not the
	// total.
	a.authenticate()
	if n := tb.unauthenticated(ip); n != 1 {
		t.Fatalf("after authentication unauthenticated %d, want 1", n)
	}
	d, ev := tb.admit(ip, t0.Add(4*time.Second), nil)
	if d == nil || ev != nil {
		t.Fatal("a slot freed by authentication not reusable")
	}
	// Total: a, b (evicted but not yet closed), c, d = 4.
	if x, _ := tb.admit(other, t0, nil); x != nil {
		t.Fatal("admitted beyond the overall cap")
	}
	b.release()
	b.release() // closing twice frees once
	if tb.size() != 3 {
		t.Fatalf("size %d, want 3", tb.size())
	}
	if x, _ := tb.admit(other, t0, nil); x == nil {
		t.Fatal("another source refused below the overall cap")
	}
	for _, s := range []*connSlot{a, c, d} {
		s.release()
	}
	if tb.size() != 1 || tb.unauthenticated(ip) != 0 {
		t.Fatalf("after release: size %d, unauthenticated %d", tb.size(), tb.unauthenticated(ip))
	}
}
