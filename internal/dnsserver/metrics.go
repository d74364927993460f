package dnsserver

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/promset"
)

// metrics are the server's Prometheus counters. They exist even without a
// Registerer so the hot path never checks for nil.
type metrics struct {
	queries     *prometheus.CounterVec // by qtype and rcode
	rateLimited *prometheus.CounterVec // by action: slip, drop
	malformed   prometheus.Counter
	truncated   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	// Registered one by one below, not by the set: a restarted server
	// takes over the series already registered.
	s := promset.New("z5", "dns")
	m := &metrics{
		queries: s.CounterVec("queries_total",
			"DNS queries answered, by question type and response code.", "qtype", "rcode"),
		rateLimited: s.CounterVec("rate_limited_total",
			"UDP responses held back by response rate limiting, by action (slip: sent truncated, drop: not sent).", "action"),
		malformed: s.Counter("malformed_total", "Packets that did not parse as DNS messages."),
		truncated: s.Counter("truncated_total", "UDP responses sent with TC=1 because they exceeded the client's buffer."),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.queries, err = register(reg, m.queries); err != nil {
		return nil, err
	}
	if m.rateLimited, err = register(reg, m.rateLimited); err != nil {
		return nil, err
	}
	if m.malformed, err = register(reg, m.malformed); err != nil {
		return nil, err
	}
	if m.truncated, err = register(reg, m.truncated); err != nil {
		return nil, err
	}
	return m, nil
}

// register adds c to reg. A server restarted in the same process (z5d demo,
// tests) finds its counters already registered and keeps counting in them.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	if err != nil {
		return c, fmt.Errorf("dns: register metrics: %w", err)
	}
	return c, nil
}

// query counts one answered query. Label values come from fixed tables so
// a client cannot grow the series without bound with odd types.
func (m *metrics) query(req *dns.Msg, rcode int) {
	qtype := "none"
	if len(req.Question) > 0 {
		var ok bool
		if qtype, ok = dns.TypeToString[req.Question[0].Qtype]; !ok {
			qtype = "other"
		}
	}
	rc, ok := dns.RcodeToString[rcode]
	if !ok {
		rc = strconv.Itoa(rcode)
	}
	m.queries.WithLabelValues(qtype, rc).Inc()
}
