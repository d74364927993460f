package mcsapi

import (
	"net/http"
	"testing"

	"github.com/z5vrs/z5/internal/testenv"
)

// TestRateLimitPerAddress: beyond its burst an address gets 429 with
// Retry-After and the JSON error shape, the security headers still set.
func TestRateLimitPerAddress(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RateLimit, c.RateBurst = 1, 3 })
	codes := map[int]int{}
	var limited resp
	for range 6 {
		r := e.do(http.MethodGet, PathContacts, e.alice, "")
		codes[r.StatusCode]++
		if r.StatusCode == http.StatusTooManyRequests {
			limited = r
		}
	}
	testenv.WantRateLimited(t, codes, limited.Header, limited.body)
}

// TestSecurityHeadersOnEveryAnswer: success, client error and not found
// all carry HSTS and nosniff; answers holding a license or an error are
// never cached.
func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		method, path, token string
		code                int
		noStore             bool
	}{
		{http.MethodGet, PathHealth, "", http.StatusOK, true},
		{http.MethodPost, PathLicense, e.alice, http.StatusOK, true},
		{http.MethodGet, PathContacts, "", http.StatusUnauthorized, true},
		{http.MethodGet, "/nowhere", "", http.StatusNotFound, true},
		{http.MethodDelete, PathLicense, e.alice, http.StatusMethodNotAllowed, true},
	} {
		r := e.do(tt.method, tt.path, tt.token, "").want(t, tt.code)
		if r.Header.Get("Strict-Transport-Security") == "" || r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s %s: security headers missing: %v", tt.method, tt.path, r.Header)
		}
		if tt.noStore && r.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s: Cache-Control %q, want no-store", tt.method, tt.path, r.Header.Get("Cache-Control"))
		}
	}
}
