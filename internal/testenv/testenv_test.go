package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total"}, []string{"code", "route"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"})
	reg.MustRegister(c, g)
	c.WithLabelValues("401", "/login").Add(2)
	c.WithLabelValues("200", "/login").Add(5)
	g.Set(7)
	for _, tt := range []struct {
		name, labels string
		want         float64
	}{
		{"c_total", "code=401,route=/login", 2},
		{"c_total", "code=200,route=/login", 5},
		{"c_total", "code=500,route=/login", 0},
		{"c_total", "route=/login", 0}, // a label missing is another series
		{"g", "", 7},
		{"nothing", "", 0},
	} {
		if got := Metric(t, reg, tt.name, tt.labels); got != tt.want {
			t.Errorf("Metric(%s, %q) = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}

func TestCount(t *testing.T) {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "n_total"})
	c.Add(3)
	if got := Count(t, c); got != 3 {
		t.Errorf("Count = %v, want 3", got)
	}
}

func TestFreeUDPRange(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	r := FreeUDPRange(t, lo, 8)
	if r.Min%2 != 0 || r.Max-r.Min != 7 || r.Min < 61000 || r.Max > 65535 {
		t.Fatalf("range %+v, want 8 ports from an even one above 61000", r)
	}
	// Every port of it binds once FreeUDPRange has let go of them.
	for p := r.Min; p <= r.Max; p++ {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, uint16(p))))
		if err != nil {
			t.Fatalf("port %d: %v", p, err)
		}
		c.Close()
	}
}

func TestListenTCPUDP(t *testing.T) {
	ln, pc := ListenTCPUDP(t)
	defer ln.Close()
	defer pc.Close()
	if ln.Addr().String() != pc.LocalAddr().String() {
		t.Errorf("TCP on %s, UDP on %s: want one port", ln.Addr(), pc.LocalAddr())
	}
	if ip := netip.MustParseAddrPort(ln.Addr().String()).Addr(); !ip.IsLoopback() {
		t.Errorf("listening on %s, want loopback", ip)
	}
}

func TestHold(t *testing.T) {
	if err := Hold(context.Background(), nil); err != nil {
		t.Errorf("nil hold: %v", err)
	}
	closed := make(chan struct{})
	close(closed)
	if err := Hold(context.Background(), closed); err != nil {
		t.Errorf("closed hold: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Hold(ctx, make(chan struct{})); !errors.Is(err, context.Canceled) {
		t.Errorf("open hold, ended ctx: %v, want %v", err, context.Canceled)
	}
}

// fatalTB records a Fatalf and ends the goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestWaitFor(t *testing.T) {
	n := 0
	WaitFor(t, time.Second, "third poll", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Errorf("cond called %d times, want 3", n)
	}
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		WaitFor(f, 30*time.Millisecond, "never", func() bool { return false })
	}()
	<-done
	if want := "not within 30ms: never"; f.msg != want {
		t.Errorf("failure %q, want %q", f.msg, want)
	}
}

// TestNeedNetns: a missing tool skips the test before the line after.
func TestNeedNetns(t *testing.T) {
	reached := false
	t.Run("missing tool", func(t *testing.T) {
		NeedNetns(t, "z5-no-such-tool")
		reached = true
	})
	if reached {
		t.Error("NeedNetns did not skip without the tool")
	}
}
