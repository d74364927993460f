package apiserver

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/apimetrics"
)

func TestHTTPServerLimits(t *testing.T) {
	s := HTTPServer(http.NotFoundHandler(), nil, slog.New(slog.DiscardHandler), 30*time.Second, 45*time.Second)
	if s.ReadTimeout != 30*time.Second || s.WriteTimeout != 45*time.Second || s.ReadHeaderTimeout != 10*time.Second ||
		s.IdleTimeout != 2*time.Minute || s.MaxHeaderBytes != 16<<10 || s.ErrorLog == nil {
		t.Errorf("server limits %+v", s)
	}
}

func TestSetHeaders(t *testing.T) {
	h := http.Header{}
	SetHeaders(h)
	for k, want := range map[string]string{
		"Strict-Transport-Security": "max-age=31536000",
		"X-Content-Type-Options":    "nosniff",
		"X-Frame-Options":           "DENY",
		"Content-Security-Policy":   "default-src 'none'; frame-ancestors 'none'",
		"Referrer-Policy":           "no-referrer",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func TestRecovered(t *testing.T) {
	for _, tc := range []struct {
		name    string
		p       any
		written int // status already sent
		failed  bool
		logged  bool
	}{
		{name: "no panic"},
		{name: "panic before writing", p: "boom", failed: true, logged: true},
		{name: "panic after writing", p: "boom", written: 200, logged: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			sw := &apimetrics.StatusWriter{ResponseWriter: httptest.NewRecorder(), Status: tc.written}
			failed := false
			Recovered(tc.p, slog.New(slog.NewTextHandler(&logs, nil)), "test", "/r", sw, func() { failed = true })
			if failed != tc.failed {
				t.Errorf("fail called %v, want %v", failed, tc.failed)
			}
			if got := strings.Contains(logs.String(), `msg="test handler panic" route=/r panic=boom`); got != tc.logged {
				t.Errorf("logged %v, want %v: %s", got, tc.logged, logs.String())
			}
		})
	}
	t.Run("abort panics again", func(t *testing.T) {
		defer func() {
			if p := recover(); p != http.ErrAbortHandler {
				t.Errorf("recovered %v, want http.ErrAbortHandler", p)
			}
		}()
		Recovered(http.ErrAbortHandler, slog.New(slog.DiscardHandler), "test", "/r", &apimetrics.StatusWriter{}, func() {})
		t.Error("did not panic")
	})
}

func TestChecks(t *testing.T) {
	var c Checks
	c.Check(false, "fine")
	if err := c.Err("api config"); err != nil {
		t.Fatalf("no problems: %v", err)
	}
	c.Check(true, "Port %d out of range", 0)
	c.Check(true, "Name is required")
	err := c.Err("api config")
	if err == nil || err.Error() != "api config: Port 0 out of range\nName is required" {
		t.Fatalf("got %v", err)
	}
	var all interface{ Unwrap() []error }
	if !errors.As(err, &all) || len(all.Unwrap()) != 2 {
		t.Errorf("problems not joined: %#v", err)
	}
}
