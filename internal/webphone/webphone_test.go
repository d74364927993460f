package webphone

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/store"
)

// fakeSessions knows one MCS token and two ZDial tokens: a staff
// member's (customer 1) and a customer's (customer 2).
type fakeSessions struct{ token string }

func (f fakeSessions) Session(ctx context.Context, hash []byte) (store.Session, error) {
	exp := time.Now().Add(time.Hour)
	switch string(hash) {
	case string(store.TokenHash(f.token)):
		return store.Session{Kind: store.SessionMCS, CustomerID: 2, Number: "2025550102", DeviceID: 7, ExpiresAt: exp}, nil
	case string(store.TokenHash("staff-zdial")):
		return store.Session{Kind: store.SessionZDial, CustomerID: 1, ExpiresAt: exp}, nil
	case string(store.TokenHash("customer-zdial")):
		return store.Session{Kind: store.SessionZDial, CustomerID: 2, ExpiresAt: exp}, nil
	}
	return store.Session{}, store.ErrNotFound
}

func (f fakeSessions) Customer(ctx context.Context, id int64) (store.Customer, error) {
	if id == 1 {
		return store.Customer{ID: 1, Role: store.RoleStaff}, nil
	}
	return store.Customer{ID: id}, nil
}

func testGateway(t *testing.T, wp config.WebPhone) (*Gateway, *httptest.Server) {
	t.Helper()
	return testGatewayRate(t, wp, 0, 0)
}

func testGatewayRate(t *testing.T, wp config.WebPhone, rate float64, burst int) (*Gateway, *httptest.Server) {
	t.Helper()
	if wp == (config.WebPhone{}) {
		wp = config.DefaultWebPhone()
	}
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'")
		io.WriteString(w, "api "+r.URL.Path)
	})
	zd := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "zdial "+r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
	})
	g, err := New(Config{WebPhone: wp, Bind: netip.MustParseAddr("127.0.0.1"), RTP: config.PortRange{Min: 20000, Max: 39999}, Domain: "mcs.z5.test",
		RateLimit: rate, RateBurst: burst, MaxTrackedSources: 16},
		Deps{Sessions: fakeSessions{token: "good-token"}, Accounts: fakeSessions{}, Node: "n1", API: api, ZDial: zd,
			SIP: func() netip.AddrPort { return netip.MustParseAddrPort("127.0.0.1:1") }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(g)
	t.Cleanup(func() { srv.Close(); g.Close() })
	return g, srv
}

// TestRoutesAndHeaders: the page and its assets carry the web CSP; other
// paths reach the API untouched; sign-in is forwarded to ZDial's API paths
// only for login, select and logout.
func TestRoutesAndHeaders(t *testing.T) {
	_, srv := testGateway(t, config.WebPhone{})
	c := srv.Client()
	get := func(method, path string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer zt")
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res, string(b)
	}
	for _, tt := range []struct {
		method, path string
		status       int
		body, ct     string
		webCSP       bool
	}{
		{"GET", "/", 200, "<title>Z5 web phone</title>", "text/html; charset=utf-8", true},
		{"GET", "/web/app.js", 200, "'use strict'", "text/javascript; charset=utf-8", true},
		{"GET", "/web/app.css", 200, "--accent", "text/css; charset=utf-8", true},
		{"GET", "/web/favicon.svg", 200, "<svg", "image/svg+xml", true},
		{"GET", "/web/nope.js", 404, "", "", false},
		{"GET", "/web/..%2fwebphone.go", 404, "", "", false},
		{"GET", "/api/v1/contacts", 200, "api /api/v1/contacts", "", false},
		{"POST", "/web/zdial/login", 200, "zdial POST /api/v1/login Bearer zt", "", false},
		{"POST", "/web/zdial/select", 200, "zdial POST /api/v1/select", "", false},
		{"POST", "/web/zdial/session", 404, "", "", false},
		{"GET", "/web/zdial/login", 404, "", "", false},
	} {
		res, body := get(tt.method, tt.path)
		if res.StatusCode != tt.status || !strings.Contains(body, tt.body) {
			t.Errorf("%s %s: %d %.80q, want %d with %q", tt.method, tt.path, res.StatusCode, body, tt.status, tt.body)
		}
		if tt.ct != "" && res.Header.Get("Content-Type") != tt.ct {
			t.Errorf("%s %s: Content-Type %q", tt.method, tt.path, res.Header.Get("Content-Type"))
		}
		if csp := res.Header.Get("Content-Security-Policy"); tt.webCSP != (csp == csp0) {
			t.Errorf("%s %s: CSP %q", tt.method, tt.path, csp)
		}
	}
}

const csp0 = csp

func dialWS(t *testing.T, srv *httptest.Server, origin string) (*websocket.Conn, error) {
	t.Helper()
	cfg, err := websocket.NewConfig(strings.Replace(srv.URL, "https", "wss", 1)+PathWS, origin)
	if err != nil {
		t.Fatal(err)
	}
	cfg.TlsConfig = &tls.Config{InsecureSkipVerify: true}
	return websocket.DialConfig(cfg)
}

// TestWebSocketAuth: a WebSocket from another origin is refused at the
// handshake; one that does not present a valid MCS token first gets an
// error and is closed; an oversized message closes the socket.
func TestWebSocketAuth(t *testing.T) {
	_, srv := testGateway(t, config.WebPhone{})
	if _, err := dialWS(t, srv, "https://evil.example"); err == nil {
		t.Error("cross-origin WebSocket accepted")
	}
	self := "https://" + strings.TrimPrefix(srv.URL, "https://")
	for _, tt := range []struct {
		name string
		send any
		want string
	}{
		{"not auth", msg{Type: "call", Number: "3035550199"}, "sign in first"},
		{"bad token", map[string]any{"type": "auth", "token": "bad", "license": "x", "sip": map[string]string{"username": "u"}, "instance": "urn:uuid:00000000-0000-0000-0000-000000000000"}, "expired or is not valid"},
		{"no instance", map[string]any{"type": "auth", "token": "good-token", "license": "x", "sip": map[string]string{"username": "u"}}, "instance"},
		{"too large", map[string]any{"type": "auth", "token": strings.Repeat("a", 70<<10)}, ""},
	} {
		ws, err := dialWS(t, srv, self)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if err := websocket.JSON.Send(ws, tt.send); err != nil {
			if tt.want == "" {
				ws.Close() // closed while the oversized message was written
				continue
			}
			t.Fatal(err)
		}
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		var m msg
		err = websocket.JSON.Receive(ws, &m)
		if tt.want == "" {
			// Oversized: the socket closes, perhaps after an error message.
			if err == nil && m.Type != "error" {
				t.Errorf("%s: got %+v, want the socket closed", tt.name, m)
			}
			if err != nil {
				ws.Close()
				continue
			}
		} else if err != nil || m.Type != "error" || !strings.Contains(m.Message, tt.want) {
			t.Errorf("%s: %+v %v, want an error with %q", tt.name, m, err, tt.want)
		}
		// Then the gateway closes the socket.
		if err := websocket.JSON.Receive(ws, &m); err == nil {
			t.Errorf("%s: socket still open (%+v)", tt.name, m)
		}
		ws.Close()
	}
}

// TestAdmit: tabs are bounded per number and per node, and a released tab
// frees its place.
func TestAdmit(t *testing.T) {
	g, _ := testGateway(t, config.WebPhone{MaxTabs: 3, MaxTabsPerNumber: 2, MaxMessage: 4096, AuthTimeout: time.Second, IdleTimeout: time.Minute})
	a, b, c, d := &tab{}, &tab{}, &tab{}, &tab{}
	for _, tt := range []struct {
		t      *tab
		number string
		ok     bool
	}{{a, "1", true}, {b, "1", true}, {c, "1", false}, {c, "2", true}, {d, "3", false}} {
		if err := g.admit(tt.t, tt.number); (err == nil) != tt.ok {
			t.Errorf("admit %s: %v, want ok=%v", tt.number, err, tt.ok)
		}
	}
	g.release(a, "1")
	if err := g.admit(d, "1"); err != nil {
		t.Errorf("after a release: %v", err)
	}
	for _, x := range []*tab{b, c, d} {
		g.release(x, map[*tab]string{b: "1", c: "2", d: "1"}[x])
	}
	if g.Tabs() != 0 {
		t.Errorf("%d tabs after releasing all", g.Tabs())
	}
}

// TestOutcomes: SIP final statuses become the page's outcome words, and
// only dialable targets are accepted.
func TestOutcomes(t *testing.T) {
	for code, want := range map[int]string{486: "busy", 600: "busy", 480: "unavailable", 404: "unavailable",
		408: "unavailable", 603: "declined", 487: "cancelled", 500: "failed", 403: "failed"} {
		if got := reasonFor(code); got != want {
			t.Errorf("reasonFor(%d) = %q, want %q", code, got, want)
		}
	}
	for s, ok := range map[string]bool{"3035550199": true, "911": true, "ca-1001": true, "12": false,
		"303 555": false, "sip:evil@example.com": false, "3035550199;x": false, "": false} {
		if dialPattern.MatchString(s) != ok {
			t.Errorf("dialPattern(%q) = %v", s, !ok)
		}
	}
}

func TestMsgJSON(t *testing.T) {
	b, _ := json.Marshal(msg{Type: "ended", Reason: "busy"})
	if string(b) != `{"type":"ended","reason":"busy"}` {
		t.Errorf("%s", b)
	}
}

// TestOperatorView: only a staff member's ZDial session reads the
// operator view; customers' tokens, MCS tokens and none get 403.
func TestOperatorView(t *testing.T) {
	_, srv := testGateway(t, config.WebPhone{})
	for _, tt := range []struct {
		token  string
		status int
	}{{"staff-zdial", 200}, {"customer-zdial", 403}, {"good-token", 403}, {"", 403}, {"nope", 403}} {
		req, _ := http.NewRequest("GET", srv.URL+PathOperator, nil)
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var v operatorView
		err = json.NewDecoder(res.Body).Decode(&v)
		res.Body.Close()
		if res.StatusCode != tt.status || res.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("token %q: %d %q, want %d", tt.token, res.StatusCode, res.Header.Get("Cache-Control"), tt.status)
		}
		if tt.status == 200 && (err != nil || v.Node != "n1" || v.Registrations == nil || v.Unavailable["queue"] == "") {
			t.Errorf("staff view: %+v %v", v, err)
		}
	}
}

type http404 struct{}

func (http404) ServeHTTP(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }

// TestRateLimit: sign-in forwarding, WebSockets and the operator view
// count against one per-source budget; the page's files do not.
func TestRateLimit(t *testing.T) {
	_, srv := testGatewayRate(t, config.WebPhone{}, 0.001, 2) // one token per 1000 s
	status := func(method, path string) int {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader("{}"))
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	got := []int{status("POST", "/web/zdial/login"), status("GET", PathOperator), status("POST", "/web/zdial/login"),
		status("GET", PathWS), status("GET", "/"), status("GET", "/web/app.js")}
	want := []int{200, 403, 429, 429, 200, 200}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
}
