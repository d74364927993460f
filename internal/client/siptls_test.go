package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"strings"
	"testing"

	"github.com/z5vrs/z5/internal/pki"
	"github.com/z5vrs/z5/internal/profile"
)

func TestSIPTransport(t *testing.T) {
	for _, tt := range []struct {
		name      string
		ports     profile.Ports
		credsPort int
		network   string
		port      int
	}{
		{"TLS on: the profile's TLS port", profile.Ports{SIP: 5060, SIPTLS: 5061}, 5060, "tls", 5061},
		{"TLS on, no port from ZDial", profile.Ports{SIP: 5060, SIPTLS: 5061}, 0, "tls", 5061},
		{"TLS off: ZDial's port", profile.Ports{SIP: 5060}, 5070, "tcp", 5070},
		{"TLS off, no port from ZDial: the profile's", profile.Ports{SIP: 5060}, 0, "tcp", 5060},
	} {
		network, port := sipTransport(tt.ports, tt.credsPort)
		if network != tt.network || port != tt.port {
			t.Errorf("%s: %s %d, want %s %d", tt.name, network, port, tt.network, tt.port)
		}
	}
}

// mcsServerTLS is a TLS server config with a certificate from ca for names.
func mcsServerTLS(t *testing.T, ca *pki.CA, names ...string) *tls.Config {
	t.Helper()
	cert, err := ca.Issue(names, []netip.Addr{netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	return pki.ServerTLS(cert)
}

func leaf(t *testing.T, conf *tls.Config) []*x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(conf.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return []*x509.Certificate{c}
}

// TestVerifyMCS: an MCS certificate passes only for the MCS name being
// dialed and only from the profile's CA; its IP entry is not enough.
func TestVerifyMCS(t *testing.T) {
	ca, err := pki.LoadOrCreateCA(t.TempDir(), "Z5 test")
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.LoadOrCreateCA(t.TempDir(), "Someone else")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM())
	mcs1 := leaf(t, mcsServerTLS(t, ca, "mcs1.mcs.z5.test", "lb.mcs.z5.test"))
	forged := leaf(t, mcsServerTLS(t, other, "mcs1.mcs.z5.test"))
	ipOnly := leaf(t, mcsServerTLS(t, ca, "zdial.z5.test")) // 127.0.0.1 and another name
	for _, tt := range []struct {
		name  string
		host  string
		chain []*x509.Certificate
		ok    bool
	}{
		{"named MCS, provider CA", "mcs1.mcs.z5.test", mcs1, true},
		{"name case-insensitive", "MCS1.mcs.z5.test", mcs1, true},
		{"other MCS name", "mcs2.mcs.z5.test", mcs1, false},
		{"certificate for the MCS's address only", "mcs1.mcs.z5.test", ipOnly, false},
		{"no name to check", "", mcs1, false},
		{"other CA", "mcs1.mcs.z5.test", forged, false},
		{"no certificate", "mcs1.mcs.z5.test", nil, false},
	} {
		err := verifyMCS(pool, tt.host, tt.chain)
		if (err == nil) != tt.ok {
			t.Errorf("%s: error %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

// TestTLSRefusesWrongMCS: an MCS whose certificate does not name the MCS
// (here one the provider's CA issued for another name) gets no
// registration, and the error says why.
func TestTLSRefusesWrongMCS(t *testing.T) {
	z := &zoneDNS{a: map[string][]netip.Addr{}}
	local := netip.MustParseAddr("127.0.0.1")
	for _, n := range []string{"zdial", "lb.mcs", "mcs1.mcs", "mcs2.mcs", "mcs"} {
		z.set(n+".z5.test", local)
	}
	f := newFakeProvider(t, startZoneDNS(t, z))
	mcs := listenMCSTLS(t, 0, mcsServerTLS(t, f.ca, "zdial.z5.test"))
	f.profile.Ports.SIPTLS = int(mcs.addr().Port())
	c := f.loginAlice(t, Options{})
	ctx := context.Background()
	for _, n := range []string{"mcs1.mcs.z5.test", "mcs2.mcs.z5.test", "lb.mcs.z5.test"} {
		z.set(n, mcs.addr().Addr())
	}
	c.FlushDNS()
	ph, err := c.Connect(ctx, PhoneOptions{})
	if err == nil {
		ph.Close()
		t.Fatal("registered with an MCS whose certificate names another host")
	}
	if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("error does not say the certificate was refused: %v", err)
	}
	if n := mcs.registers.Load(); n != 0 {
		t.Errorf("%d REGISTERs reached the wrong MCS", n)
	}
}
