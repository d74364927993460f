package sipserver

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/store"
)

// Per-source limits count an IPv6 source by its /64, as floodguard does:
// one host usually holds a whole /64. The test needs many addresses of one
// /64, so it runs in a network namespace of its own with 301 addresses of
// the benchmarking prefix 2001:2:0:5::/64 on loopback.

const v6Prefix = "2001:2:0:5::"

func TestSourcesKeyedBySlash64(t *testing.T) {
	if os.Getenv("Z5_SLASH64_NETNS") == "1" {
		runSourcesKeyedBySlash64(t)
		return
	}
	reexecInNetns(t, "TestSourcesKeyedBySlash64", "Z5_SLASH64_NETNS",
		`printf "addr add `+v6Prefix+`%x/64 dev lo nodad\n" $(seq 1 301) | ip -b -`)
}

func v6Addr(i int) string { return fmt.Sprintf("%s%x", v6Prefix, i) }

func runSourcesKeyedBySlash64(t *testing.T) {
	e := newEnvOpts(t, envOptions{listen: netip.AddrPortFrom(netip.MustParseAddr(v6Addr(1)), 0)})
	limit := e.srv.cfg.MaxConnsPerIP

	// Connection cap: 300 silent connections from 300 addresses of the
	// /64 hold at most the cap.
	const n = 300
	conns := make([]net.Conn, 0, n)
	for i := range n {
		conns = append(conns, dialFrom(t, v6Addr(2+i), e.addr).c)
	}
	waitFor(t, "connections accepted", func() bool {
		return metricValue(e, "z5_sip_connections_rejected_total") == n-float64(limit)
	})
	held := e.srv.t.conns.unauthenticated(netip.MustParseAddr(v6Addr(2)))
	closed := 0
	deadline := time.Now().Add(time.Second)
	for _, c := range conns {
		c.SetReadDeadline(deadline)
		if _, err := c.Read(make([]byte, 1)); err == io.EOF {
			closed++
		}
		c.Close()
	}
	t.Logf("%d connections from %d addresses of one /64: %d held (cap %d), %d closed", n, n, held, limit, closed)
	if held != limit || closed != n-limit {
		t.Fatalf("held %d, closed %d; want %d held, %d closed", held, closed, limit, n-limit)
	}
	waitFor(t, "connections released", func() bool { return e.srv.t.conns.size() == 0 })

	// Failures per (source, user): guesses at one user from ten addresses
	// of the /64 count together.
	d := e.provision(alice, store.DeviceSIP, "alice", "secret-a")
	checked := 0
	for i := range 10 {
		g := dialOffice(t, v6Addr(2+i), e.addr, d.Number, "alice", "wrong")
		switch code := g.register(t); code {
		case 401:
			checked++
		case 403:
		default:
			t.Fatalf("guess %d: %d", i, code)
		}
		g.c.Close()
	}
	t.Logf("10 guesses at one user from 10 addresses of one /64: %d checked", checked)
	if checked >= e.srv.cfg.MaxAuthFailures {
		t.Fatalf("%d guesses checked, want fewer than %d", checked, e.srv.cfg.MaxAuthFailures)
	}
	// Another /64 is not affected.
	other := dialOffice(t, "::1", e.addr, d.Number, "alice", "secret-a")
	if code := other.register(t); code != 200 {
		t.Fatalf("alice from another network: %d", code)
	}
}

// TestInFlightShareBySlash64: the in-flight share of a source counts its
// whole IPv6 /64 (and an IPv4 address alone).
func TestInFlightShareBySlash64(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxInFlight, c.MaxInFlightPerSource = 16, 4 })
	sh := e.srv.shield
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	for i := range 4 {
		if !sh.enter(a(v6Addr(100 + i))) {
			t.Fatalf("request %d of the /64 refused within its share", i)
		}
	}
	if sh.enter(a(v6Addr(200))) {
		t.Fatal("a fifth address of the same /64 got a slot beyond the share of 4")
	}
	if !sh.enter(a("2001:2:0:6::1")) || !sh.enter(a("192.0.2.1")) || !sh.enter(a("192.0.2.2")) {
		t.Fatal("another /64 or IPv4 address refused")
	}
	sh.leave(a(v6Addr(101)))
	if !sh.enter(a(v6Addr(300))) {
		t.Fatal("a slot freed by the /64 not reusable by it")
	}
	if got := failureKey("alice", a(v6Addr(5))); got != failureKey("alice", a("2001:2:0:5:ffff::9")) || got != "alice|2001:2:0:5::/64" {
		t.Fatalf("failure key %q not by /64", got)
	}
	if failureKey("alice", a("::ffff:192.0.2.1")) != "alice|192.0.2.1/32" {
		t.Fatalf("IPv4-mapped failure key %q", failureKey("alice", a("::ffff:192.0.2.1")))
	}
}
