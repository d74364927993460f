package sipserver

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
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
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		registrations: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "z5", Subsystem: "sip", Name: "registrations",
			Help: "Current registrar bindings on this node.",
		}),
		flows: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "z5", Subsystem: "sip", Name: "connections",
			Help: "Open TCP and TLS connections (flows).",
		}),
		calls: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "z5", Subsystem: "sip", Name: "active_calls",
			Help: "Calls being set up or in progress.",
		}),
		callsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "z5", Subsystem: "sip", Name: "calls_total",
			Help: "Calls ended, by end reason.",
		}, []string{"reason"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "z5", Subsystem: "sip", Name: "responses_total",
			Help: "SIP responses sent, by status code.",
		}, []string{"code"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "z5", Subsystem: "sip", Name: "auth_failures_total",
			Help: "Failed digest or license checks, by reason.",
		}, []string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "z5", Subsystem: "sip", Name: "messages_dropped_total",
			Help: "Messages not handed to the SIP stack, by transport and reason.",
		}, []string{"transport", "reason"}),
		connRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "z5", Subsystem: "sip", Name: "connections_rejected_total",
			Help: "TCP/TLS connections refused by the overall connection limit, or closed to make room under a source's limit of unauthenticated connections.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.registrations, m.flows, m.calls, m.callsTotal,
		m.responses, m.authFailures, m.dropped, m.connRejected} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("sip metrics: %w", err)
		}
	}
	return m, nil
}
