// Package apimetrics counts and times the requests of one HTTPS API (ZDial,
// the MCS API) by route and status code, and records the status a handler
// wrote. It is not the APIs' own counters (logins, licenses), which each
// API keeps beside it.
package apimetrics

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Opts name an API's request series.
type Opts struct {
	// Prefix starts both series' names: <Prefix>_requests_total and
	// <Prefix>_request_duration_seconds.
	Prefix       string
	CountHelp    string
	DurationHelp string
	Buckets      []float64 // of the duration histogram, in seconds
}

// Requests are an API's request counter (by route and code) and duration
// histogram (by route).
type Requests struct {
	count    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewRequests builds the series of o; Register exports them.
func NewRequests(o Opts) *Requests {
	return &Requests{
		count: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: o.Prefix + "_requests_total", Help: o.CountHelp,
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: o.Prefix + "_request_duration_seconds", Help: o.DurationHelp, Buckets: o.Buckets,
		}, []string{"route"}),
	}
}

// Collectors are the series to register.
func (r *Requests) Collectors() []prometheus.Collector {
	return []prometheus.Collector{r.count, r.duration}
}

// Observe counts one request of route answered with status after d. A
// status of 0 (the handler wrote nothing) counts as 200, what net/http
// sends.
func (r *Requests) Observe(route string, status int, d time.Duration) {
	if status == 0 {
		status = http.StatusOK
	}
	r.count.WithLabelValues(route, strconv.Itoa(status)).Inc()
	r.duration.WithLabelValues(route).Observe(d.Seconds())
}

// Register adds cs to reg (nil: the series are kept but not exported); api
// names the owner in errors. A second API of the same kind on one registry
// is an error: each serves its own.
func Register(reg prometheus.Registerer, api string, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			if _, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
				return fmt.Errorf("%s metrics: already registered (one Service per registry): %w", api, err)
			}
			return fmt.Errorf("%s metrics: %w", api, err)
		}
	}
	return nil
}

// StatusWriter remembers the status a handler sent, for metrics, logs and
// a panic handler that must not write a second header.
type StatusWriter struct {
	http.ResponseWriter
	Status int // 0 until the handler writes
}

func (w *StatusWriter) WriteHeader(code int) {
	if w.Status == 0 {
		w.Status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *StatusWriter) Write(b []byte) (int, error) {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *StatusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
