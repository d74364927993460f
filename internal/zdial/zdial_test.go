package zdial

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/password"
	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/testenv"
	"github.com/z5vrs/z5/internal/testenv/teststore"
	"github.com/z5vrs/z5/internal/wire/zdialwire"
)

func TestLogin(t *testing.T) {
	e := newEnv(t, nil)
	e.customer("alice", "alice-secret-1", "5552000001:Home", "5552000002:Office")
	before := e.clock.Now()
	lr := e.mustLogin("alice", "alice-secret-1")

	want := loginResponse{
		Role:     "customer",
		Customer: customerJSON{Username: "alice", DisplayName: "Name of alice"},
		Numbers:  []numberJSON{{"5552000001", "Home"}, {"5552000002", "Office"}},
	}
	got := lr
	got.Token, got.ExpiresAt = "", ""
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("login response (-want +got):\n%s", d)
	}
	if len(lr.Token) != 43 {
		t.Errorf("token %d characters, want 43 (256 bits base64url)", len(lr.Token))
	}
	exp, err := time.Parse(time.RFC3339, lr.ExpiresAt)
	if err != nil || exp.Before(before.Add(time.Hour-2*time.Second)) || exp.After(before.Add(time.Hour+2*time.Second)) {
		t.Errorf("expires_at %q, want about now+1h", lr.ExpiresAt)
	}
	sess, err := e.st.Session(context.Background(), store.TokenHash(lr.Token))
	if err != nil || sess.Kind != store.SessionZDial || !sess.Valid(e.clock.Now()) {
		t.Errorf("stored session %+v, %v", sess, err)
	}

	r := e.do(nil, "GET", "/api/v1/session", lr.Token, "")
	var sr sessionResponse
	decode(t, r.body, &sr)
	if r.status != 200 || sr.Customer.Username != "alice" || len(sr.Numbers) != 2 || sr.ExpiresAt != lr.ExpiresAt {
		t.Errorf("session: %d %s", r.status, r.body)
	}
	for _, h := range []string{"Strict-Transport-Security", "X-Content-Type-Options", "Cache-Control"} {
		if r.header.Get(h) == "" {
			t.Errorf("response lacks %s", h)
		}
	}
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", r.header)
	}
}

func TestLoginWrongPasswordAndUnknownUserLookAlike(t *testing.T) {
	e := newEnv(t, nil)
	e.customer("bob", "bob-secret-1", "5552000003")
	wrong := wantError(t, e.login("bob", "not-his-password"), 401, "invalid_credentials")
	unknown := wantError(t, e.login("nobody", "not-his-password"), 401, "invalid_credentials")
	if wrong != unknown {
		t.Errorf("wrong password %+v differs from unknown user %+v", wrong, unknown)
	}
	c, _ := e.st.CustomerByUsername(context.Background(), "bob")
	if c.Failures != 1 {
		t.Errorf("failures = %d, want 1", c.Failures)
	}
	// Success resets the count.
	e.mustLogin("bob", "bob-secret-1")
	c, _ = e.st.CustomerByUsername(context.Background(), "bob")
	if c.Failures != 0 {
		t.Errorf("failures after success = %d, want 0", c.Failures)
	}
}

func TestLockout(t *testing.T) {
	e := newEnv(t, nil) // MaxFailures 3, Lockout 15m
	e.customer("carol", "carol-secret-1", "5552000004")
	e.clock.Freeze()
	for i := range 3 {
		wantError(t, e.login("carol", "guess-"+strconv.Itoa(i)), 401, "invalid_credentials")
	}
	// Locked: even the right password is refused, without hashing it.
	r := e.login("carol", "carol-secret-1")
	wantError(t, r, 429, "account_locked")
	if ra := r.header.Get("Retry-After"); ra != "900" {
		t.Errorf("Retry-After %q, want 900", ra)
	}
	e.clock.Advance(14 * time.Minute)
	r = e.login("carol", "carol-secret-1")
	wantError(t, r, 429, "account_locked")
	if ra := r.header.Get("Retry-After"); ra != "60" {
		t.Errorf("Retry-After %q after 14m, want 60", ra)
	}
	e.clock.Advance(time.Minute + time.Second)
	e.mustLogin("carol", "carol-secret-1")
	c, _ := e.st.CustomerByUsername(context.Background(), "carol")
	if c.Failures != 0 || !c.LockedUntil.IsZero() {
		t.Errorf("after success: failures %d, locked until %v", c.Failures, c.LockedUntil)
	}
}

// An unknown username locks exactly like a real account, so "account
// locked" tells nobody whether the account exists: both for the lock of a
// (source, username) pair and for the lock of the account itself.
func TestLockoutUnknownUser(t *testing.T) {
	for _, tt := range []struct {
		name       string
		pair, acct int
	}{
		{"pair lock", 3, 10},
		{"account lock", 10, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.MaxFailures, c.AccountMaxFailures = tt.pair, tt.acct })
			e.customer("dave", "dave-secret-1")
			var real, ghost []string
			for _, user := range []string{"dave", "ghost"} {
				for i := range 5 {
					// Time moves only by the test, so both sequences see
					// the same clock whatever each attempt costs.
					e.clock.Advance(time.Second)
					r := e.login(user, "guess-"+strconv.Itoa(i))
					var eb errorBody
					decode(t, r.body, &eb)
					got := fmt.Sprintf("%d %s %s Retry-After=%s", r.status, eb.Error.Code, eb.Error.Message, r.header.Get("Retry-After"))
					if user == "dave" {
						real = append(real, got)
					} else {
						ghost = append(ghost, got)
					}
				}
			}
			if d := cmp.Diff(real, ghost); d != "" {
				t.Errorf("existing vs unknown username answers differ (-real +unknown):\n%s", d)
			}
			if !strings.HasPrefix(real[3], "429 account_locked") {
				t.Errorf("4th failure: %s, want 429", real[3])
			}
		})
	}
}

func TestPerIPThrottle(t *testing.T) {
	// One attempt per minute sustained, a burst of 10, on the frozen clock.
	const burst = 10
	e := newEnv(t, func(c *Config) { c.PerIPRate, c.PerIPBurst = 1, burst })
	e.customer("erin", "erin-secret-1")
	for i := range burst {
		// Malformed bodies are charged too: the bucket is taken first.
		wantError(t, e.do(nil, "POST", "/api/v1/login", "", `{"username":`+strconv.Itoa(i)), 400, "invalid_json")
	}
	// Forged forwarding headers change nothing: the peer address counts.
	r := e.do(nil, "POST", "/api/v1/login", "", `{"username":"erin","password":"erin-secret-1"}`,
		"X-Forwarded-For: 192.0.2.77", "X-Real-IP: 192.0.2.78", "Forwarded: for=192.0.2.79")
	wantError(t, r, 429, "rate_limited")
	if ra := r.header.Get("Retry-After"); ra != "60" {
		t.Errorf("Retry-After %q, want 60", ra)
	}
	// Another loopback address has its own bucket.
	other := e.newClient(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if r := e.do(other, "POST", "/api/v1/login", "", `{"username":"erin","password":"erin-secret-1"}`); r.status != 200 {
		t.Errorf("login from 127.0.0.2: %d %s", r.status, r.body)
	}
	e.clock.Advance(61 * time.Second)
	e.mustLogin("erin", "erin-secret-1")
}

func TestSelect(t *testing.T) {
	e := newEnv(t, nil)
	e.customer("frank", "frank-secret-1", "5552000011:Home", "5552000012:Office")
	e.customer("grace", "grace-secret-1", "5552000021")
	lr := e.mustLogin("frank", "frank-secret-1")
	ctx := context.Background()

	// Choose the second number.
	sr := e.mustSelect(lr.Token, lr.Numbers[1].Number, "<urn:uuid:00000000-0000-4000-8000-000000000001>")
	wantSIP := zdialwire.SIPCreds{
		Username: sr.SIP.Username, Password: sr.SIP.Password,
		Realm: "mcs.z5.test", Domain: "mcs.z5.test",
		Hosts: []string{"mcs1.mcs.z5.test", "mcs2.mcs.z5.test"}, LB: "lb.mcs.z5.test",
		Port: 5060, Transport: "tcp",
	}
	if d := cmp.Diff(wantSIP, sr.SIP); d != "" {
		t.Errorf("sip (-want +got):\n%s", d)
	}
	if sr.Number != "5552000012" || !strings.HasPrefix(sr.SIP.Username, "5552000012-") || len(sr.SIP.Password) < 20 {
		t.Errorf("select response %+v", sr)
	}
	dev, err := e.st.Device(ctx, sr.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	if dev.Kind != store.DeviceZ5 || dev.Number != "5552000012" || dev.Name != "laptop" || dev.SIPUser != sr.SIP.Username ||
		dev.InstanceID != "<urn:uuid:00000000-0000-4000-8000-000000000001>" {
		t.Errorf("device %+v", dev)
	}
	// The password itself is not stored; its digests verify it.
	if d := cmp.Diff(store.NewCredentials(sr.SIP.Username, "mcs.z5.test", sr.SIP.Password), dev.Cred); d != "" {
		t.Errorf("stored HA1 does not match the returned password (-want +got):\n%s", d)
	}
	mcs, err := e.st.Session(ctx, store.TokenHash(sr.MCSToken))
	if err != nil {
		t.Fatal(err)
	}
	if mcs.Kind != store.SessionMCS || mcs.Number != "5552000012" || mcs.DeviceID != dev.ID ||
		string(mcs.ParentHash) != string(store.TokenHash(lr.Token)) || !mcs.Valid(e.clock.Now()) {
		t.Errorf("MCS session %+v", mcs)
	}
	exp, _ := time.Parse(time.RFC3339, sr.MCSTokenExpiresAt)
	if d := exp.Sub(e.clock.Now()); d < 29*time.Minute || d > 31*time.Minute {
		t.Errorf("mcs_token_expires_at %s, want now+30m", sr.MCSTokenExpiresAt)
	}

	// Same installation again: same device and SIP username, new password.
	again := e.mustSelect(lr.Token, "5552000012", "<urn:uuid:00000000-0000-4000-8000-000000000001>")
	if again.DeviceID != sr.DeviceID || again.SIP.Username != sr.SIP.Username || again.SIP.Password == sr.SIP.Password {
		t.Errorf("reselect: device %d user %s (was %d %s); password rotated: %v",
			again.DeviceID, again.SIP.Username, sr.DeviceID, sr.SIP.Username, again.SIP.Password != sr.SIP.Password)
	}
	dev, _ = e.st.Device(ctx, sr.DeviceID)
	if dev.Cred != store.NewCredentials(sr.SIP.Username, "mcs.z5.test", again.SIP.Password) {
		t.Errorf("credentials not rotated to the new password")
	}
	// Another installation: another device.
	other := e.mustSelect(lr.Token, "5552000012", "<urn:uuid:00000000-0000-4000-8000-000000000002>")
	if other.DeviceID == sr.DeviceID || other.SIP.Username == sr.SIP.Username {
		t.Errorf("second installation reused device %d", other.DeviceID)
	}
	devs, _ := e.st.DevicesOf(ctx, "5552000012")
	if len(devs) != 2 {
		t.Errorf("devices of 5552000012: %d, want 2", len(devs))
	}

	// Numbers of someone else, or of no one: one answer.
	wantError(t, e.selectNumber(lr.Token, "5552000021", "i1"), 403, "number_not_yours")
	wantError(t, e.selectNumber(lr.Token, "5559999999", "i1"), 403, "number_not_yours")
	wantError(t, e.selectNumber(lr.Token, "12345", "i1"), 400, "invalid_field")
	wantError(t, e.selectNumber(lr.Token, "5552000011", ""), 400, "missing_field")
	wantError(t, e.selectNumber(lr.Token, "5552000011", "has space"), 400, "invalid_field")
	// An MCS token is not a login token.
	wantError(t, e.selectNumber(sr.MCSToken, "5552000011", "i1"), 401, "invalid_token")
}

func TestMCSTokenNeverOutlivesLogin(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.SessionTTL = 10 * time.Minute; c.MCSTokenTTL = 24 * time.Hour })
	e.customer("heidi", "heidi-secret-1", "5552000031")
	lr := e.mustLogin("heidi", "heidi-secret-1")
	sr := e.mustSelect(lr.Token, "5552000031", "i1")
	if sr.MCSTokenExpiresAt != lr.ExpiresAt {
		t.Errorf("mcs_token_expires_at %s, want the login's %s", sr.MCSTokenExpiresAt, lr.ExpiresAt)
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t, nil)
	e.customer("ivan", "ivan-secret-1", "5552000041")
	lr := e.mustLogin("ivan", "ivan-secret-1")
	sr := e.mustSelect(lr.Token, "5552000041", "i1")
	r := e.do(nil, "POST", "/api/v1/logout", lr.Token, "")
	if r.status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	now := e.clock.Now()
	for name, tok := range map[string]string{"login": lr.Token, "mcs": sr.MCSToken} {
		s, err := e.st.Session(context.Background(), store.TokenHash(tok))
		if err != nil || s.Valid(now) {
			t.Errorf("%s session after logout: %+v, %v", name, s, err)
		}
	}
	wantError(t, e.do(nil, "GET", "/api/v1/session", lr.Token, ""), 401, "session_expired")
	wantError(t, e.selectNumber(lr.Token, "5552000041", "i1"), 401, "session_expired")
	wantError(t, e.do(nil, "POST", "/api/v1/logout", lr.Token, ""), 401, "session_expired")
	// An empty JSON object is an acceptable logout body; fields are not.
	lr = e.mustLogin("ivan", "ivan-secret-1")
	wantError(t, e.do(nil, "POST", "/api/v1/logout", lr.Token, `{"all":true}`), 400, "unknown_field")
	if r := e.do(nil, "POST", "/api/v1/logout", lr.Token, `{}`); r.status != 204 {
		t.Errorf("logout with {}: %d %s", r.status, r.body)
	}
}

func TestSessionExpires(t *testing.T) {
	e := newEnv(t, nil)
	e.customer("judy", "judy-secret-1", "5552000051")
	lr := e.mustLogin("judy", "judy-secret-1")
	e.clock.Advance(59 * time.Minute)
	if r := e.do(nil, "GET", "/api/v1/session", lr.Token, ""); r.status != 200 {
		t.Fatalf("session before expiry: %d %s", r.status, r.body)
	}
	e.clock.Advance(2 * time.Minute)
	r := e.do(nil, "GET", "/api/v1/session", lr.Token, "")
	wantError(t, r, 401, "session_expired")
	if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer ") {
		t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
	}
	wantError(t, e.selectNumber(lr.Token, "5552000051", "i1"), 401, "session_expired")
}

func TestLoginRehash(t *testing.T) {
	e := newEnv(t, nil)
	e.customer("ken", "ken-secret-1")
	e.mustLogin("ken", "ken-secret-1")
	c, _ := e.st.CustomerByUsername(context.Background(), "ken")
	if password.NeedsRehash(c.PasswordHash) {
		t.Errorf("hash not upgraded at login: %s", c.PasswordHash)
	}
	e.mustLogin("ken", "ken-secret-1")
}

// Every malformed request gets a clear 4xx: status, a stable code and a
// message; never a 5xx.
func TestBadRequests(t *testing.T) {
	e := newEnv(t, nil)
	e.customer("lena", "lena-secret-1", "5552000061")
	tok := e.mustLogin("lena", "lena-secret-1").Token
	huge := `{"username":"` + strings.Repeat("a", maxBody) + `","password":"x"}`
	tests := []struct {
		name         string
		method, path string
		token, body  string
		hdr          []string
		status       int
		code         string
		msg          string // substring of the message
	}{
		{"get login", "GET", "/api/v1/login", "", "", nil, 405, "method_not_allowed", "use POST"},
		{"delete session", "DELETE", "/api/v1/session", tok, "", nil, 405, "method_not_allowed", "GET, HEAD"},
		{"put select", "PUT", "/api/v1/select", tok, "{}", nil, 405, "method_not_allowed", "POST"},
		{"unknown path", "GET", "/api/v2/login", "", "", nil, 404, "not_found", "/api/v2/login"},
		{"trailing slash", "POST", "/api/v1/login/", "", "{}", nil, 404, "not_found", ""},
		{"no content type", "POST", "/api/v1/login", "", `{"username":"a","password":"b"}`, []string{"Content-Type: "}, 415, "unsupported_media_type", "application/json"},
		{"form", "POST", "/api/v1/login", "", `username=a&password=b`, []string{"Content-Type: application/x-www-form-urlencoded"}, 415, "unsupported_media_type", "application/json"},
		{"latin1", "POST", "/api/v1/login", "", `{"username":"a","password":"b"}`, []string{"Content-Type: application/json; charset=latin1"}, 415, "unsupported_media_type", "UTF-8"},
		{"empty", "POST", "/api/v1/login", "", "", nil, 400, "empty_body", `"username", "password"`},
		{"whitespace", "POST", "/api/v1/login", "", "  \n", nil, 400, "empty_body", ""},
		{"truncated", "POST", "/api/v1/login", "", `{"username":"a"`, nil, 400, "invalid_json", "ends too early"},
		{"syntax", "POST", "/api/v1/login", "", `{"username":"a",}`, nil, 400, "invalid_json", "byte 17"},
		{"array", "POST", "/api/v1/login", "", `["a","b"]`, nil, 400, "invalid_json", "JSON object"},
		{"string", "POST", "/api/v1/login", "", `"a"`, nil, 400, "invalid_json", "JSON object"},
		{"null", "POST", "/api/v1/login", "", `null`, nil, 400, "missing_field", ""},
		{"wrong type", "POST", "/api/v1/login", "", `{"username":42,"password":"b"}`, nil, 400, "invalid_field", `"username" must be a string`},
		{"unknown field", "POST", "/api/v1/login", "", `{"username":"a","password":"b","remember":true}`, nil, 400, "unknown_field", `"remember"`},
		{"two objects", "POST", "/api/v1/login", "", `{"username":"a","password":"b"}{}`, nil, 400, "invalid_json", "exactly one"},
		{"bad utf8", "POST", "/api/v1/login", "", "{\"username\":\"a\xff\",\"password\":\"b\"}", nil, 400, "invalid_json", "UTF-8"},
		{"missing password", "POST", "/api/v1/login", "", `{"username":"a"}`, nil, 400, "missing_field", ""},
		{"long username", "POST", "/api/v1/login", "", `{"username":"` + strings.Repeat("u", 300) + `","password":"b"}`, nil, 400, "invalid_field", "256"},
		{"long password", "POST", "/api/v1/login", "", `{"username":"a","password":"` + strings.Repeat("p", 1025) + `"}`, nil, 400, "invalid_field", "1024"},
		{"huge body", "POST", "/api/v1/login", "", huge, nil, 413, "body_too_large", "65536"},
		{"no token", "POST", "/api/v1/select", "", `{"number":"5552000061","instance_id":"i"}`, nil, 401, "missing_token", "Bearer"},
		{"basic auth", "GET", "/api/v1/session", "", "", []string{"Authorization: Basic bGVuYTpsZW5h"}, 401, "invalid_token", "Bearer scheme"},
		{"token in query", "GET", "/api/v1/session?access_token=" + tok, "", "", nil, 401, "missing_token", ""},
		{"garbage token", "GET", "/api/v1/session", "", "", []string{"Authorization: Bearer a b c"}, 401, "invalid_token", "malformed"},
		{"unknown token", "GET", "/api/v1/session", "", "", []string{"Authorization: Bearer " + store.NewToken()}, 401, "invalid_token", "log in again"},
		{"select bad json", "POST", "/api/v1/select", tok, `{"number":5552000061}`, nil, 400, "invalid_field", `"number" must be a string`},
		{"select unknown field", "POST", "/api/v1/select", tok, `{"number":"5552000061","instance_id":"i","sip_user":"x"}`, nil, 400, "unknown_field", `"sip_user"`},
		{"select long name", "POST", "/api/v1/select", tok, `{"number":"5552000061","instance_id":"i","device_name":"` + strings.Repeat("n", 65) + `"}`, nil, 400, "invalid_field", "device_name"},
		{"select control char", "POST", "/api/v1/select", tok, `{"number":"5552000061","instance_id":"i","device_name":"a\u0007b"}`, nil, 400, "invalid_field", "device_name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(nil, tt.method, tt.path, tt.token, tt.body, tt.hdr...)
			eb := wantError(t, r, tt.status, tt.code)
			if !strings.Contains(eb.Error.Message, tt.msg) {
				t.Errorf("message %q lacks %q", eb.Error.Message, tt.msg)
			}
			if tt.status == 405 && r.header.Get("Allow") == "" {
				t.Errorf("405 without Allow")
			}
			if r.header.Get("Strict-Transport-Security") == "" || r.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("security headers missing on error: %v", r.header)
			}
		})
	}
}

// A body without Content-Length (chunked) is cut at the limit too.
func TestChunkedHugeBody(t *testing.T) {
	e := newEnv(t, nil)
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(`{"username":"`))
		chunk := []byte(strings.Repeat("a", 4096))
		for range maxBody/len(chunk) + 2 {
			if _, err := pw.Write(chunk); err != nil {
				break
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/login", pr)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("chunked huge body: %d, want 413", resp.StatusCode)
	}
	pr.Close()
}

func TestHealthz(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do(nil, "GET", "/healthz", "", "")
	if r.status != 200 || string(r.body) != "ok\n" {
		t.Errorf("healthz: %d %q", r.status, r.body)
	}
	if r := e.do(nil, "HEAD", "/healthz", "", ""); r.status != 200 {
		t.Errorf("HEAD healthz: %d", r.status)
	}
}

// TLS only, and only as zdial.z5.test under the provider's CA.
func TestTLS(t *testing.T) {
	e := newEnv(t, nil)
	e.customer("mallory", "mallory-secret-1")
	addr := strings.TrimPrefix(e.srv.URL, "https://")

	// Plain HTTP to the TLS port: the TLS layer answers 400 itself; the
	// request never reaches ZDial.
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	body := `{"username":"mallory","password":"mallory-secret-1"}`
	fmt.Fprintf(conn, "POST /api/v1/login HTTP/1.1\r\nHost: zdial.z5.test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatalf("plain HTTP login succeeded")
		}
		if resp.StatusCode != 400 {
			t.Errorf("plain HTTP: %d, want the TLS layer's 400", resp.StatusCode)
		}
	}
	if strings.Contains(e.logs.String(), "zdial login") {
		t.Errorf("plain HTTP request reached the handler")
	}

	// A client that does not trust the CA, or expects another name, fails.
	for name, cfg := range map[string]*tls.Config{
		"system roots": {ServerName: "zdial.z5.test"},
		"wrong name":   {RootCAs: e.ca.Pool(), ServerName: "mcs.z5.test"},
	} {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 5 * time.Second}
		_, err := c.Get(e.srv.URL + "/healthz")
		var cve *tls.CertificateVerificationError
		if err == nil || !errors.As(err, &cve) {
			t.Errorf("%s: err = %v, want a certificate verification error", name, err)
		}
		c.CloseIdleConnections()
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(testConfig(), Deps{}); err == nil || !strings.Contains(err.Error(), "Store") {
		t.Errorf("New without store: %v", err)
	}
	cfg := Config{}
	_, err := New(cfg, Deps{})
	for _, want := range []string{"SIPDomain", "Realm", "LBMCS", "MCSHosts", "SIPPort", "SessionTTL", "MaxFailures",
		"AccountMaxFailures", "SourceMaxFailures", "Lockout", "PerIPRate", "PerIPBurst"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(zero config) error %v lacks %s", err, want)
		}
	}
}

// An account whose stored hash is unset or corrupt cannot log in and
// answers like a wrong password: never a 5xx.
func TestLoginBrokenHash(t *testing.T) {
	e := newEnv(t, nil)
	for _, h := range []string{"", "$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHQ$Bo1ismRVk2qm6+YAYLCmWHDb+j3fjUH3"} {
		name := fmt.Sprintf("broken%d", len(h))
		if _, err := e.st.CreateCustomer(context.Background(), store.Customer{Username: name, PasswordHash: h}); err != nil {
			t.Fatal(err)
		}
		wantError(t, e.login(name, "any-password-1"), 401, "invalid_credentials")
	}
	if !strings.Contains(e.logs.String(), "stored password hash unusable") {
		t.Errorf("broken hash not logged")
	}
}

// Selections racing from one installation end on one device.
func TestSelectConcurrentSameInstance(t *testing.T) {
	e := newEnv(t, nil)
	e.customer("olga", "olga-secret-1", "5552000071")
	tok := e.mustLogin("olga", "olga-secret-1").Token
	const n = 4
	ids := make(chan int64, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			b := `{"number":"5552000071","instance_id":"same"}`
			req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/select", strings.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := e.client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var sr selectResponse
			if err := json.NewDecoder(resp.Body).Decode(&sr); err != nil || resp.StatusCode != 200 {
				t.Errorf("select: %d %v", resp.StatusCode, err)
				return
			}
			e.mu.Lock()
			e.secrets = append(e.secrets, sr.SIP.Password, sr.MCSToken)
			e.mu.Unlock()
			ids <- sr.DeviceID
		})
	}
	wg.Wait()
	close(ids)
	first := int64(-1)
	for id := range ids {
		if first == -1 {
			first = id
		} else if id != first {
			t.Errorf("devices %d and %d for one installation", first, id)
		}
	}
	devs, _ := e.st.DevicesOf(context.Background(), "5552000071")
	if len(devs) != 1 {
		t.Errorf("%d devices, want 1", len(devs))
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	st := teststore.SQLite(t)
	svc, err := New(testConfig(), Deps{Store: st, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(testConfig(), Deps{Store: st, Registerer: reg}); err == nil {
		t.Errorf("second Service on one registry: no error")
	}
	for range 2 {
		req := httptest.NewRequest("POST", "/api/v1/login", strings.NewReader(`{"username":"nobody","password":"x"}`))
		req.Header.Set("Content-Type", "application/json")
		svc.ServeHTTP(httptest.NewRecorder(), req)
	}
	if got := testenv.Metric(t, reg, "z5_zdial_logins_total", "result=invalid"); got != 2 {
		t.Errorf("logins{invalid} = %v, want 2", got)
	}
	if got := testenv.Metric(t, reg, "z5_zdial_requests_total", "code=401,route=/api/v1/login"); got != 2 {
		t.Errorf("requests{login,401} = %v, want 2", got)
	}
}
