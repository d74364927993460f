package provider

import (
	"net/netip"
	"runtime/debug"
	"slices"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/sipserver"
)

// SIPConfig is the registrar and proxy's part of deployment c for one
// node: the [sip] section, the node's names and address, the other MCS
// nodes as peers, and every MCS node allowlisted against bans. TLS is
// left to the caller (it needs the node's certificate).
func SIPConfig(c *config.Config, node config.Node) sipserver.Config {
	sip := c.SIP
	sip.DigestAlgorithms = slices.Clone(sip.DigestAlgorithms)
	allow := sip.BanAllowPrefixes()
	var peers map[string]netip.AddrPort
	for _, n := range c.NodesWithRole(config.RoleMCS) {
		a := n.Addr()
		if a.IsValid() && !a.IsUnspecified() {
			allow = append(allow, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		}
		if n.Name == node.Name || !a.IsValid() {
			continue
		}
		if peers == nil {
			peers = map[string]netip.AddrPort{}
		}
		peers[n.Name] = netip.AddrPortFrom(a.Unmap(), uint16(c.Ports.SIP))
	}
	return sipserver.Config{
		SIP:       sip,
		Node:      node.Name,
		Domain:    c.Names.SIPDomain,
		Hosts:     slices.Clone(node.Hosts),
		Advertise: node.Addr(),
		Allow:     allow,
		Peers:     peers,
		Version:   buildVersion(),

		ACD:               c.ACD,
		Trunk:             c.Trunk,
		RelayAccessNumber: c.RelayAccessNumber,
		// Every number needs a registered location to call anyone but 911.
		RequireLocation: true,
	}
}

// buildVersion is the module version the binary was built from, "dev"
// for a build from a work tree.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
