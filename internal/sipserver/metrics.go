package sipserver

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/promset"
)

// metrics are the server's Prometheus series.
type metrics struct {
	registrations prometheus.Gauge
	flows         prometheus.Gauge
	calls         prometheus.Gauge
	callsTotal    *prometheus.CounterVec // by end reason
	responses     *prometheus.CounterVec // by status code, every response sent
	authFailures  *prometheus.CounterVec // by reason
	dropped       *prometheus.CounterVec // messages not delivered, by transport and reason
	connRejected  prometheus.Counter

	locationWriteFailures prometheus.Counter // failed writes of the location writer, each retried
	locationQueue         prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	s := promset.New("z5", "sip")
	m := &metrics{
		registrations: s.Gauge("registrations", "Current registrar bindings on this node."),
		flows:         s.Gauge("connections", "Open TCP and TLS connections (flows)."),
		calls:         s.Gauge("active_calls", "Calls being set up or in progress."),
		callsTotal:    s.CounterVec("calls_total", "Calls ended, by end reason.", "reason"),
		responses:     s.CounterVec("responses_total", "SIP responses sent, by status code.", "code"),
		authFailures:  s.CounterVec("auth_failures_total", "Failed digest or license checks, by reason.", "reason"),
		dropped: s.CounterVec("messages_dropped_total",
			"Messages not handed to the SIP stack, by transport and reason.", "transport", "reason"),
		connRejected: s.Counter("connections_rejected_total",
			"TCP/TLS connections refused by the overall connection limit, or closed to make room under a source's limit of unauthenticated connections."),
		locationWriteFailures: s.Counter("location_write_failures_total",
			"Failed writes of queued location-table rows (registrations other nodes read); each is retried."),
		locationQueue: s.Gauge("location_queue", "Location-table row changes queued, not yet written."),
	}
	if err := s.Register(reg); err != nil {
		return nil, fmt.Errorf("sip metrics: %w", err)
	}
	return m, nil
}
