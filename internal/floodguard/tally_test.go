package floodguard

import (
	"fmt"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"
)

func TestTallySlidingWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tl := NewTally(time.Minute, 16)
		for i := 1; i <= 5; i++ {
			if n := tl.Add("alice|192.0.2.1"); n != float64(i) {
				t.Fatalf("event %d counted as %v", i, n)
			}
		}
		if n := tl.Count("alice|192.0.2.1"); n != 5 {
			t.Fatalf("Count = %v, want 5", n)
		}
		if n := tl.Count("bob|192.0.2.1"); n != 0 {
			t.Fatalf("another key counts %v", n)
		}
		time.Sleep(90 * time.Second) // half of the old window still overlaps
		if n := tl.Count("alice|192.0.2.1"); n < 2 || n > 3 {
			t.Fatalf("after 1.5 windows Count = %v, want about 2.5", n)
		}
		time.Sleep(time.Minute)
		if n := tl.Count("alice|192.0.2.1"); n != 0 {
			t.Fatalf("after 2.5 windows Count = %v, want 0", n)
		}
		tl.Add("alice|192.0.2.1")
		tl.Reset("alice|192.0.2.1")
		if n := tl.Count("alice|192.0.2.1"); n != 0 {
			t.Fatalf("after Reset Count = %v", n)
		}
	})
}

func TestTallyBounded(t *testing.T) {
	tl := NewTally(time.Minute, 10)
	for i := range 100 {
		tl.Add(fmt.Sprint(i))
	}
	if n := tl.Tracked(); n != 10 {
		t.Fatalf("tracked %d keys, want at most 10", n)
	}
}

// TestKeyIPv6Slash64: every per-source limit keys an IPv6 source by its
// /64 and an IPv4 source by its address (also when written IPv4-mapped).
func TestKeyIPv6Slash64(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", true},
		{"2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"192.0.2.1", "::ffff:192.0.2.1", true},
		{"192.0.2.1", "192.0.2.2", false},
	} {
		ka, kb := Key(netip.MustParseAddr(tc.a)), Key(netip.MustParseAddr(tc.b))
		if (ka == kb) != tc.same {
			t.Errorf("Key(%s)=%s, Key(%s)=%s: same=%v, want %v", tc.a, ka, tc.b, kb, ka == kb, tc.same)
		}
	}
}
