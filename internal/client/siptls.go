package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/z5vrs/z5/internal/profile"
)

// sipTransport is how the phone reaches every MCS: over TLS on the
// profile's TLS port whenever the deployment turns SIP over TLS on (RFC
// 9248 requires TLS; ZDial's port is the plain one then), else over TCP on
// the port ZDial handed out, or the profile's. network is sipgo's name for
// the transport ("tls" or "tcp").
func sipTransport(ports profile.Ports, credsPort int) (network string, port int) {
	if ports.SIPTLS != 0 {
		return "tls", ports.SIPTLS
	}
	if credsPort != 0 {
		return "tcp", credsPort
	}
	return "tcp", ports.SIP
}

// mcsTLSConfig verifies every MCS against the profile's CA, under the MCS
// name the phone is dialing (name, read at each handshake): the transport
// dials an IP address, so the standard check would match only the
// certificate's IP entries, never the name the profile gave.
func mcsTLSConfig(pool *x509.CertPool, name func() string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The standard check is replaced, not skipped: VerifyConnection
		// runs the same verification against the name instead of the IP.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyMCS(pool, name(), cs.PeerCertificates)
		},
	}
}

// verifyMCS checks a peer's chain against pool for host.
func verifyMCS(pool *x509.CertPool, host string, chain []*x509.Certificate) error {
	if host == "" {
		return errors.New("MCS certificate: no MCS name to verify it against")
	}
	if len(chain) == 0 {
		return errors.New("MCS certificate: none presented")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, DNSName: host}); err != nil {
		return fmt.Errorf("MCS certificate for %s: %w", host, err)
	}
	return nil
}
