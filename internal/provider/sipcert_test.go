package provider

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/pki"
)

// TestSIPCertificate: SIP over TLS serves the operator's certificate when
// [sip] tls_cert and tls_key name one (relative to the data dir), else the
// one from the deployment CA; a missing file is an error naming the keys.
func TestSIPCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.LoadOrCreateCA(t.TempDir(), "Z5 test")
	if err != nil {
		t.Fatal(err)
	}
	fromCA, err := ca.Issue([]string{"mcs1.mcs.z5.test"}, []netip.Addr{netip.MustParseAddr("198.18.1.1")})
	if err != nil {
		t.Fatal(err)
	}
	own, err := ca.Issue([]string{"sip.example.test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	writeSIPCert(t, dir, own)
	cfg := &config.Config{DataDir: dir}
	got, err := sipCertificate(cfg, fromCA)
	if err != nil || !sameLeaf(got, fromCA) {
		t.Fatalf("without tls_cert: %v, want the CA's certificate", err)
	}
	cfg.SIP.TLSCert, cfg.SIP.TLSKey = "sip.pem", filepath.Join(dir, "sip-key.pem")
	got, err = sipCertificate(cfg, fromCA)
	if err != nil {
		t.Fatal(err)
	}
	if !sameLeaf(got, own) {
		t.Fatal("tls_cert was not served")
	}
	cfg.SIP.TLSCert = "missing.pem"
	if _, err := sipCertificate(cfg, fromCA); err == nil || !strings.Contains(err.Error(), "sip.tls_cert") {
		t.Fatalf("missing file: %v", err)
	}
}

func sameLeaf(a, b tls.Certificate) bool {
	return len(a.Certificate) > 0 && len(b.Certificate) > 0 && string(a.Certificate[0]) == string(b.Certificate[0])
}

// writeSIPCert writes c as sip.pem and its key as sip-key.pem in dir, as
// an operator's own certificate for [sip] tls_cert and tls_key.
func writeSIPCert(t *testing.T, dir string, c tls.Certificate) {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]*pem.Block{"sip.pem": {Type: "CERTIFICATE", Bytes: c.Certificate[0]}, "sip-key.pem": {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
