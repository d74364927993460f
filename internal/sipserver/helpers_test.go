package sipserver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/license"
	"github.com/z5vrs/z5/internal/pki"
	"github.com/z5vrs/z5/internal/relay"
	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/store/sqlite"
	"github.com/z5vrs/z5/internal/testenv"
)

const testDomain = "mcs.z5.test"

// env is one server on loopback with its store and relay.
type env struct {
	t     *testing.T
	srv   *Server
	st    *sqlite.Store
	relay *relay.Relay
	addr  netip.AddrPort
	key   ed25519.PrivateKey
	reg   *prometheus.Registry
	logs  *testenv.SyncBuffer // printed when a test fails: logs never go to t.Log, which panics once the test has finished
	ports config.PortRange
}

// relayPorts picks a random window of the RTP range so parallel test
// binaries rarely collide.
func relayPorts() config.PortRange {
	n, _ := rand.Int(rand.Reader, big.NewInt(200))
	lo := 30000 + int(n.Int64())*100
	return config.PortRange{Min: lo, Max: lo + 99}
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	return newEnvWith(t, mod, nil)
}

func newEnvWith(t *testing.T, mod func(*Config), depsMod func(*Deps)) *env {
	t.Helper()
	return newEnvOpts(t, envOptions{cfg: mod, deps: depsMod})
}

type envOptions struct {
	cfg          func(*Config)
	deps         func(*Deps)
	mediaTimeout time.Duration    // relay; default 30s
	ports        config.PortRange // relay; default a random 100-port window
	listen       netip.AddrPort   // SIP; default 127.0.0.1:0
	requireSRTP  bool             // relay
}

func newEnvOpts(t *testing.T, o envOptions) *env {
	t.Helper()
	mod, depsMod := o.cfg, o.deps
	if o.mediaTimeout == 0 {
		o.mediaTimeout = 30 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "z5.db"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &testenv.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ports := relayPorts()
	if o.ports.Min != 0 {
		ports = o.ports
	}
	rl, stopRelay := startRelay(t, ctx, log, relay.Config{Bind: netip.MustParseAddr("127.0.0.1"), Ports: ports,
		MediaTimeout: o.mediaTimeout, RequireSRTP: o.requireSRTP})
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	cfg := testConfig()
	cfg.MinExpires, cfg.NoAnswerTimeout = 2, 10*time.Second
	if mod != nil {
		mod(&cfg)
	}
	reg := prometheus.NewRegistry()
	deps := Deps{Store: st, Relay: rl, LicenseKeys: []ed25519.PublicKey{pub}, Log: log, Registerer: reg}
	if depsMod != nil {
		depsMod(&deps)
	}
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	listen := netip.MustParseAddrPort("127.0.0.1:0")
	if o.listen.IsValid() {
		listen = o.listen
	}
	served := listenAndServe(t, ctx, srv, listen)
	e := &env{t: t, srv: srv, st: st, relay: rl, addr: srv.Addr(), key: key, reg: reg, logs: logs, ports: ports}
	t.Cleanup(func() {
		cancel()
		if err := served(); err != nil {
			t.Errorf("Serve: %v", err)
		}
		stopRelay()
		st.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return e
}

// startRelay starts a relay of rc (the dev probe rate and stream limit)
// logging to log, serving until ctx ends; stop closes it and waits for its
// Serve to return.
func startRelay(t *testing.T, ctx context.Context, log *slog.Logger, rc relay.Config) (rl *relay.Relay, stop func()) {
	t.Helper()
	def := config.Dev("").Relay
	rc.ProbeRate, rc.MaxStreams = def.ProbeRate, def.MaxStreams
	rl, err := relay.New(rc, relay.Deps{Log: log.With("component", "relay")})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		rl.Serve(ctx)
	}()
	return rl, func() { rl.Close(); <-done }
}

// listenAndServe has srv listen on addr and serve until ctx ends; served
// waits for Serve to return and gives its error.
func listenAndServe(t *testing.T, ctx context.Context, srv *Server, addr netip.AddrPort) (served func() error) {
	t.Helper()
	if err := srv.Listen(addr, netip.AddrPort{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	return func() error { return <-done }
}

// provision creates a number (when new) and a device with a password.
func (e *env) provision(number, kind, sipUser, password string) store.Device {
	e.t.Helper()
	return provisionOn(e.t, e.st, number, kind, sipUser, password)
}

// provisionOn creates in st a number (when new) and a device with a
// password.
func provisionOn(t *testing.T, st store.Store, number, kind, sipUser, password string) store.Device {
	t.Helper()
	ctx := context.Background()
	if _, err := st.Number(ctx, number); errors.Is(err, store.ErrNotFound) {
		c, err := st.CreateCustomer(ctx, store.Customer{Username: "customer-" + number})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.AddNumber(ctx, store.Number{Number: number, CustomerID: c.ID}); err != nil {
			t.Fatal(err)
		}
	}
	d, err := st.CreateDevice(ctx, store.Device{
		Number: number, Kind: kind, Name: sipUser, SIPUser: sipUser,
		Cred: store.NewCredentials(sipUser, testDomain, password),
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// license issues a license for a device.
func (e *env) license(d store.Device) string {
	tok, err := license.Sign(e.key, license.Claims{
		Number: d.Number, DeviceID: d.ID, SIPUser: d.SIPUser,
		NotBefore: time.Now().Add(-time.Minute).Unix(), NotAfter: time.Now().Add(time.Hour).Unix(),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// sipText joins lines with CRLF and ends the header section; a body
// follows the blank line. Content-Length is left to the caller.
func sipText(lines ...string) string {
	return strings.Join(lines, "\r\n") + "\r\n\r\n"
}

// rawTCP is a bare TCP client for byte-exact tests.
type rawTCP struct {
	c   net.Conn
	par *sipmsg.ParserStream
	got []sipmsg.Message
}

func dialTCP(t *testing.T, addr netip.AddrPort) *rawTCP {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawTCP{c: c, par: sipmsg.NewParser().NewSIPStream()}
}

func (r *rawTCP) send(t *testing.T, s string) {
	t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(r.c, s); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// read returns the next message, nil after timeout, or io.EOF when the
// server closed the connection.
func (r *rawTCP) read(timeout time.Duration) (sipmsg.Message, error) {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 65536)
	for len(r.got) == 0 {
		r.c.SetReadDeadline(deadline)
		n, err := r.c.Read(buf)
		if n > 0 {
			perr := r.par.ParseSIPStream(buf[:n], func(m sipmsg.Message) { r.got = append(r.got, m) })
			if perr != nil && !errors.Is(perr, sipmsg.ErrParseSipPartial) {
				return nil, perr
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, nil
			}
			return nil, io.EOF
		}
	}
	m := r.got[0]
	r.got = r.got[1:]
	return m, nil
}

// readRaw returns raw bytes read within timeout.
func (r *rawTCP) readRaw(timeout time.Duration) ([]byte, error) {
	r.c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 4096)
	n, err := r.c.Read(buf)
	return buf[:n], err
}

// udpExchange sends one datagram and returns the response, nil if none
// arrives within timeout.
func udpExchange(t *testing.T, addr netip.AddrPort, payload []byte, timeout time.Duration) sipmsg.Message {
	t.Helper()
	return udpFrom(t, "", addr, string(payload), timeout)
}

// optionsText is a plain OPTIONS to the server itself.
func optionsText(addr netip.AddrPort, transport string) string {
	id := randomToken(6)
	return sipText(
		fmt.Sprintf("OPTIONS sip:%s SIP/2.0", addr),
		fmt.Sprintf("Via: SIP/2.0/%s 127.0.0.1:9;branch=z9hG4bK%s;rport", transport, id),
		"Max-Forwards: 70",
		"From: <sip:probe@127.0.0.1>;tag="+id,
		"To: <sip:"+addr.String()+">",
		"Call-ID: opt-"+id,
		"CSeq: 1 OPTIONS",
		"Content-Length: 0",
	)
}

func status(m sipmsg.Message) int {
	if r, ok := m.(*sipmsg.Response); ok {
		return r.StatusCode
	}
	return 0
}

// fakeClock is a settable Deps.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, 5*time.Second, what, cond)
}

func sipgoAuth(user, pass string) sipgo.DigestAuth {
	return sipgo.DigestAuth{Username: user, Password: pass}
}

// metricValue reads a gauge or counter from the env's registry; labels
// are name, value pairs the series must carry.
func metricValue(e *env, name string, labels ...string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// tlsServer starts a second server on e's store and relay that listens for
// TCP and UDP and, with a certificate from a fresh CA, for TLS; mod may
// change its config first.
func (e *env) tlsServer(t *testing.T, mod func(*Config)) (*Server, *pki.CA) {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(t.TempDir(), "Z5 test")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue([]string{"mcs1.mcs.z5.test"}, []netip.Addr{netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.srv.cfg
	cfg.TLS = pki.ServerTLS(cert)
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg, Deps{Store: e.st, Relay: e.relay})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(netip.MustParseAddrPort("127.0.0.1:0"), netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return srv, ca
}
