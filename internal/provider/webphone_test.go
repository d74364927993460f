package provider

import (
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"testing"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/pki"
)

// TestWebPhoneSIPRoots: the tabs verify the node's SIP certificate against
// the deployment CA; with [sip] tls_cert the operator's own certificate
// (issued elsewhere) is trusted too, and nothing else from its issuer.
func TestWebPhoneSIPRoots(t *testing.T) {
	dir := t.TempDir()
	deployment, err := pki.LoadOrCreateCA(t.TempDir(), "Z5 test")
	if err != nil {
		t.Fatal(err)
	}
	operator, err := pki.LoadOrCreateCA(t.TempDir(), "Operator's CA")
	if err != nil {
		t.Fatal(err)
	}
	issue := func(ca *pki.CA) tls.Certificate {
		c, err := ca.Issue([]string{"mcs1.mcs.z5.test"}, []netip.Addr{netip.MustParseAddr("198.18.1.1")})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ownPair := issue(operator)
	fromCA, own, otherFromOperator := issue(deployment).Leaf, ownPair.Leaf, issue(operator).Leaf
	verifies := func(pool *x509.CertPool, c *x509.Certificate) bool {
		_, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: "mcs1.mcs.z5.test"})
		return err == nil
	}
	n := &Node{cfg: &config.Config{DataDir: dir}, ca: deployment}
	n.cfg.Ports.SIPTLS = 5061
	pool, err := n.webPhoneSIPRoots()
	if err != nil {
		t.Fatal(err)
	}
	if !verifies(pool, fromCA) || verifies(pool, own) {
		t.Errorf("without tls_cert: the CA's certificate verifies %t, the operator's %t; want true, false", verifies(pool, fromCA), verifies(pool, own))
	}

	// The operator's certificate and key in the data dir.
	writeSIPCert(t, dir, ownPair)
	n.cfg.SIP.TLSCert, n.cfg.SIP.TLSKey = "sip.pem", "sip-key.pem"
	if pool, err = n.webPhoneSIPRoots(); err != nil {
		t.Fatal(err)
	}
	if !verifies(pool, fromCA) || !verifies(pool, own) || verifies(pool, otherFromOperator) {
		t.Errorf("with tls_cert: the CA's %t, the operator's %t, another of the operator's issuer %t; want true, true, false",
			verifies(pool, fromCA), verifies(pool, own), verifies(pool, otherFromOperator))
	}
}
