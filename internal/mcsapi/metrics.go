package mcsapi

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/apimetrics"
)

// metrics are the Service's Prometheus series. They exist even without a
// Registerer, so handlers never check for nil.
type metrics struct {
	*apimetrics.Requests
	licenses prometheus.Counter
	imported *prometheus.CounterVec // result: created, updated, unchanged
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		Requests: apimetrics.NewRequests(apimetrics.Opts{
			Prefix:       "z5_mcs_api",
			CountHelp:    "MCS HTTPS API requests by route and status code.",
			DurationHelp: "MCS HTTPS API request handling time by route.",
			Buckets:      []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
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
	if err := apimetrics.Register(reg, "mcsapi", append(m.Collectors(), m.licenses, m.imported)...); err != nil {
		return nil, err
	}
	return m, nil
}
