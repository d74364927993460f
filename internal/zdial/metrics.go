package zdial

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Service's Prometheus series. They exist even without a
// Registerer, so handlers never check for nil.
type metrics struct {
	requests *prometheus.CounterVec   // route, code
	duration *prometheus.HistogramVec // route
	logins   *prometheus.CounterVec   // result
	selects  *prometheus.CounterVec   // result
}

// Login results.
const (
	loginOK        = "ok"
	loginInvalid   = "invalid"   // wrong username or password
	loginLocked    = "locked"    // account (or phantom) locked
	loginThrottled = "throttled" // per-address rate limit
)

// Selection results.
const (
	selectNewDevice = "new_device"
	selectReused    = "reused_device"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "z5_zdial_requests_total",
			Help: "ZDial HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "z5_zdial_request_duration_seconds",
			Help:    "ZDial request handling time by route (logins include argon2id).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "z5_zdial_logins_total",
			Help: "ZDial login attempts by result: ok, invalid, locked, throttled.",
		}, []string{"result"}),
		selects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "z5_zdial_selections_total",
			Help: "Successful number selections by whether the device was new or reused.",
		}, []string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.logins, m.selects} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("zdial metrics: already registered (one Service per registry): %w", err)
			}
			return nil, fmt.Errorf("zdial metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) observe(route string, status int, d time.Duration) {
	if status == 0 {
		status = 200 // handler wrote nothing: net/http sends 200
	}
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}
