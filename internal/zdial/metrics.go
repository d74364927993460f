package zdial

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/apimetrics"
	"github.com/z5vrs/z5/internal/promset"
)

// metrics are the Service's Prometheus series. They exist even without a
// Registerer, so handlers never check for nil.
type metrics struct {
	*apimetrics.Requests
	logins  *prometheus.CounterVec // result
	selects *prometheus.CounterVec // result
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

// requestSeries names the request counter and duration histogram.
var requestSeries = apimetrics.Opts{
	Prefix:       "z5_zdial",
	CountHelp:    "ZDial HTTP requests by route and status code.",
	DurationHelp: "ZDial request handling time by route (logins include argon2id).",
	Buckets:      []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	own := promset.New("z5", "zdial") // the API's own counters
	m := &metrics{
		Requests: apimetrics.NewRequests(requestSeries),
		logins: own.CounterVec("logins_total",
			"ZDial login attempts by result: ok, invalid, locked, throttled.", "result"),
		selects: own.CounterVec("selections_total",
			"Successful number selections by whether the device was new or reused.", "result"),
	}
	if err := apimetrics.Register(reg, "zdial", append(m.Collectors(), own.Collectors()...)...); err != nil {
		return nil, err
	}
	return m, nil
}
