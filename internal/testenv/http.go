package testenv

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"
)

// Fetch sends req with c and returns the response with its whole body
// read (and closed); a transport or read error fails the test.
func Fetch(t testing.TB, c *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL.Path, err)
	}
	return res, b
}

// WantRateLimited checks of a JSON API's answers to six requests at once
// from one address, its limit 1/s with a burst of 3, that the burst passed
// (3 or 4, one token may have come back) and the rest got 429; the 429
// (limited) must say when to come back, carry the error code rate_limited
// and the security headers every answer has.
func WantRateLimited(t testing.TB, codes map[int]int, limited http.Header, body []byte) {
	t.Helper()
	if codes[http.StatusOK] < 3 || codes[http.StatusOK] > 4 || codes[http.StatusTooManyRequests] != 6-codes[http.StatusOK] {
		t.Fatalf("6 requests at 1/s burst 3: %v", codes)
	}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != "rate_limited" {
		t.Errorf("429 body %s: %v", body, err)
	}
	if ra, err := strconv.Atoi(limited.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q", limited.Get("Retry-After"))
	}
	for h, want := range map[string]string{
		"Strict-Transport-Security": "max-age=31536000",
		"X-Content-Type-Options":    "nosniff",
		"Cache-Control":             "no-store",
	} {
		if got := limited.Get(h); got != want {
			t.Errorf("429 %s: %q, want %q", h, got, want)
		}
	}
}
