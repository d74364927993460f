package zdial

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/password"
	"github.com/z5vrs/z5/internal/pki"
	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/store/sqlite"
	"github.com/z5vrs/z5/internal/testenv"
)

// cheapHash keeps fixture setup fast; the first successful login upgrades
// it to the default parameters (see TestLoginRehash).
var cheapHash = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// clock is the fake clock of the Service: newEnv freezes it, so it moves
// only when the test advances it. Every limit (request and login buckets,
// failure counts, lockouts, expiries) reads it, so no test depends on how
// fast the machine runs it or on which tests ran before.
type clock struct {
	mu     sync.Mutex // guards the following
	offset time.Duration
	frozen time.Time // zero: follow real time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.frozen.IsZero() {
		return c.frozen.Add(c.offset)
	}
	return time.Now().Add(c.offset)
}

func (c *clock) Freeze() {
	c.mu.Lock()
	c.frozen = time.Now()
	c.mu.Unlock()
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

type env struct {
	t      *testing.T
	cfg    Config
	st     *sqlite.Store
	svc    *Service
	srv    *httptest.Server
	ca     *pki.CA
	client *http.Client
	clock  *clock
	logs   *testenv.SyncBuffer

	mu sync.Mutex // guards secrets when requests run concurrently
	// secrets are every password and token the test handled; none may
	// appear in the logs.
	secrets []string
}

func testConfig() Config {
	return Config{
		SIPDomain:          "mcs.z5.test",
		LBMCS:              "lb.mcs.z5.test",
		MCSHosts:           []string{"mcs1.mcs.z5.test", "mcs2.mcs.z5.test"},
		SIPPort:            5060,
		Realm:              "mcs.z5.test",
		SessionTTL:         time.Hour,
		MaxFailures:        3,
		AccountMaxFailures: 10,
		SourceMaxFailures:  1000, // TestSourceFailureLimit sets its own
		Lockout:            15 * time.Minute,
		PerIPRate:          1,    // with a frozen clock only the burst counts
		PerIPBurst:         1000, // TestPerIPThrottle sets its own
		MCSTokenTTL:        30 * time.Minute,
	}
}

// newEnv starts ZDial over TLS on 127.0.0.1:0 with a certificate for
// zdial.z5.test from a fresh CA, and a client that trusts only that CA.
// Each test gets its own server, store, limits and frozen clock.
func newEnv(t *testing.T, mod func(*Config), deps ...func(*Deps)) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "z5.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	e := &env{t: t, cfg: testConfig(), st: st, clock: &clock{}, logs: &testenv.SyncBuffer{}}
	e.clock.Freeze()
	if mod != nil {
		mod(&e.cfg)
	}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d := Deps{Store: st, Log: log, Now: e.clock.Now}
	for _, f := range deps {
		f(&d)
	}
	e.svc, err = New(e.cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	e.ca, err = pki.LoadOrCreateCA(dir, "Z5 test")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := e.ca.Issue([]string{"zdial.z5.test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewUnstartedServer(e.svc)
	e.srv.Config = e.svc.HTTPServer(nil)
	e.srv.TLS = pki.ServerTLS(cert)
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	e.client = e.newClient(nil)
	t.Cleanup(func() {
		logs := e.logs.String()
		for _, s := range e.secrets {
			if s != "" && strings.Contains(logs, s) {
				t.Errorf("a secret (%.6s...) appears in the logs:\n%s", s, logs)
			}
		}
	})
	return e
}

// newClient verifies the server against the test CA as zdial.z5.test,
// optionally dialing from a given loopback source address.
func (e *env) newClient(local net.Addr) *http.Client {
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: e.ca.Pool(), ServerName: "zdial.z5.test", MinVersion: tls.VersionTLS12},
		DialContext:     (&net.Dialer{LocalAddr: local, Timeout: 5 * time.Second}).DialContext,
	}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// customer creates an account with numbers ("5552000001:Home", ...).
func (e *env) customer(username, pw string, numbers ...string) store.Customer {
	e.t.Helper()
	h, err := password.HashWith(cheapHash, pw)
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := e.st.CreateCustomer(context.Background(), store.Customer{Username: username, DisplayName: "Name of " + username, PasswordHash: h})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, n := range numbers {
		num, label, _ := strings.Cut(n, ":")
		if err := e.st.AddNumber(context.Background(), store.Number{Number: num, CustomerID: c.ID, Label: label}); err != nil {
			e.t.Fatal(err)
		}
	}
	e.secret(pw)
	return c
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; hdr is "Key: value" lines.
func (e *env) do(c *http.Client, method, path, token, body string, hdr ...string) response {
	e.t.Helper()
	r, err := e.try(c, method, path, token, body, hdr...)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// try is do for any goroutine: it returns the error instead of failing.
func (e *env) try(c *http.Client, method, path, token, body string, hdr ...string) (response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		return response{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for _, h := range hdr {
		k, v, _ := strings.Cut(h, ": ")
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	if c == nil {
		c = e.client
	}
	resp, err := c.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	return response{resp.StatusCode, resp.Header, b}, nil
}

// secret records a password or token that must not reach the logs.
func (e *env) secret(s ...string) {
	e.mu.Lock()
	e.secrets = append(e.secrets, s...)
	e.mu.Unlock()
}

func (e *env) login(username, pw string) response {
	e.t.Helper()
	return e.loginFrom(nil, username, pw)
}

// loginFrom logs in with client c (nil: the default client).
func (e *env) loginFrom(c *http.Client, username, pw string) response {
	e.t.Helper()
	b, _ := json.Marshal(loginRequest{Username: username, Password: pw})
	e.secret(pw)
	return e.do(c, "POST", "/api/v1/login", "", string(b))
}

// mustLogin logs in and returns the decoded answer.
func (e *env) mustLogin(username, pw string) loginResponse {
	e.t.Helper()
	r := e.login(username, pw)
	if r.status != http.StatusOK {
		e.t.Fatalf("login %s: %d %s", username, r.status, r.body)
	}
	var lr loginResponse
	decode(e.t, r.body, &lr)
	e.secret(lr.Token)
	return lr
}

func (e *env) selectNumber(token, number, instance string) response {
	e.t.Helper()
	b, _ := json.Marshal(selectRequest{Number: number, DeviceName: "laptop", InstanceID: instance})
	return e.do(nil, "POST", "/api/v1/select", token, string(b))
}

func (e *env) mustSelect(token, number, instance string) selectResponse {
	e.t.Helper()
	r := e.selectNumber(token, number, instance)
	if r.status != http.StatusOK {
		e.t.Fatalf("select %s: %d %s", number, r.status, r.body)
	}
	var sr selectResponse
	decode(e.t, r.body, &sr)
	e.secret(sr.SIP.Password, sr.MCSToken)
	return sr
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// wantError checks status and error code, and that the message says
// something.
func wantError(t *testing.T, r response, status int, code string) errorBody {
	t.Helper()
	var eb errorBody
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	decode(t, r.body, &eb)
	if eb.Error.Code != code || eb.Error.Message == "" {
		t.Fatalf("error %+v, want code %q with a message", eb.Error, code)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("error Content-Type %q", ct)
	}
	return eb
}
