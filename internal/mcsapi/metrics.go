package mcsapi

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/apimetrics"
	"github.com/z5vrs/z5/internal/promset"
)

// metrics are the Service's Prometheus series. They exist even without a
// Registerer, so handlers never check for nil.
type metrics struct {
	*apimetrics.Requests
	licenses prometheus.Counter
	imported *prometheus.CounterVec // result: created, updated, unchanged
}

// requestSeries names the request counter and duration histogram.
var requestSeries = apimetrics.Opts{
	Prefix:       "z5_mcs_api",
	CountHelp:    "MCS HTTPS API requests by route and status code.",
	DurationHelp: "MCS HTTPS API request handling time by route.",
	Buckets:      []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	own := promset.New("z5", "mcs") // the API's own counters
	m := &metrics{
		Requests: apimetrics.NewRequests(requestSeries),
		licenses: own.Counter("licenses_issued_total", "Licenses signed for Z5 clients."),
		imported: own.CounterVec("contacts_imported_total",
			"Contacts from vCard imports by result: created, updated, unchanged.", "result"),
	}
	if err := apimetrics.Register(reg, "mcsapi", append(m.Collectors(), own.Collectors()...)...); err != nil {
		return nil, err
	}
	return m, nil
}
