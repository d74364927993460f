package promset

import (
	"errors"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestSetNamesAndRegisters(t *testing.T) {
	s := New("z5", "test")
	c := s.Counter("c_total", "a counter")
	v := s.CounterVec("v_total", "a vector", "reason", "transport")
	g := s.Gauge("g", "a gauge")
	s.GaugeFunc("f", "a func", func() float64 { return 7 })
	reg := prometheus.NewRegistry()
	if err := s.Register(reg); err != nil {
		t.Fatal(err)
	}
	c.Inc()
	v.WithLabelValues("r", "udp").Add(2)
	g.Set(3)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	var labels []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				got[mf.GetName()] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[mf.GetName()] = m.GetGauge().GetValue()
			}
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName())
			}
		}
		if mf.GetHelp() == "" {
			t.Errorf("%s has no help", mf.GetName())
		}
	}
	want := map[string]float64{"z5_test_c_total": 1, "z5_test_v_total": 2, "z5_test_g": 3, "z5_test_f": 7}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s = %v, want %v (gathered %v)", name, got[name], w, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("gathered %v, want exactly %v", got, want)
	}
	if !slices.Equal(labels, []string{"reason", "transport"}) {
		t.Errorf("labels %v, want [reason transport]", labels)
	}
}

func TestRegisterNilAndTwice(t *testing.T) {
	s := New("z5", "test")
	s.Counter("c_total", "a counter")
	if n := len(s.Collectors()); n != 1 {
		t.Fatalf("%d collectors, want 1", n)
	}
	if err := s.Register(nil); err != nil {
		t.Fatalf("nil registerer: %v", err)
	}
	reg := prometheus.NewRegistry()
	if err := s.Register(reg); err != nil {
		t.Fatal(err)
	}
	err := s.Register(reg)
	if _, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); !ok {
		t.Fatalf("second Register = %v, want AlreadyRegisteredError wrapped", err)
	}
}
