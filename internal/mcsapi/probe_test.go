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

	"github.com/z5vrs/z5/internal/store"
)

// fakeProber records OpenProbe calls.
type fakeProber struct {
	mu    sync.Mutex
	calls []probeCall
	err   error
}

type probeCall struct {
	key []byte
	n   int
	ttl time.Duration
}

func (f *fakeProber) OpenProbe(token []byte, n int, ttl time.Duration) ([]int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	f.calls = append(f.calls, probeCall{append([]byte(nil), token...), n, ttl})
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
	st := newStore(t)
	_, tok, cust := provision(t, st, "alice", "2025550100")
	zd := newSession(t, st, store.Session{Kind: store.SessionZDial, CustomerID: cust, ExpiresAt: time.Now().Add(time.Hour)})
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var mu sync.Mutex
	e := &probeEnv{mcs: tok, zdial: zd, now: &now, logs: &bytes.Buffer{}, mu: &mu}
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
