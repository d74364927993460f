// Package profile is the provider profile: the one document a Z5 client
// needs before step 1 — which nameservers to ask, which names to resolve,
// which ports to use, which CA to trust and which keys sign licenses. The
// provider publishes it (`z5d profile`, provider.json in dev) and `z5 login
// --profile` reads it.
package profile

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/license"
	"github.com/z5vrs/z5/internal/pki"
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

// FromConfig builds the profile of a deployment.
func FromConfig(c *config.Config, caPEM []byte, keys ...ed25519.PublicKey) *Profile {
	p := &Profile{
		Version:  1,
		Provider: c.Provider.Name,
		Names: Names{
			ZDial:     c.Names.ZDial,
			LBMCS:     c.Names.LBMCS,
			SIPDomain: c.Names.SIPDomain,
		},
		Ports: Ports{
			ZDialHTTPS: c.Ports.ZDialHTTPS,
			MCSHTTPS:   c.Ports.MCSHTTPS,
			SIP:        c.Ports.SIP,
			SIPTLS:     c.Ports.SIPTLS,
			RTP:        c.Ports.RTP.String(),
		},
		CAPEM: string(caPEM),
	}
	for _, n := range c.NodesWithRole(config.RoleDNS) {
		p.Nameservers = append(p.Nameservers, net.JoinHostPort(n.Address, strconv.Itoa(c.Ports.DNS)))
	}
	for _, n := range c.NodesWithRole(config.RoleMCS) {
		p.Names.MCS = append(p.Names.MCS, n.Hosts...)
	}
	for _, k := range keys {
		p.LicenseKeys = append(p.LicenseKeys, license.EncodePublicKey(k))
	}
	return p
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
	cert, err := pki.ParseCertPEM([]byte(p.CAPEM))
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
