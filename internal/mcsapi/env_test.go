package mcsapi

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/pki"
	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/store/sqlite"
	"github.com/z5vrs/z5/internal/testenv"
	"github.com/z5vrs/z5/internal/testenv/teststore"
)

const serverName = "mcs1.mcs.z5.test"

// env is one MCS API over TLS on loopback, backed by a fresh SQLite store,
// with two customers' numbers and their MCS tokens.
type env struct {
	t      *testing.T
	cfg    Config
	st     *sqlite.Store
	svc    *Service
	pub    ed25519.PublicKey
	ca     *pki.CA
	base   string // https://127.0.0.1:port
	addr   string
	client *http.Client
	logs   *testenv.SyncBuffer
	// agentChanges counts Deps.AgentChanged calls.
	agentChanges atomic.Int32

	// Alice holds number 2025550100 on device aliceDev; Bob 3125550100.
	aliceDev, bobDev store.Device
	alice, bob       string // MCS tokens
	aliceCustomer    int64
}

func testConfig() Config {
	return Config{
		LicenseTTL:  24 * time.Hour,
		Features:    []string{"video", "audio", "addressbook"},
		Issuer:      "mcs.z5.test",
		MaxContacts: 50,
		MaxBody:     64 << 10,

		MaxTrackedSources: 1024,
	}
}

func newEnv(t *testing.T, mod ...func(*Config)) *env {
	t.Helper()
	e := &env{t: t, cfg: testConfig(), st: teststore.SQLite(t)}
	for _, m := range mod {
		m(&e.cfg)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e.pub = pub
	e.aliceDev, e.alice, e.aliceCustomer = teststore.Provision(t, e.st, "alice", "2025550100")
	e.bobDev, e.bob, _ = teststore.Provision(t, e.st, "bob", "3125550100")

	e.logs = &testenv.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.svc, err = New(e.cfg, Deps{Store: e.st, LicenseKey: key, Log: log, Registerer: prometheus.NewRegistry(),
		AgentChanged: func() { e.agentChanges.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, tok := range []string{e.alice, e.bob} {
			if strings.Contains(e.logs.String(), tok) {
				t.Errorf("a bearer token reached the log:\n%s", e.logs)
			}
		}
	})
	e.ca, err = pki.LoadOrCreateCA(t.TempDir(), "Z5 test")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := e.ca.Issue([]string{serverName}, []netip.Addr{netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	srv := e.svc.HTTPServer(pki.ServerTLS(cert))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	e.addr = ln.Addr().String()
	e.base = "https://" + e.addr
	e.client = e.tlsClient(&tls.Config{RootCAs: e.ca.Pool(), ServerName: serverName})
	return e
}

func (e *env) tlsClient(tc *tls.Config) *http.Client {
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// resp is a response with its body read.
type resp struct {
	*http.Response
	body []byte
}

// errBody decodes the JSON error shape.
func (r resp) err() errorJSON {
	var b errorBody
	json.Unmarshal(r.body, &b)
	return b.Error
}

// do sends a request; hdr holds header pairs ("If-Match", `"1"`, ...).
// A body sent without a Content-Type header pair goes as application/json.
func (e *env) do(method, path, token, body string, hdr ...string) resp {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, b := testenv.Fetch(e.t, e.client, req)
	return resp{res, b}
}

// want fails the test unless r has status code.
func (r resp) want(t *testing.T, code int) resp {
	t.Helper()
	if r.StatusCode != code {
		t.Fatalf("%s %s: status %d, want %d; body: %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, code, r.body)
	}
	return r
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}
