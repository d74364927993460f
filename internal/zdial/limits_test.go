package zdial

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

// TestRequestRateLimit: any endpoint, beyond the burst: 429 with
// Retry-After and the security headers; another address is not affected.
func TestRequestRateLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RateLimit, c.RateBurst = 1, 3 })
	codes := map[int]int{}
	var limited response
	for range 6 {
		r := e.do(nil, "GET", "/healthz", "", "")
		codes[r.status]++
		if r.status == 429 {
			limited = r
		}
	}
	if codes[200] < 3 || codes[200] > 4 || codes[429] != 6-codes[200] {
		t.Fatalf("6 requests at 1/s burst 3: %v", codes)
	}
	if !strings.Contains(string(limited.body), `"code":"rate_limited"`) {
		t.Errorf("429 body %s", limited.body)
	}
	if ra, err := strconv.Atoi(limited.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q", limited.header.Get("Retry-After"))
	}
	for h, want := range map[string]string{
		"Strict-Transport-Security": "max-age=31536000",
		"X-Content-Type-Options":    "nosniff",
		"Cache-Control":             "no-store",
	} {
		if got := limited.header.Get(h); got != want {
			t.Errorf("429 %s: %q, want %q", h, got, want)
		}
	}
	other := e.newClient(&net.TCPAddr{IP: net.ParseIP("127.0.0.2")})
	if r := e.do(other, "GET", "/healthz", "", ""); r.status != 200 {
		t.Fatalf("another address: %d", r.status)
	}
}
