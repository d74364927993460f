package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// devWithoutTrunk is the dev config without its [trunk] section, so a test
// can append its own.
func devWithoutTrunk(t *testing.T) []byte {
	t.Helper()
	i := bytes.Index(devTOML, []byte("\n[trunk]"))
	if i < 0 {
		t.Fatal("dev.toml has no [trunk]")
	}
	return append([]byte{}, devTOML[:i]...)
}

func TestACDDefaults(t *testing.T) {
	c := Dev(t.TempDir())
	if c.ACD.RingTimeout != 15*time.Second || c.ACD.MaxWait != 10*time.Minute || c.ACD.WrapUp != 5*time.Second ||
		c.ACD.RequeueWindow != time.Minute {
		t.Errorf("acd defaults %+v, want 15s 10m 5s 1m", c.ACD)
	}
	tr, err := ParseTrunkURI(c.Trunk.Address)
	if err != nil || tr.Host != netip.MustParseAddrPort("127.0.0.1:5080") || tr.Transport != "tcp" {
		t.Errorf("dev trunk %q = %+v, %v", c.Trunk.Address, tr, err)
	}
	if len(c.Trunk.Routes) != 1 || c.Trunk.Routes[0].Match != "911" {
		t.Errorf("dev trunk routes %+v, want one for 911", c.Trunk.Routes)
	}
	if p := c.Trunk.AllowPrefixes(); len(p) != 1 || !p[0].Contains(netip.MustParseAddr("127.0.0.1")) {
		t.Errorf("dev trunk allow %v", p)
	}
}

func TestParseTrunkURI(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want TrunkURI
		ok   bool
	}{
		{"sip:198.18.9.1:5060;transport=tcp", TrunkURI{Host: netip.MustParseAddrPort("198.18.9.1:5060"), Transport: "tcp"}, true},
		{"sip:psap@198.18.9.2;transport=TLS", TrunkURI{User: "psap", Host: netip.MustParseAddrPort("198.18.9.2:5061"), Transport: "tls"}, true},
		{"sips:[::1]:5071", TrunkURI{Host: netip.MustParseAddrPort("[::1]:5071"), Transport: "tls"}, true},
		{"sip:911@127.0.0.1:5080", TrunkURI{User: "911", Host: netip.MustParseAddrPort("127.0.0.1:5080"), Transport: "tcp"}, true},
		{"sip:carrier.example.com:5060", TrunkURI{}, false}, // names are never resolved
		{"sip:198.18.9.1:5060;transport=udp", TrunkURI{}, false},
		{"sip:0.0.0.0:5060", TrunkURI{}, false},
		{"sip:198.18.9.1:70000", TrunkURI{}, false},
		{"http://198.18.9.1/", TrunkURI{}, false},
	} {
		got, err := ParseTrunkURI(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseTrunkURI(%q) = %+v, %v; want %+v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestACDTrunkValidation: each bad value is reported with its key and the
// line it is on.
func TestACDTrunkValidation(t *testing.T) {
	for _, tc := range []struct{ extra, want string }{
		{"[acd]\nring_timeout = \"10ms\"\n", "acd.ring_timeout"},
		{"[acd]\nmax_wait = \"48h\"\n", "acd.max_wait"},
		{"[acd]\nrequeue_window = \"100ms\"\n", "acd.requeue_window"},
		{"[trunk]\naddress = \"sip:127.0.0.1:5081;transport=tls\"\nca = \"/nonexistent/ca.pem\"\n", "trunk.ca"},
		{"[trunk]\naddress = \"sip:127.0.0.1:5081;transport=tls\"\nca = \"acd_test.go\"\n", "trunk.ca"},
		{"[trunk]\naddress = \"sip:127.0.0.1:5081;transport=tls\"\nserver_name = \"gw example\"\n", "trunk.server_name"},
		{"[trunk]\naddress = \"sip:gw.example:5060\"\n", "trunk.address"},
		{"[trunk]\nallow = [\"127.0.0.1/32\"]\n", "trunk.address"},
		{"[trunk]\naddress = \"sip:127.0.0.1:5080\"\nallow = [\"nonsense\"]\n", "trunk.allow"},
		{"[trunk]\naddress = \"sip:127.0.0.1:5080\"\nusername = \"u\"\n", "trunk.username"},
		{"[trunk]\naddress = \"sip:127.0.0.1:5080\"\n[[trunk.route]]\nmatch = \"9x1\"\ntarget = \"sip:127.0.0.1:5081\"\n", "trunk.route[0].match"},
		{"[trunk]\naddress = \"sip:127.0.0.1:5080\"\n[[trunk.route]]\nmatch = \"911\"\ntarget = \"tel:911\"\n", "trunk.route[0].target"},
	} {
		src := devWithoutTrunk(t)
		line := bytes.Count(src, []byte("\n")) + 2
		src = append(src, "\n"+tc.extra...)
		_, err := Parse("test.toml", src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one naming %s", tc.extra, err, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), "test.toml:") {
			t.Errorf("%q: error %v has no file:line (section starts at line %d)", tc.extra, err, line)
		}
	}
	// A top-level key after a table belongs to the table; put it first.
	src := append([]byte("relay_access_number = \"123\"\n"), devWithoutTrunk(t)...)
	if _, err := Parse("test.toml", src); err == nil || !strings.Contains(err.Error(), "relay_access_number") {
		t.Errorf("relay_access_number 123 accepted: %v", err)
	}
	src = append([]byte("relay_access_number = \"8665550100\"\n"), devWithoutTrunk(t)...)
	if c, err := Parse("test.toml", src); err != nil || c.RelayAccessNumber != "8665550100" {
		t.Errorf("relay_access_number: %v", err)
	}
}

// TestTrunkTLSKeys: a CA file with a certificate and a server name are
// taken as they are.
func TestTrunkTLSKeys(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, testCAPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	src := append(devWithoutTrunk(t), "\n[trunk]\naddress = \"sips:127.0.0.1:5081\"\nca = \""+ca+"\"\nserver_name = \"gw.carrier.example\"\n"...)
	c, err := Parse("test.toml", src)
	if err != nil {
		t.Fatal(err)
	}
	if c.Trunk.CA != ca || c.Trunk.ServerName != "gw.carrier.example" {
		t.Errorf("trunk %+v", c.Trunk)
	}
}

// testCAPEM is a fresh self-signed certificate in PEM (only parsed).
func testCAPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"test ca"}},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
