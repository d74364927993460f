package provider

import (
	"slices"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/mcsapi"
	"github.com/z5vrs/z5/internal/membership"
	"github.com/z5vrs/z5/internal/relay"
	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/zdial"
)

// The role configs below are taken from a deployment config whose
// defaults internal/config has already filled; the roles only check them.

// ZDialConfig is ZDial's part of deployment c: names, the SIP port and
// realm, and the [zdial] limits. MCS host names are every MCS node's own
// names in file order (site A first), the client's failover order. An MCS
// token lives as long as the login session it is made from.
func ZDialConfig(c *config.Config) zdial.Config {
	var hosts []string
	for _, n := range c.NodesWithRole(config.RoleMCS) {
		for _, h := range n.Hosts {
			if !slices.Contains(hosts, h) {
				hosts = append(hosts, h)
			}
		}
	}
	return zdial.Config{
		SIPDomain:          c.Names.SIPDomain,
		LBMCS:              c.Names.LBMCS,
		MCSHosts:           hosts,
		SIPPort:            c.Ports.SIP,
		Realm:              c.SIP.Realm,
		SessionTTL:         c.ZDial.SessionTTL,
		MaxFailures:        c.ZDial.MaxFailures,
		AccountMaxFailures: c.ZDial.AccountMaxFailures,
		SourceMaxFailures:  c.ZDial.SourceMaxFailures,
		Lockout:            c.ZDial.Lockout,
		PerIPRate:          c.ZDial.PerIPRate,
		PerIPBurst:         c.ZDial.PerIPBurst,
		MCSTokenTTL:        c.ZDial.SessionTTL,
		RateLimit:          float64(c.ZDial.RateLimit),
		RateBurst:          c.ZDial.RateBurst,
	}
}

// MCSAPIConfig is the MCS API's part of deployment c, its [mcs] section;
// the issuer is the SIP domain, the name the whole deployment answers to.
// The RFC 9248 document (RUE) needs the CA and license key, so the Node
// adds it.
func MCSAPIConfig(c *config.Config) mcsapi.Config {
	return mcsapi.Config{
		LicenseTTL:  c.MCS.LicenseTTL,
		Features:    slices.Clone(c.MCS.Features),
		Issuer:      c.Names.SIPDomain,
		MaxContacts: c.MCS.MaxContacts,
		MaxBody:     int64(c.MCS.MaxBody),
		Provider:    c.Provider.Name,
		RateLimit:   float64(c.MCS.RateLimit),
		RateBurst:   c.MCS.RateBurst,

		MaxTrackedSources: c.MCS.MaxTrackedSources,
	}
}

// RelayConfig is the media relay of node in deployment c: its addresses,
// ports.rtp and the [relay] section.
func RelayConfig(c *config.Config, node config.Node) relay.Config {
	return relay.Config{
		Bind:                node.BindAddr(),
		Advertise:           node.Addr(),
		Ports:               c.Ports.RTP,
		MediaTimeout:        c.Relay.MediaTimeout,
		ProbeRate:           c.Relay.ProbeRate,
		MaxStreams:          c.Relay.MaxStreams,
		MaxPortsPerCustomer: c.Relay.MaxPortsPerCustomer,
		MaxPortsPerSource:   c.Relay.MaxPortsPerSource,
		CustomerNetworks:    c.Relay.CustomerPrefixes(),
		ProviderNetworks:    c.RelayProviderPrefixes(),
		RequireSRTP:         c.Relay.RequireSRTP,
		KernelForwarding:    c.Relay.KernelForwarding == "auto",
	}
}

// MembershipConfig is node's view of the node table in deployment c: an
// MCS node heartbeats as itself, any other node only reads.
func MembershipConfig(c *config.Config, node config.Node) membership.Config {
	m := membership.Config{Heartbeat: c.Health.Heartbeat, DeadAfter: c.Health.DeadAfter}
	if node.Has(config.RoleMCS) {
		m.Self = store.NodeStatus{Name: node.Name, Site: node.Site, Address: node.Address}
	}
	return m
}
