package relay

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the relay's Prometheus series. The per-verdict children are
// resolved once so the packet path does no label lookups.
type metrics struct {
	packets       prometheus.Counter // forwarded
	bytes         prometheus.Counter // forwarded
	drops         [numVerdicts]prometheus.Counter
	sendErrors    prometheus.Counter
	mediaTimeouts prometheus.Counter
	activeCalls   prometheus.Gauge
	allocated     prometheus.Gauge
	exhausted     prometheus.Counter
	quotaRefused  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	drops := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "z5_relay_dropped_packets_total",
		Help: "Datagrams the relay did not forward, by reason.",
	}, []string{"reason"})
	m := &metrics{
		packets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "z5_relay_packets_total",
			Help: "Datagrams forwarded by the media relay.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "z5_relay_bytes_total",
			Help: "Payload bytes forwarded by the media relay.",
		}),
		sendErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "z5_relay_send_errors_total",
			Help: "Datagrams the relay failed to send.",
		}),
		mediaTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "z5_relay_media_timeouts_total",
			Help: "Answered calls ended because no media arrived in time.",
		}),
		activeCalls: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "z5_relay_active_calls",
			Help: "Calls holding relay state.",
		}),
		allocated: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "z5_relay_allocated_ports",
			Help: "UDP ports of the range held by calls and network-check probes.",
		}),
		exhausted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "z5_relay_port_exhaustion_total",
			Help: "Stream allocations refused because the port range was full.",
		}),
		quotaRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "z5_relay_quota_refusals_total",
			Help: "Streams and probes refused because their customer or source held its port quota.",
		}),
	}
	for v := verdictStranger; v < numVerdicts; v++ {
		m.drops[v] = drops.WithLabelValues(v.String())
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{
		m.packets, m.bytes, drops, m.sendErrors, m.mediaTimeouts,
		m.activeCalls, m.allocated, m.exhausted, m.quotaRefused,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("relay: register metrics: %w", err)
		}
	}
	return m, nil
}
