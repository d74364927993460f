// Package apiserver is what the provider's HTTPS APIs (ZDial, the MCS API)
// do alike around their routes: the limits of their http.Server, the
// headers every response carries, a panicking handler answered with an
// error instead of a dropped connection, and the checks of their
// configuration. It knows nothing of their routes or error bodies.
package apiserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/z5vrs/z5/internal/apimetrics"
)

// HTTPServer returns an *http.Server for h with every timeout set, so a
// slow or stalled client cannot hold a connection or goroutine forever:
// read and write bound a whole request and response, headers get 10 s and
// 16 KiB, an idle connection 2 min. Its own errors are logged at debug.
func HTTPServer(h http.Handler, tlsConf *tls.Config, log *slog.Logger, read, write time.Duration) *http.Server {
	return &http.Server{
		Handler:           h,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       read,
		WriteTimeout:      write,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// SetHeaders sets the headers every API response carries: HTTPS only
// (HSTS), no content sniffing, no framing, no active content and no
// referrer.
func SetHeaders(h http.Header) {
	h.Set("Strict-Transport-Security", "max-age=31536000")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
}

// Recovered handles p, what recover() gave a handler of api's route (nil:
// it did not panic). http.ErrAbortHandler panics again, as net/http
// expects; any other panic is logged, and answered by fail when nothing
// was written yet.
func Recovered(p any, log *slog.Logger, api, route string, sw *apimetrics.StatusWriter, fail func()) {
	if p == nil {
		return
	}
	if p == http.ErrAbortHandler {
		panic(p)
	}
	log.Error(api+" handler panic", "route", route, "panic", fmt.Sprint(p))
	if sw.Status == 0 {
		fail()
	}
}

// Checks collects what is wrong with an API's configuration.
type Checks []error

// Check records the problem format describes when bad.
func (c *Checks) Check(bad bool, format string, args ...any) {
	if bad {
		*c = append(*c, fmt.Errorf(format, args...))
	}
}

// Err is nil when every check passed, else all problems under what.
func (c Checks) Err(what string) error {
	if len(c) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %w", what, errors.Join(c...))
}
