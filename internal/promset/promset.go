// Package promset builds one component's Prometheus series under one name
// prefix and registers them together, so each component states only the
// names and help texts of its series.
package promset

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Set collects the series built through it, each named
// <namespace>_<subsystem>_<name>.
type Set struct {
	namespace, subsystem string
	cs                   []prometheus.Collector
}

// New starts a set whose series are named <namespace>_<subsystem>_<name>.
func New(namespace, subsystem string) *Set {
	return &Set{namespace: namespace, subsystem: subsystem}
}

func (s *Set) counterOpts(name, help string) prometheus.CounterOpts {
	return prometheus.CounterOpts{Namespace: s.namespace, Subsystem: s.subsystem, Name: name, Help: help}
}

func (s *Set) gaugeOpts(name, help string) prometheus.GaugeOpts {
	return prometheus.GaugeOpts{Namespace: s.namespace, Subsystem: s.subsystem, Name: name, Help: help}
}

func add[C prometheus.Collector](s *Set, c C) C {
	s.cs = append(s.cs, c)
	return c
}

// Counter is a counter without labels.
func (s *Set) Counter(name, help string) prometheus.Counter {
	return add(s, prometheus.NewCounter(s.counterOpts(name, help)))
}

// CounterVec is a counter by labels.
func (s *Set) CounterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return add(s, prometheus.NewCounterVec(s.counterOpts(name, help), labels))
}

// Gauge is a gauge without labels.
func (s *Set) Gauge(name, help string) prometheus.Gauge {
	return add(s, prometheus.NewGauge(s.gaugeOpts(name, help)))
}

// GaugeFunc is a gauge read from f at each scrape.
func (s *Set) GaugeFunc(name, help string, f func() float64) prometheus.GaugeFunc {
	return add(s, prometheus.NewGaugeFunc(s.gaugeOpts(name, help), f))
}

// Collectors are the series built so far, for an owner that registers
// them with others.
func (s *Set) Collectors() []prometheus.Collector { return s.cs }

// Register adds every series built so far to reg. With a nil reg the
// series are kept but not exported, so their owner never checks for nil.
func (s *Set) Register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range s.cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register %s_%s series: %w", s.namespace, s.subsystem, err)
		}
	}
	return nil
}
