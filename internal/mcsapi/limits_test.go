package mcsapi

import (
	"net/http"
	"strconv"
	"testing"
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
	if codes[http.StatusOK] < 3 || codes[http.StatusOK] > 4 || codes[http.StatusTooManyRequests] != 6-codes[http.StatusOK] {
		t.Fatalf("6 requests at 1/s burst 3: %v", codes)
	}
	if got := limited.err().Code; got != "rate_limited" {
		t.Errorf("error code %q", got)
	}
	if ra, err := strconv.Atoi(limited.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q", limited.Header.Get("Retry-After"))
	}
	for h, want := range map[string]string{
		"Strict-Transport-Security": "max-age=31536000",
		"X-Content-Type-Options":    "nosniff",
		"Cache-Control":             "no-store",
	} {
		if got := limited.Header.Get(h); got != want {
			t.Errorf("429 %s: %q, want %q", h, got, want)
		}
	}
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
