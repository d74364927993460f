package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/client"
	"github.com/z5vrs/z5/internal/license"
	"github.com/z5vrs/z5/internal/profile"
)

// stack is a running single-node provider.
type stack struct {
	ip, dir, cfg string
	proc         *proc
}

func startStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{ip: loopbackIP(t), dir: t.TempDir()}
	s.cfg = stackConfig(t, s.dir, s.ip, "")
	s.start(t)
	return s
}

func (s *stack) start(t *testing.T) {
	s.proc = start(t, "z5d", "run", "--config", s.cfg, "--node", "n1")
	waitReady(t, s.proc, s.ip+":9090")
}

func (s *stack) admin(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	return mustRun(t, stdin, "z5d", append([]string{"admin", "--config", s.cfg}, args...)...)
}

// located are the flags of customer add that give the customer a
// registered location, without which its numbers may call only 911.
var located = []string{"--street", "1 Test Plaza", "--city", "Springfield", "--state", "IL", "--zip", "62701"}

// customerAdd is the admin command line that creates a customer with a
// registered location.
func customerAdd(username string) []string {
	return append([]string{"customer", "add", username, "--password-stdin"}, located...)
}

func (s *stack) profilePath() string { return filepath.Join(s.dir, "provider.json") }

func TestDNSWithDig(t *testing.T) {
	dig := needTool(t, "dig")
	s := startStack(t)
	q := func(args ...string) string {
		out, err := exec.Command(dig, append([]string{"@" + s.ip, "-p", "5353", "+time=2", "+tries=1"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("dig %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"+short", "zdial.z5.test", "A"}, s.ip},
		{[]string{"+short", "+tcp", "zdial.z5.test", "A"}, s.ip},
		{[]string{"+short", "lb.mcs.z5.test", "A"}, s.ip},
		{[]string{"+short", "mcs1.mcs.z5.test", "A"}, s.ip},
		{[]string{"+short", "+tcp", "mcs2.mcs.z5.test", "A"}, s.ip},
		{[]string{"+short", "mcs.z5.test", "A"}, s.ip},
		{[]string{"+short", "_sip._tcp.mcs.z5.test", "SRV"}, "5060 mcs1.mcs.z5.test."},
		{[]string{"example.com", "A"}, "status: REFUSED"},
		{[]string{"nope.z5.test", "A"}, "status: NXDOMAIN"},
		{[]string{"zdial.z5.test", "A"}, "flags: qr aa"},
	}
	for _, tt := range tests {
		if out := q(tt.args...); !strings.Contains(out, tt.want) {
			t.Errorf("dig %v:\n%s\nwant it to contain %q", tt.args, out, tt.want)
		}
	}
}

func TestHTTPSVerifiedAgainstCA(t *testing.T) {
	s := startStack(t)
	pem, err := os.ReadFile(filepath.Join(s.dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("ca.pem holds no certificate")
	}
	for _, tt := range []struct {
		name, port string
		ok         bool
	}{
		{"zdial.z5.test", "8443", true},
		{"mcs1.mcs.z5.test", "9443", true},
		{"mcs2.mcs.z5.test", "9443", true},
		{"lb.mcs.z5.test", "9443", true},
		{"mcs.z5.test", "9443", true},
		{"mcs1.mcs.z5.test", "8443", false}, // ZDial's certificate does not name the MCS
		{"evil.example", "9443", false},
	} {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", net.JoinHostPort(s.ip, tt.port),
			&tls.Config{RootCAs: pool, ServerName: tt.name, MinVersion: tls.VersionTLS12})
		if (err == nil) != tt.ok {
			t.Errorf("TLS to %s as %s: err=%v, want ok=%v", tt.port, tt.name, err, tt.ok)
		}
		if err == nil {
			conn.Close()
		}
	}
	// TLS 1.1 is refused.
	if c, err := tls.Dial("tcp", s.ip+":8443", &tls.Config{RootCAs: pool, ServerName: "zdial.z5.test", MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Error("TLS 1.1 accepted")
	}
	// Plain HTTP is refused.
	for _, port := range []string{"8443", "9443"} {
		resp, err := http.Get("http://" + s.ip + ":" + port + "/api/v1/login")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 400 {
				t.Errorf("plain HTTP on %s answered %d %s", port, resp.StatusCode, body)
			}
		}
	}
}

// provision creates alice (two numbers, a contact) and bob.
func (s *stack) provision(t *testing.T) {
	t.Helper()
	s.admin(t, "alice-secret-1\n", customerAdd("alice")...)
	s.admin(t, "", "number", "add", "alice", "2025550101", "--label", "home")
	s.admin(t, "", "number", "add", "alice", "2025550102", "--label", "work")
	s.admin(t, "bob-secret-22\n", customerAdd("bob")...)
	s.admin(t, "", "number", "add", "bob", "3035550199")
	s.admin(t, "", "contact", "add", "2025550102", "Bob", "3035550199")
}

// startProvisioned starts a stack holding alice's and bob's accounts and
// returns it, its profile and a client with a fresh home, not logged in.
func startProvisioned(t *testing.T) (*stack, *profile.Profile, *client.Client) {
	t.Helper()
	s := startStack(t)
	s.provision(t)
	prof, err := profile.Load(s.profilePath())
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Open(client.Options{Home: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return s, prof, c
}

func TestLoginLicenseAddressBook(t *testing.T) {
	_, prof, c := startProvisioned(t)
	ctx := context.Background()
	// Two numbers and none chosen: a clear error.
	err := c.Login(ctx, client.LoginRequest{Profile: prof, Username: "alice", Password: "alice-secret-1"})
	if !strings.Contains(fmt.Sprint(err), "several numbers") {
		t.Fatalf("login without --number: %v", err)
	}
	// Wrong password.
	err = c.Login(ctx, client.LoginRequest{Profile: prof, Username: "alice", Password: "wrong-password"})
	if !strings.Contains(fmt.Sprint(err), "wrong username or password") || !strings.Contains(fmt.Sprint(err), "step 2") {
		t.Fatalf("wrong password: %v", err)
	}
	if err := c.Login(ctx, client.LoginRequest{Profile: prof, Username: "alice", Password: "alice-secret-1", Number: "2025550102"}); err != nil {
		t.Fatal(err)
	}
	st := c.State()
	keys, _ := prof.PublicKeys()
	claims, err := license.Verify(st.License, time.Now(), keys...)
	if err != nil || claims.Number != "2025550102" || claims.DeviceID != st.DeviceID {
		t.Fatalf("license: %+v %v", claims, err)
	}
	if len(st.Contacts) != 1 || st.Contacts[0].Name != "Bob" {
		t.Fatalf("contacts = %+v", st.Contacts)
	}
	// Secrets on disk are private to the user.
	fi, err := os.Stat(filepath.Join(c.Home(), "state.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state.json mode %v %v", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(filepath.Join(c.Home(), "state.json")); bytes.Contains(b, []byte("alice-secret-1")) {
		t.Fatal("the password was written to disk")
	}
	if err := c.Logout(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestCrashKeepsAcknowledgedWrites: contacts the MCS acknowledged (201) are
// all there after kill -9 and a restart.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	s, prof, c := startProvisioned(t)
	ctx := context.Background()
	if err := c.Login(ctx, client.LoginRequest{Profile: prof, Username: "bob", Password: "bob-secret-22"}); err != nil {
		t.Fatal(err)
	}
	acked, _ := writeUntilKilled(t, prof, c.State().MCSToken, "https://"+s.ip+":9443", s.proc, 150, 30*time.Second)
	s.start(t)
	cs, err := c.SyncContacts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, ct := range cs {
		have = append(have, ct.ID)
	}
	if lost := lostWrites(acked, have); len(lost) > 0 {
		t.Fatalf("%d of %d acknowledged contacts lost after kill -9: %v", len(lost), len(acked), lost)
	}
	t.Logf("%d acknowledged writes, all present after kill -9 and restart", len(acked))
}
