package pki

import (
	"crypto/x509"
	"net/netip"
	"testing"
)

func TestCAPersistsAndIssues(t *testing.T) {
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(dir, "Test")
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreateCA(dir, "Test")
	if err != nil || !again.Cert.Equal(ca.Cert) {
		t.Fatalf("reload: %v", err)
	}
	cert, err := again.Issue([]string{"zdial.z5.test"}, []netip.Addr{netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	opts := x509.VerifyOptions{Roots: ca.Pool(), DNSName: "zdial.z5.test"}
	if _, err := cert.Leaf.Verify(opts); err != nil {
		t.Fatalf("verify: %v", err)
	}
	opts.DNSName = "evil.example"
	if _, err := cert.Leaf.Verify(opts); err == nil {
		t.Fatal("verified for a name it does not carry")
	}
}
