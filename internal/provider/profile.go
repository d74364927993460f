package provider

import (
	"crypto/ed25519"
	"net"
	"slices"
	"strconv"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/license"
	"github.com/z5vrs/z5/internal/profile"
	"github.com/z5vrs/z5/internal/rue"
)

// NewProfile builds the provider profile of deployment c, trusting the CA
// in caPEM and the license keys. It lives here, not in package profile, so
// the client reads profiles without linking the deployment config.
func NewProfile(c *config.Config, caPEM []byte, keys ...ed25519.PublicKey) *profile.Profile {
	p := &profile.Profile{
		Version:  1,
		Provider: c.Provider.Name,
		Names: profile.Names{
			ZDial:     c.Names.ZDial,
			LBMCS:     c.Names.LBMCS,
			SIPDomain: c.Names.SIPDomain,
		},
		Ports: profile.Ports{
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

// NewRUE is the RFC 9248 provider configuration of profile p, carrying p
// as the "z5" extension so a Z5 client can start from either document.
// With SIP over TLS on, each proxy is listed first as a sips: URI on the
// TLS port (RFC 9248 asks for TLS), then over TCP for devices without it.
func NewRUE(p *profile.Profile) *rue.Config {
	r := rue.ForProfile(p)
	r.OutboundProxies = append(sipsProxies(p), r.OutboundProxies...)
	r.Z5 = p
	return r
}

// sipsProxies are the outbound proxies of profile p over TLS, in the
// order rue.ForProfile lists them over TCP; none with TLS off.
func sipsProxies(p *profile.Profile) []string {
	if p.Ports.SIPTLS == 0 {
		return nil
	}
	var out []string
	for _, h := range append([]string{p.Names.LBMCS}, p.Names.MCS...) {
		px := "sips:" + net.JoinHostPort(h, strconv.Itoa(p.Ports.SIPTLS)) + ";lr"
		if !slices.Contains(out, px) {
			out = append(out, px)
		}
	}
	return out
}
