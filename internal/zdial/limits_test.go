package zdial

import (
	"net"
	"testing"

	"github.com/z5vrs/z5/internal/testenv"
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
	testenv.WantRateLimited(t, codes, limited.header, limited.body)
	other := e.newClient(&net.TCPAddr{IP: net.ParseIP("127.0.0.2")})
	if r := e.do(other, "GET", "/healthz", "", ""); r.status != 200 {
		t.Fatalf("another address: %d", r.status)
	}
}
