package floodguard

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"
)

func TestLimiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter(200, 400, 16)
		for i := range 400 {
			if _, ok := l.Allow(src1); !ok {
				t.Fatalf("request %d of the burst refused", i+1)
			}
		}
		wait, ok := l.Allow(src1)
		if ok || wait <= 0 || wait > 5*time.Millisecond {
			t.Fatalf("request 401: ok=%v wait=%s, want refused for ~5ms", ok, wait)
		}
		if RetrySeconds(wait) != 1 {
			t.Errorf("Retry-After %d, want 1", RetrySeconds(wait))
		}
		// Another source is not affected.
		if _, ok := l.Allow(src2); !ok {
			t.Fatal("a second source is limited by the first")
		}
		// At the sustained rate: 200 a second pass.
		time.Sleep(time.Second)
		passed := 0
		for range 300 {
			if _, ok := l.Allow(src1); ok {
				passed++
			}
		}
		if passed != 200 {
			t.Fatalf("after 1s, %d passed, want 200", passed)
		}
	})
}

func TestLimiterIPv6AndBound(t *testing.T) {
	l := NewLimiter(1, 2, 10)
	a := netip.MustParseAddr("2001:db8::1")
	b := netip.MustParseAddr("2001:db8::2")
	l.Allow(a)
	l.Allow(b)
	if _, ok := l.Allow(a); ok {
		t.Fatal("two addresses of one /64 have separate buckets")
	}
	for i := range 1000 {
		l.Allow(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}))
	}
	if n := l.Tracked(); n > 10 {
		t.Fatalf("%d buckets, cap 10", n)
	}
}

func TestLimiterOff(t *testing.T) {
	l := NewLimiter(0, 0, 16)
	for range 10000 {
		if _, ok := l.Allow(src1); !ok {
			t.Fatal("a limiter of rate 0 refused")
		}
	}
}

func TestRetrySeconds(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want int
	}{{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {1001 * time.Millisecond, 2}, {90 * time.Second, 90}} {
		if got := RetrySeconds(tt.d); got != tt.want {
			t.Errorf("RetrySeconds(%s) = %d, want %d", tt.d, got, tt.want)
		}
	}
}
