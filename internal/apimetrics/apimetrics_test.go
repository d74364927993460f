package apimetrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/testenv"
)

func TestRequests(t *testing.T) {
	r := NewRequests(Opts{Prefix: "z5_test", CountHelp: "c", DurationHelp: "d", Buckets: []float64{1}})
	if err := Register(nil, "test", r.Collectors()...); err != nil {
		t.Fatalf("no registry: %v", err)
	}
	reg := prometheus.NewRegistry()
	if err := Register(reg, "test", r.Collectors()...); err != nil {
		t.Fatal(err)
	}
	r.Observe("/a", 0, time.Millisecond) // nothing written: net/http sends 200
	r.Observe("/a", 200, time.Millisecond)
	r.Observe("/a", 404, time.Millisecond)
	if got := testenv.Count(t, r.count.WithLabelValues("/a", "200")); got != 2 {
		t.Errorf("/a 200 counted %v times, want 2", got)
	}
	if got := testenv.Count(t, r.count.WithLabelValues("/a", "404")); got != 1 {
		t.Errorf("/a 404 counted %v times, want 1", got)
	}
	err := Register(reg, "test", NewRequests(Opts{Prefix: "z5_test", CountHelp: "c", DurationHelp: "d"}).Collectors()...)
	if err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("second registration: %v", err)
	}
}

func TestStatusWriter(t *testing.T) {
	for _, tt := range []struct {
		name  string
		write func(w http.ResponseWriter)
		want  int
	}{
		{"nothing", func(http.ResponseWriter) {}, 0},
		{"body only", func(w http.ResponseWriter) { w.Write([]byte("x")) }, 200},
		{"first header sticks", func(w http.ResponseWriter) { w.WriteHeader(404); w.WriteHeader(500) }, 404},
	} {
		sw := &StatusWriter{ResponseWriter: httptest.NewRecorder()}
		tt.write(sw)
		if sw.Status != tt.want {
			t.Errorf("%s: status %d, want %d", tt.name, sw.Status, tt.want)
		}
	}
}
