package mcsapi

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/z5vrs/z5/internal/config"

	"github.com/z5vrs/z5/internal/relay"
	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/testenv/teststore"
)

// fakeProber records OpenProbe calls.
type fakeProber struct {
	mu    sync.Mutex
	calls []probeCall
	err   error
}

type probeCall struct {
	owner relay.Owner
	key   []byte
	n     int
	ttl   time.Duration
}

func (f *fakeProber) OpenProbe(owner relay.Owner, token []byte, n int, ttl time.Duration) ([]int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	f.calls = append(f.calls, probeCall{owner, append([]byte(nil), token...), n, ttl})
	ports := make([]int, n)
	for i := range ports {
		ports[i] = 10000 + 2*i
	}
	return ports, nil
}

func (f *fakeProber) Advertise() netip.Addr { return netip.MustParseAddr("198.18.1.21") }

// probeEnv is the MCS API with a fake relay (or none) and a settable
// clock, served over plain HTTP on loopback.
type probeEnv struct {
	url   string
	mcs   string // MCS token
	zdial string // ZDial login token of the same customer
	logs  *bytes.Buffer
	st    store.Store
	cust  int64 // the customer of mcs
	dev   int64 // the device of mcs

	mu  *sync.Mutex // guards now and logs
	now *time.Time
}

func (e *probeEnv) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	*e.now = e.now.Add(d)
}

func newProbeEnv(t *testing.T, p Prober) *probeEnv {
	t.Helper()
	st := teststore.SQLite(t)
	dev, tok, cust := teststore.Provision(t, st, "alice", "2025550100")
	zd := teststore.NewSession(t, st, store.Session{Kind: store.SessionZDial, CustomerID: cust, ExpiresAt: time.Now().Add(time.Hour)})
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var mu sync.Mutex
	e := &probeEnv{mcs: tok, zdial: zd, now: &now, logs: &bytes.Buffer{}, mu: &mu, st: st, cust: cust, dev: dev.ID}
	svc, err := New(testConfig(), Deps{Store: st, LicenseKey: key, Probe: p,
		Log: slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: e.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return *e.now }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if strings.Contains(e.logs.String(), tok) {
			t.Errorf("the bearer token reached the log:\n%s", e.logs)
		}
	})
	return e
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (e *probeEnv) post(t *testing.T, method, token string) (*http.Response, errorJSON, probeResponse) {
	t.Helper()
	req, err := http.NewRequest(method, e.url+PathProbe, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(res.Body)
	r := resp{res, buf.Bytes()}
	var ok probeResponse
	if res.StatusCode == http.StatusOK {
		r.json(t, &ok)
	}
	return res, r.err(), ok
}

func TestProbeRoute(t *testing.T) {
	fp := &fakeProber{}
	e := newProbeEnv(t, fp)
	res, _, got := e.post(t, http.MethodPost, e.mcs)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	if len(fp.calls) != 1 {
		t.Fatalf("%d OpenProbe calls", len(fp.calls))
	}
	call := fp.calls[0]
	key, err := base64.StdEncoding.DecodeString(got.Token)
	if err != nil || !bytes.Equal(key, call.key) || len(key) != probeKeySize {
		t.Errorf("token %q is not the %d-byte key the relay got", got.Token, probeKeySize)
	}
	if call.n != probePorts || call.ttl != probeTTL {
		t.Errorf("OpenProbe(n=%d, ttl=%s)", call.n, call.ttl)
	}
	if want := (relay.Owner{Customer: relay.CustomerKey(e.cust), Source: netip.MustParseAddr("127.0.0.1")}); call.owner != want {
		t.Errorf("owner %+v, want %+v", call.owner, want)
	}
	e.mu.Lock()
	now := *e.now
	e.mu.Unlock()
	want := probeResponse{Token: got.Token, Ports: []int{10000, 10002, 10004, 10006, 10008, 10010},
		ExpiresAt: now.Add(probeTTL).UTC().Truncate(time.Second), Relay: "198.18.1.21"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("response (-want +got):\n%s", d)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
}

func TestProbeAuth(t *testing.T) {
	fp := &fakeProber{}
	e := newProbeEnv(t, fp)
	for _, tc := range []struct {
		name, token, code string
	}{
		{"no token", "", "unauthorized"},
		{"unknown token", "not-a-token", "invalid_token"},
		{"zdial token", e.zdial, "invalid_token"},
	} {
		res, ej, _ := e.post(t, http.MethodPost, tc.token)
		if res.StatusCode != http.StatusUnauthorized || ej.Code != tc.code {
			t.Errorf("%s: %d %q, want 401 %q", tc.name, res.StatusCode, ej.Code, tc.code)
		}
	}
	if res, _, _ := e.post(t, http.MethodGet, e.mcs); res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "POST" {
		t.Errorf("GET: %d Allow %q", res.StatusCode, res.Header.Get("Allow"))
	}
	if len(fp.calls) != 0 {
		t.Errorf("unauthenticated requests opened %d probes", len(fp.calls))
	}
}

func TestProbeUnavailable(t *testing.T) {
	e := newProbeEnv(t, nil)
	res, ej, _ := e.post(t, http.MethodPost, e.mcs)
	if res.StatusCode != http.StatusServiceUnavailable || ej.Code != "probes_unavailable" || !strings.Contains(ej.Message, "probes unavailable") {
		t.Errorf("no relay: %d %+v", res.StatusCode, ej)
	}
	e = newProbeEnv(t, &fakeProber{err: errors.New("relay: no free ports in range")})
	res, ej, _ = e.post(t, http.MethodPost, e.mcs)
	if res.StatusCode != http.StatusServiceUnavailable || ej.Code != "probes_unavailable" || res.Header.Get("Retry-After") == "" {
		t.Errorf("relay full: %d %+v", res.StatusCode, ej)
	}
}

func TestProbeRateLimit(t *testing.T) {
	fp := &fakeProber{}
	e := newProbeEnv(t, fp)
	for i := range probesPerMin {
		if res, _, _ := e.post(t, http.MethodPost, e.mcs); res.StatusCode != http.StatusOK {
			t.Fatalf("probe %d: %d", i+1, res.StatusCode)
		}
		e.advance(time.Second)
	}
	res, ej, _ := e.post(t, http.MethodPost, e.mcs)
	if res.StatusCode != http.StatusTooManyRequests || ej.Code != "rate_limited" {
		t.Fatalf("probe %d: %d %+v", probesPerMin+1, res.StatusCode, ej)
	}
	if ra := res.Header.Get("Retry-After"); ra != "57" {
		t.Errorf("Retry-After %q, want 57 (the first probe leaves the window then)", ra)
	}
	e.advance(57 * time.Second)
	if res, _, _ := e.post(t, http.MethodPost, e.mcs); res.StatusCode != http.StatusOK {
		t.Errorf("after the window: %d", res.StatusCode)
	}
	if len(fp.calls) != probesPerMin+1 {
		t.Errorf("%d probes opened", len(fp.calls))
	}
}

// mcsToken mints another MCS token (what every /select does) for the
// customer's device dev.
func (e *probeEnv) mcsToken(t *testing.T, dev int64) string {
	t.Helper()
	return teststore.NewSession(t, e.st, store.Session{Kind: store.SessionMCS, CustomerID: e.cust, Number: "2025550100", DeviceID: dev,
		ExpiresAt: time.Now().Add(time.Hour)})
}

// TestProbeLimitNotPerToken: a fresh token per request does not reset the
// device's limit, and many devices of one account stop at the account's.
func TestProbeLimitNotPerToken(t *testing.T) {
	fp := &fakeProber{}
	e := newProbeEnv(t, fp)
	for i := range probesPerMin + 1 {
		res, ej, _ := e.post(t, http.MethodPost, e.mcsToken(t, e.dev))
		switch {
		case i < probesPerMin && res.StatusCode != http.StatusOK:
			t.Fatalf("probe %d: %d", i+1, res.StatusCode)
		case i == probesPerMin && (res.StatusCode != http.StatusTooManyRequests || ej.Code != "rate_limited"):
			t.Fatalf("probe %d with a new token: %d %+v, want 429", i+1, res.StatusCode, ej)
		}
	}
	// Other devices of the account (ids the store never made: the limit
	// does not care) share the account's budget.
	opened := probesPerMin
	for dev := int64(1000); dev < 1000+probesPerMinCustomer; dev++ {
		if res, _, _ := e.post(t, http.MethodPost, e.mcsToken(t, dev)); res.StatusCode == http.StatusOK {
			opened++
		}
	}
	if opened != probesPerMinCustomer {
		t.Errorf("one account opened %d probe sessions in a minute, want %d", opened, probesPerMinCustomer)
	}
	if len(fp.calls) != opened {
		t.Errorf("%d OpenProbe calls for %d sessions", len(fp.calls), opened)
	}
}

func TestProbeLimiterKeys(t *testing.T) {
	now := time.Unix(1700000000, 0)
	var l probeLimiter
	src := netip.MustParseAddr("2001:db8:1:2::1")
	other := netip.MustParseAddr("2001:db8:1:2:ffff::9") // same /64
	// Thirty devices of thirty accounts behind one /64: the address's limit.
	for i := range probesPerMinSource {
		if ok, _ := l.allow(probeKeysFor(store.Session{CustomerID: int64(i), DeviceID: 1}, src), now); !ok {
			t.Fatalf("session %d refused", i)
		}
	}
	ok, wait := l.allow(probeKeysFor(store.Session{CustomerID: 999, DeviceID: 1}, other), now.Add(time.Second))
	if ok || wait != probeWindow-time.Second {
		t.Errorf("one more from the /64: ok=%v wait=%s", ok, wait)
	}
	// A refused request counts against nothing.
	if ok, _ := l.allow(probeKeysFor(store.Session{CustomerID: 999, DeviceID: 1}, netip.MustParseAddr("198.51.100.7")), now.Add(time.Second)); !ok {
		t.Error("the same device from another address refused")
	}
}

// TestProbeFloodOneAccount (hole 5): one account asks for probe sessions
// with a new token each time against a real relay. It holds no more ports
// than its quota, and another customer's check still gets its ports.
func TestProbeFloodOneAccount(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	const quota = 2 * 2 * probePorts // two sessions' pairs
	// Ports above the ephemeral range; a busy one is skipped by the relay.
	base := 61000 + 2*int(time.Now().UnixNano()%1000)
	def := config.Dev("").Relay
	r, err := relay.New(relay.Config{Bind: lo, Ports: config.PortRange{Min: base, Max: base + 63},
		MediaTimeout: def.MediaTimeout, ProbeRate: def.ProbeRate, MaxStreams: def.MaxStreams,
		MaxPortsPerCustomer: quota, MaxPortsPerSource: 64}, relay.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	e := newProbeEnv(t, r)
	const asks = 25 // under every request limit: the port quota is what binds
	opened := 0
	for i := range asks {
		res, _, _ := e.post(t, http.MethodPost, e.mcsToken(t, int64(2000+i)))
		if res.StatusCode == http.StatusOK {
			opened++
		}
	}
	if held := r.AllocatedPorts(); held > quota || opened > quota/(2*probePorts) {
		t.Fatalf("one account opened %d sessions holding %d ports, quota %d", opened, held, quota)
	}
	// Another customer's check.
	_, tok, _ := teststore.Provision(t, e.st, "bob", "3125550100")
	if res, ej, _ := e.post(t, http.MethodPost, tok); res.StatusCode != http.StatusOK {
		t.Fatalf("another customer's probe: %d %+v", res.StatusCode, ej)
	}
	t.Logf("one account: %d of %d probe sessions opened, %d ports held (quota %d); another customer's probe opened",
		opened, asks, r.AllocatedPorts()-2*probePorts, quota)
}
