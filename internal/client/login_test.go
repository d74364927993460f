package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/z5vrs/z5/internal/license"
	"github.com/z5vrs/z5/internal/pki"
	"github.com/z5vrs/z5/internal/profile"
	"github.com/z5vrs/z5/internal/testenv"
)

// startDNS serves A records for every name under z5.test on 127.0.0.1
// (UDP and TCP on one port 0), refusing other names, and returns its
// address.
func startDNS(t *testing.T) netip.AddrPort {
	t.Helper()
	return serveA(t, 60, func(name string) ([]netip.Addr, bool) {
		if name != "z5.test" && !strings.HasSuffix(name, ".z5.test") {
			return nil, false
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, true
	})
}

// serveA serves A records with ttl over UDP and TCP (serveDNS): a gives a
// name's addresses (in lower case, without the final dot), or false to
// refuse the name.
func serveA(t *testing.T, ttl uint32, a func(name string) ([]netip.Addr, bool)) netip.AddrPort {
	t.Helper()
	return serveDNS(t, dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		q := r.Question[0]
		addrs, ok := a(strings.TrimSuffix(strings.ToLower(q.Name), "."))
		if !ok {
			m.Rcode = dns.RcodeRefused
		} else if q.Qtype == dns.TypeA {
			for _, ip := range addrs {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: ip.AsSlice()})
			}
		}
		w.WriteMsg(m)
	}))
}

// serveDNS serves h over UDP and TCP on one port of 127.0.0.1 until the
// test ends, and returns the address.
func serveDNS(t *testing.T, h dns.Handler) netip.AddrPort {
	t.Helper()
	l, pc := testenv.ListenTCPUDP(t)
	testenv.ServeDNS(t, &dns.Server{PacketConn: pc, Handler: h})
	testenv.ServeDNS(t, &dns.Server{Listener: l, Handler: h})
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

// silentDNS takes UDP and TCP packets on a port and never answers.
func silentDNS(t *testing.T) netip.AddrPort {
	t.Helper()
	l, pc := testenv.ListenTCPUDP(t)
	t.Cleanup(func() { pc.Close(); l.Close() })
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

// fakeProvider is a ZDial and an MCS API as small as step 2 and 3 need,
// behind the profile's CA and names.
type fakeProvider struct {
	t       *testing.T
	profile *profile.Profile
	key     ed25519.PrivateKey // signs licenses
	ca      *pki.CA            // issued every server certificate

	mu       sync.Mutex // guards the following
	requests []string   // every request body ZDial and the MCS saw
	status   map[string]int
	revoked  bool
	location []byte // the registered location as PUT; nil: none
}

const (
	fakePassword = "correct horse battery staple"
	fakeSIPPass  = "device-credential-1"
)

// loginAlice opens a client with opts in a new home and logs alice in
// at f with her number.
func (f *fakeProvider) loginAlice(t *testing.T, opts Options) *Client {
	t.Helper()
	opts.Home = t.TempDir()
	c, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(context.Background(), LoginRequest{Profile: f.profile, Username: "alice", Password: fakePassword, Number: "2025550102"}); err != nil {
		t.Fatal(err)
	}
	return c
}

func newFakeProvider(t *testing.T, nameservers ...netip.AddrPort) *fakeProvider {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(t.TempDir(), "Z5 test")
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	f := &fakeProvider{t: t, key: key, ca: ca, status: map[string]int{}}
	serve := func(names []string, h http.Handler) int {
		cert, err := ca.Issue(names, nil)
		if err != nil {
			t.Fatal(err)
		}
		s := httptest.NewUnstartedServer(h)
		s.TLS = pki.ServerTLS(cert)
		s.StartTLS()
		t.Cleanup(s.Close)
		return s.Listener.Addr().(*net.TCPAddr).Port
	}
	zdialPort := serve([]string{"zdial.z5.test"}, http.HandlerFunc(f.zdial))
	mcsPort := serve([]string{"lb.mcs.z5.test", "mcs1.mcs.z5.test", "mcs2.mcs.z5.test"}, http.HandlerFunc(f.mcs))
	f.profile = &profile.Profile{
		Version: 1, Provider: "Z5 test",
		Names:       profile.Names{ZDial: "zdial.z5.test", LBMCS: "lb.mcs.z5.test", MCS: []string{"mcs1.mcs.z5.test", "mcs2.mcs.z5.test"}, SIPDomain: "mcs.z5.test"},
		Ports:       profile.Ports{ZDialHTTPS: zdialPort, MCSHTTPS: mcsPort, SIP: 5060, RTP: "20000-20999"},
		CAPEM:       string(ca.CertPEM()),
		LicenseKeys: []string{license.EncodePublicKey(key.Public().(ed25519.PublicKey))},
	}
	for _, ns := range nameservers {
		f.profile.Nameservers = append(f.profile.Nameservers, ns.String())
	}
	return f
}

// fail makes path answer status from now on.
func (f *fakeProvider) fail(path string, status int) {
	f.mu.Lock()
	f.status[path] = status
	f.mu.Unlock()
}

func (f *fakeProvider) record(r *http.Request) ([]byte, int) {
	b := new(bytes.Buffer)
	b.ReadFrom(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.URL.Path+" "+b.String())
	return b.Bytes(), f.status[r.URL.Path]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func apiErr(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": strconv.Itoa(status), "message": msg}})
}

func (f *fakeProvider) zdial(w http.ResponseWriter, r *http.Request) {
	body, status := f.record(r)
	if status != 0 {
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "30")
		}
		apiErr(w, status, "forced")
		return
	}
	switch r.URL.Path {
	case "/api/v1/login":
		var in struct{ Username, Password string }
		json.Unmarshal(body, &in)
		if in.Username != "alice" || in.Password != fakePassword {
			apiErr(w, http.StatusUnauthorized, "wrong username or password")
			return
		}
		writeJSON(w, 200, map[string]any{"token": "zdial-session", "expires_at": time.Now().Add(time.Hour),
			"numbers": []Number{{"2025550101", "home"}, {"2025550102", "work"}}})
	case "/api/v1/select":
		var in struct{ Number string }
		json.Unmarshal(body, &in)
		writeJSON(w, 200, map[string]any{"number": in.Number, "device_id": 7, "mcs_token": "mcs-token",
			"mcs_token_expires_at": time.Now().Add(time.Hour),
			"sip": SIPCreds{Username: in.Number + "-d7", Password: fakeSIPPass, Realm: "mcs.z5.test", Domain: "mcs.z5.test",
				Hosts: []string{"mcs1.mcs.z5.test", "mcs2.mcs.z5.test"}, Port: 5060, Transport: "tcp"}})
	case "/api/v1/logout":
		f.mu.Lock()
		f.revoked = true
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeProvider) mcs(w http.ResponseWriter, r *http.Request) {
	body, status := f.record(r)
	f.mu.Lock()
	revoked := f.revoked
	f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer mcs-token" || revoked {
		apiErr(w, http.StatusUnauthorized, "the token has expired or was revoked")
		return
	}
	if status != 0 {
		apiErr(w, status, "forced")
		return
	}
	switch r.URL.Path {
	case "/api/v1/license":
		now := time.Now()
		tok, _ := license.Sign(f.key, license.Claims{Number: "2025550102", DeviceID: 7, Features: []string{"video", "audio"},
			NotBefore: now.Add(-time.Minute).Unix(), NotAfter: now.Add(24 * time.Hour).Unix()})
		writeJSON(w, 200, map[string]string{"license": tok})
	case "/api/v1/contacts":
		if r.Header.Get("If-None-Match") == `"3"` {
			w.Header().Set("ETag", `"3"`)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"3"`)
		writeJSON(w, 200, map[string]any{"rev": 3, "contacts": []apiContact{{ID: "c1", Name: "Bob", Number: "3035550199", Version: 1}}})
	case "/api/v1/location":
		f.mu.Lock()
		defer f.mu.Unlock()
		if r.Method == http.MethodPut {
			var l map[string]any
			json.Unmarshal(body, &l)
			l["updated_at"] = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
			f.location, _ = json.Marshal(l)
		}
		if f.location == nil {
			writeJSON(w, 404, map[string]any{"error": map[string]string{"code": "no_location", "message": "no registered location yet"}})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(f.location)
	default:
		http.NotFound(w, r)
	}
}

func TestLoginAgainstFakeProvider(t *testing.T) {
	f := newFakeProvider(t, startDNS(t))
	ctx := context.Background()
	home := t.TempDir()
	var events []Event
	c, err := Open(Options{Home: home, OnEvent: func(e Event) { events = append(events, e) }})
	if err != nil {
		t.Fatal(err)
	}

	// Wrong password: step 2, ErrBadCredentials, and nothing kept.
	err = c.Login(ctx, LoginRequest{Profile: f.profile, Username: "alice", Password: "guess", Number: "2025550102"})
	var se *StepError
	if !errors.As(err, &se) || se.Step != StepZDial || !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	// Two numbers, none given, nobody to ask.
	err = c.Login(ctx, LoginRequest{Username: "alice", Password: fakePassword})
	if !errors.Is(err, ErrNumberRequired) || !strings.Contains(err.Error(), "2025550101 (home), 2025550102 (work)") {
		t.Fatalf("no number: %v", err)
	}
	// A number that is not the account's.
	err = c.Login(ctx, LoginRequest{Username: "alice", Password: fakePassword, Number: "9995550100"})
	if err == nil || !strings.Contains(err.Error(), "not on this account") {
		t.Fatalf("foreign number: %v", err)
	}
	// Chosen interactively.
	var offered []Number
	err = c.Login(ctx, LoginRequest{Username: "alice", Password: fakePassword, Choose: func(ns []Number) (string, error) {
		offered = ns
		return ns[1].Number, nil
	}})
	if err != nil || len(offered) != 2 {
		t.Fatalf("login choosing a number: %v (offered %v)", err, offered)
	}
	st := c.State()
	if st.Number != "2025550102" || st.DeviceID != 7 || st.License == "" || len(st.Contacts) != 1 || st.ContactsTag != `"3"` {
		t.Fatalf("state after login: %+v", st)
	}
	steps := map[int]bool{}
	for _, e := range events {
		steps[e.Step] = true
	}
	if !steps[StepDNS] || !steps[StepZDial] || !steps[StepMCS] {
		t.Errorf("progress events for steps %v, want 1-3", steps)
	}

	path := filepath.Join(home, stateFile)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v", fi, err)
	}
	b, _ := os.ReadFile(path)
	if bytes.Contains(b, []byte(fakePassword)) || bytes.Contains(b, []byte("guess")) {
		t.Fatal("the account password was written to the state file")
	}
	// A second client on the same home sees the login; the contacts come
	// from the cache when the MCS says 304.
	c2, err := Open(Options{Home: home})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := c2.SyncContacts(ctx)
	if err != nil || len(cs) != 1 || cs[0].Name != "Bob" {
		t.Fatalf("contacts from a reopened home: %+v %v", cs, err)
	}
	if _, _, err := c2.ValidLicense(ctx, time.Hour); err != nil {
		t.Fatalf("stored license: %v", err)
	}

	// The MCS fails: step 3 names it, and only a network failure gets the
	// firewall hint.
	f.fail("/api/v1/license", http.StatusInternalServerError)
	err = c2.FetchLicense(ctx)
	if !errors.As(err, &se) || se.Step != StepMCS || strings.Contains(se.Hint, "allow outbound") {
		t.Errorf("MCS 500: %v", err)
	}

	// Logout revokes the tokens and forgets them; the profile stays.
	if err := c2.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(path)
	for _, secret := range []string{"mcs-token", "zdial-session", fakeSIPPass} {
		if bytes.Contains(after, []byte(secret)) {
			t.Errorf("%q still on disk after logout", secret)
		}
	}
	if c2.Profile() == nil {
		t.Error("logout forgot the provider profile")
	}
}

func TestLoginErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("locked", func(t *testing.T) {
		f := newFakeProvider(t, startDNS(t))
		f.fail("/api/v1/login", http.StatusTooManyRequests)
		c, _ := Open(Options{Home: t.TempDir()})
		err := c.Login(ctx, LoginRequest{Profile: f.profile, Username: "alice", Password: fakePassword, Number: "2025550102"})
		if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "step 2") || !strings.Contains(err.Error(), "retry after 30s") {
			t.Fatalf("locked: %v", err)
		}
	})
	t.Run("license from another key", func(t *testing.T) {
		f := newFakeProvider(t, startDNS(t))
		_, f.key, _ = ed25519.GenerateKey(rand.Reader) // not the profile's key
		c, _ := Open(Options{Home: t.TempDir()})
		err := c.Login(ctx, LoginRequest{Profile: f.profile, Username: "alice", Password: fakePassword, Number: "2025550102"})
		var se *StepError
		if !errors.As(err, &se) || se.Step != StepMCS || !errors.Is(err, ErrNoLicense) || !strings.Contains(se.Hint, "provider profile") {
			t.Fatalf("license signed by a stranger: %v", err)
		}
		if c.State().License != "" {
			t.Error("an unverified license was kept")
		}
		// No license, no SIP: Connect refuses before any network use.
		_, err = c.Connect(ctx, PhoneOptions{})
		if !errors.As(err, &se) || se.Step != StepMCS {
			t.Fatalf("Connect without a license: %v", err)
		}
	})
	t.Run("revoked session", func(t *testing.T) {
		f := newFakeProvider(t, startDNS(t))
		c := f.loginAlice(t, Options{})
		f.mu.Lock()
		f.revoked = true
		f.mu.Unlock()
		_, err := c.SyncContacts(ctx)
		var se *StepError
		if !errors.As(err, &se) || se.Step != StepMCS || !strings.Contains(se.Hint, "log in again") {
			t.Fatalf("revoked token: %v", err)
		}
		// An expired license that cannot be renewed: one error, one hint.
		now := time.Now()
		c.state.License, _ = license.Sign(f.key, license.Claims{Number: "2025550102", DeviceID: 7,
			NotBefore: now.Add(-48 * time.Hour).Unix(), NotAfter: now.Add(-24 * time.Hour).Unix()})
		_, _, err = c.ValidLicense(ctx, time.Hour)
		if !errors.As(err, &se) || se.Step != StepMCS || !errors.Is(err, license.ErrExpired) ||
			!strings.Contains(err.Error(), "renewing it failed") || strings.Count(err.Error(), "what to do") != 1 {
			t.Fatalf("expired, renewal refused: %v", err)
		}
	})
}

// TestNameserverPreference: after the first nameserver fails to answer, the
// client asks the one that answered first, so a dead site costs one timeout
// per process instead of one per name.
func TestNameserverPreference(t *testing.T) {
	silent, good := silentDNS(t), startDNS(t)
	f := newFakeProvider(t, silent, good)
	const timeout = 150 * time.Millisecond
	c, err := Open(Options{Home: t.TempDir(), DNSTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetProfile(f.profile); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	began := time.Now()
	_, r := c.lookup(ctx, "zdial.z5.test")
	first := time.Since(began)
	if r.Err != nil || r.Server != good || first < 2*timeout {
		t.Fatalf("first lookup: %+v after %s (want an answer from %s after the silent one timed out)", r, first, good)
	}
	began = time.Now()
	for _, name := range []string{"mcs1.mcs.z5.test", "mcs2.mcs.z5.test", "lb.mcs.z5.test"} {
		if _, r := c.lookup(ctx, name); r.Err != nil || r.Server != good {
			t.Fatalf("lookup %s: %+v", name, r)
		}
	}
	if d := time.Since(began); d > timeout {
		t.Errorf("three more lookups took %s: the silent nameserver is still asked first", d)
	}
	// Resolve, login and everything after use the preferred order too.
	res, err := c.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Server.IsValid() && r.Server != good {
			t.Errorf("%s answered by %s", r.Name, r.Server)
		}
	}
	t.Logf("first lookup %s (one timeout per transport), then %v", first.Round(time.Millisecond), c.servers)
}
