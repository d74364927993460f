package relay

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/testenv"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// freeRange finds n consecutive ports (n even, starting even) that bind on
// loopback right now.
func freeRange(t testing.TB, n int) config.PortRange { return testenv.FreeUDPRange(t, loopback, n) }

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

type relayOpts struct {
	bind      netip.Addr // zero: 127.0.0.1
	ports     int
	advertise netip.Addr
	timeout   time.Duration
	reg       prometheus.Registerer
	serve     bool
	// maxStreams, and the quotas (zero: none), as in Config.
	maxStreams             int
	perCustomer, perSource int
	customer, provider     []netip.Prefix
	requireSRTP            bool
	kernel                 bool // Config.KernelForwarding
}

// filled completes c with the deployment's defaults (internal/config's)
// for the values a test leaves zero.
func filled(c Config) Config {
	d := config.Dev("").Relay
	if c.MediaTimeout == 0 {
		c.MediaTimeout = d.MediaTimeout
	}
	if c.ProbeRate == 0 {
		c.ProbeRate = d.ProbeRate
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = d.MaxStreams
	}
	return c
}

// newTestRelay starts a relay on loopback with its own port range and
// checks, when the test ends, that no goroutine of it survived Close.
func newTestRelay(t testing.TB, o relayOpts) (*Relay, config.PortRange) {
	t.Helper()
	if o.ports == 0 {
		o.ports = 32
	}
	if !o.bind.IsValid() {
		o.bind = loopback
	}
	pr := testenv.FreeUDPRange(t, o.bind, o.ports)
	r, err := New(filled(Config{Bind: o.bind, Advertise: o.advertise, Ports: pr, MediaTimeout: o.timeout,
		MaxStreams: o.maxStreams, MaxPortsPerCustomer: o.perCustomer, MaxPortsPerSource: o.perSource,
		CustomerNetworks: o.customer, ProviderNetworks: o.provider, RequireSRTP: o.requireSRTP,
		KernelForwarding: o.kernel}), Deps{Log: testLogger(t), Registerer: o.reg})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	if o.serve {
		go func() { served <- r.Serve(ctx) }()
	} else {
		served <- nil
	}
	t.Cleanup(func() {
		cancel()
		if err := r.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := r.Close(); err != nil {
			t.Errorf("second close: %v", err)
		}
		checkNoRelayGoroutines(t)
		if n := r.AllocatedPorts(); n != 0 {
			t.Errorf("%d ports still allocated after close", n)
		}
	})
	return r, pr
}

// checkNoRelayGoroutines fails when a socket reader, Serve or a timeout
// callback of this package is still running. Tests here do not run in
// parallel, so any such goroutine belongs to a relay already closed.
func checkNoRelayGoroutines(t testing.TB) {
	t.Helper()
	var stacks string
	for range 100 {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "relay.(*Call).read") && !strings.Contains(stacks, "relay.(*Relay).Serve") &&
			!strings.Contains(stacks, "relay.(*Relay).supervise") {
			return
		}
		time.Sleep(10 * time.Millisecond) // Serve may still be unwinding after cancel
	}
	t.Errorf("relay goroutines alive after close:\n%s", stacks)
}

// sdpText turns a readable SDP (LF, leading tabs) into wire form (CRLF).
func sdpText(s string) []byte {
	var b bytes.Buffer
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		b.WriteString(strings.TrimSpace(l))
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// udpPeer is a client socket on loopback.
type udpPeer struct {
	t    testing.TB
	conn *net.UDPConn
}

func newPeer(t testing.TB, ip string) *udpPeer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpPeer{t: t, conn: c}
}

func (p *udpPeer) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

func (p *udpPeer) addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (p *udpPeer) send(to netip.AddrPort, b []byte) {
	p.t.Helper()
	if _, err := p.conn.WriteToUDPAddrPort(b, to); err != nil {
		p.t.Fatalf("send to %s: %v", to, err)
	}
}

// recv waits up to d for one datagram.
func (p *udpPeer) recv(d time.Duration) ([]byte, netip.AddrPort, bool) {
	p.t.Helper()
	buf := make([]byte, 2048)
	p.conn.SetReadDeadline(time.Now().Add(d))
	n, from, err := p.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		return nil, netip.AddrPort{}, false
	}
	return buf[:n], from, true
}

// expect reads one datagram and checks its payload and source.
func (p *udpPeer) expect(want []byte, from netip.AddrPort) {
	p.t.Helper()
	got, src, ok := p.recv(2 * time.Second)
	if !ok {
		p.t.Fatalf("%s: nothing received, want %x from %s", p.addr(), want, from)
	}
	if !bytes.Equal(got, want) {
		p.t.Fatalf("%s: got %x from %s, want %x from %s", p.addr(), got, src, want, from)
	}
	if from.IsValid() && src != from {
		p.t.Fatalf("%s: got packet from %s, want from %s", p.addr(), src, from)
	}
}

// expectNothing checks that no datagram arrives within a short while.
func (p *udpPeer) expectNothing() {
	p.t.Helper()
	if got, src, ok := p.recv(150 * time.Millisecond); ok {
		p.t.Fatalf("%s: unexpected %x from %s", p.addr(), got, src)
	}
}

// rtpPacket builds a minimal RTP packet.
func rtpPacket(pt uint8, seq uint16, ts, ssrc uint32, payload string) []byte {
	b := []byte{0x80, pt, byte(seq >> 8), byte(seq), byte(ts >> 24), byte(ts >> 16), byte(ts >> 8), byte(ts),
		byte(ssrc >> 24), byte(ssrc >> 16), byte(ssrc >> 8), byte(ssrc)}
	return append(b, payload...)
}

// waitFor polls cond until it holds or two seconds pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, 2*time.Second, what, cond)
}
