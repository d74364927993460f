package relay

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/promset"
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
	kernelOn      prometheus.Gauge
	kernelFlows   prometheus.Gauge
	kernelPackets prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	s := promset.New("z5", "relay")
	drops := s.CounterVec("dropped_packets_total", "Datagrams the relay did not forward, by reason.", "reason")
	m := &metrics{
		packets:       s.Counter("packets_total", "Datagrams forwarded by the media relay."),
		bytes:         s.Counter("bytes_total", "Payload bytes forwarded by the media relay."),
		sendErrors:    s.Counter("send_errors_total", "Datagrams the relay failed to send."),
		mediaTimeouts: s.Counter("media_timeouts_total", "Answered calls ended because no media arrived in time."),
		activeCalls:   s.Gauge("active_calls", "Calls holding relay state."),
		allocated: s.Gauge("allocated_ports",
			"UDP ports of the range held by calls and network-check probes."),
		exhausted: s.Counter("port_exhaustion_total",
			"Stream allocations refused because the port range was full."),
		quotaRefused: s.Counter("quota_refusals_total",
			"Streams and probes refused because their customer or source held its port quota."),
		kernelOn: s.Gauge("kernel_forwarding",
			"1 when the kernel path (relay.kernel_forwarding) is loaded, else 0."),
		kernelFlows: s.Gauge("kernel_flows",
			"Stream directions whose RTP the kernel forwards (counted in packets_total and bytes_total when the relay takes them back)."),
		kernelPackets: s.Counter("kernel_packets_total",
			"Datagrams of packets_total the kernel forwarded, counted when the relay takes their direction back."),
	}
	for v := verdictStranger; v < numVerdicts; v++ {
		m.drops[v] = drops.WithLabelValues(v.String())
	}
	if err := s.Register(reg); err != nil {
		return nil, fmt.Errorf("relay: register metrics: %w", err)
	}
	return m, nil
}
