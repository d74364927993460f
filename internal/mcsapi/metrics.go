package mcsapi

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
	licenses prometheus.Counter
	imported *prometheus.CounterVec // result: created, updated, unchanged
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "z5_mcs_api_requests_total",
			Help: "MCS HTTPS API requests by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "z5_mcs_api_request_duration_seconds",
			Help:    "MCS HTTPS API request handling time by route.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
		licenses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "z5_mcs_licenses_issued_total",
			Help: "Licenses signed for Z5 clients.",
		}),
		imported: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "z5_mcs_contacts_imported_total",
			Help: "Contacts from vCard imports by result: created, updated, unchanged.",
		}, []string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.licenses, m.imported} {
		if err := reg.Register(c); err != nil {
			if _, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
				return nil, fmt.Errorf("mcsapi metrics: already registered (one Service per registry): %w", err)
			}
			return nil, fmt.Errorf("mcsapi metrics: %w", err)
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
