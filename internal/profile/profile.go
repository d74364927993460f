// Package profile is provider.json, what a client needs before step 1 —
// not the deployment config (internal/config) nor the node that serves it
// (internal/provider). It is the one document a Z5 client reads first:
// which nameservers to ask, which names to resolve,
// which ports to use, which CA to trust and which keys sign licenses. The
// provider publishes it (`z5d profile`, provider.json in dev) and `z5 login
// --profile` reads it. internal/provider builds it from the deployment;
// this package links no server code, so the client can read it.
package profile

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/z5vrs/z5/internal/license"
)

// Profile is provider.json.
type Profile struct {
	Version  int    `json:"version"`
	Provider string `json:"provider"`
	// Nameservers are "ip:port", in the order the client tries them.
	Nameservers []string `json:"nameservers"`
	Names       Names    `json:"names"`
	Ports       Ports    `json:"ports"`
	CAPEM       string   `json:"ca_pem"`
	// LicenseKeys are base64 Ed25519 public keys; a license signed by any
	// of them is accepted.
	LicenseKeys []string `json:"license_keys"`
}

// Names are the DNS names of step 1.
type Names struct {
	ZDial     string   `json:"zdial"`
	LBMCS     string   `json:"lb_mcs"`
	MCS       []string `json:"mcs"` // mcs1, mcs2, ...: failover order
	SIPDomain string   `json:"sip_domain"`
}

// Ports the client connects to.
type Ports struct {
	ZDialHTTPS int    `json:"zdial_https"`
	MCSHTTPS   int    `json:"mcs_https"`
	SIP        int    `json:"sip"`
	SIPTLS     int    `json:"sip_tls,omitempty"`
	RTP        string `json:"rtp"`
}

// Load reads and validates a profile file.
func Load(path string) (*Profile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read provider profile: %w", err)
	}
	var p Profile
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("provider profile %s: %w", path, err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("provider profile %s: %w", path, err)
	}
	return &p, nil
}

// Save writes the profile (it holds no secret: mode 0644).
func (p *Profile) Save(path string) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write provider profile: %w", err)
	}
	return os.Rename(tmp, path)
}

// Validate checks that every field a client relies on is usable.
func (p *Profile) Validate() error {
	var errs []error
	if p.Version != 1 {
		errs = append(errs, fmt.Errorf("version %d not supported (want 1)", p.Version))
	}
	if len(p.Nameservers) == 0 {
		errs = append(errs, errors.New("no nameservers"))
	}
	for _, ns := range p.Nameservers {
		if _, err := netip.ParseAddrPort(ns); err != nil {
			errs = append(errs, fmt.Errorf("nameserver %q: want ip:port", ns))
		}
	}
	if p.Names.ZDial == "" || p.Names.SIPDomain == "" || len(p.Names.MCS) == 0 {
		errs = append(errs, errors.New("names: zdial, sip_domain and mcs are required"))
	}
	if _, err := p.CAPool(); err != nil {
		errs = append(errs, err)
	}
	if _, err := p.PublicKeys(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// CAPool is the trust anchor for every HTTPS and SIP-TLS connection.
func (p *Profile) CAPool() (*x509.CertPool, error) {
	blk, _ := pem.Decode([]byte(p.CAPEM))
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("ca_pem: no PEM certificate")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("ca_pem: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool, nil
}

// PublicKeys decodes the license keys.
func (p *Profile) PublicKeys() ([]ed25519.PublicKey, error) {
	if len(p.LicenseKeys) == 0 {
		return nil, errors.New("license_keys: none")
	}
	var out []ed25519.PublicKey
	for _, s := range p.LicenseKeys {
		k, err := license.DecodePublicKey(s)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}
