// Package firewall derives the outbound rules a customer's network admin must
// open for Z5 from the deployment config, and renders them for the seed's
// formal list, nftables, iptables, pf, CSV, JSON or a full Markdown document.
//
// Rules come from the same Config the servers bind with, so the list a
// customer receives cannot drift from what the provider actually runs: a node
// added to deploy/two-sites.toml appears in the rules on the next render.
// Every rule is outbound; replies and incoming calls ride connections the
// client opened, so a stateful firewall needs no inbound rule at all.
package firewall

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/egress"
	"github.com/z5vrs/z5/internal/portrange"
)

// Rule is one outbound permission: Proto to Dest on Ports, from any source
// port of the customer's network.
type Rule struct {
	Step    int    // the seed's step, 1-5
	Group   string // an egress.Group* constant
	Proto   string // "udp" or "tcp"
	Ports   config.PortRange
	Dest    netip.Addr
	Purpose string // what the client does over it, one short phrase
	Site    string // site of the node that owns Dest
	Node    string // node that owns Dest
}

// Purposes, shared by every renderer.
const (
	purposeDNS    = "DNS: resolve the provider's names"
	purposeZDial  = "HTTPS: login and number selection"
	purposeMCS    = "HTTPS: SIP license and address book"
	purposeSIP    = "SIP: registration and calls over TCP"
	purposeSIPTLS = "SIP over TLS: registration and calls"
	purposeRTP    = "RTP: call media and RTCP through the MCS relay"
)

// Rules returns the outbound rules of deployment c in the seed's order:
// nameservers over UDP then TCP, ZDial, MCS HTTPS, SIP (then SIP over TLS
// when enabled), RTP. Within a block, nodes appear site by site in file
// order. A rule identical to an earlier one of the same group (two nodes
// sharing an address) is listed once.
func Rules(c *config.Config) []Rule {
	if c == nil {
		return nil
	}
	var out []Rule
	seen := map[string]bool{}
	add := func(step int, group, proto string, ports config.PortRange, role, purpose string) {
		for _, n := range c.NodesWithRole(role) {
			// An IPv4-mapped IPv6 address reaches an IPv4 host: name it as
			// IPv4 so the rule lands in the family the packets use.
			dest := n.Addr().Unmap()
			key := fmt.Sprintf("%s|%s|%s|%s", group, proto, ports, dest)
			if seen[key] {
				continue
			}
			seen[key] = true
			out = append(out, Rule{
				Step: step, Group: group, Proto: proto, Ports: ports, Dest: dest,
				Purpose: purpose, Site: n.Site, Node: n.Name,
			})
		}
	}
	p := c.Ports
	add(1, egress.GroupNaming, "udp", portrange.Single(p.DNS), config.RoleDNS, purposeDNS)
	// DNS needs TCP as well as UDP: answers larger than the UDP size limit
	// are truncated and retried over TCP.
	add(1, egress.GroupNaming, "tcp", portrange.Single(p.DNS), config.RoleDNS, purposeDNS)
	add(2, egress.GroupZDial, "tcp", portrange.Single(p.ZDialHTTPS), config.RoleZDial, purposeZDial)
	add(3, egress.GroupMCS, "tcp", portrange.Single(p.MCSHTTPS), config.RoleMCS, purposeMCS)
	add(4, egress.GroupSIP, "tcp", portrange.Single(p.SIP), config.RoleMCS, purposeSIP)
	if p.SIPTLS != 0 {
		add(4, egress.GroupSIP, "tcp", portrange.Single(p.SIPTLS), config.RoleMCS, purposeSIPTLS)
	}
	add(5, egress.GroupRTP, "udp", p.RTP, config.RoleMCS, purposeRTP)
	return out
}

// Formats are the names Render accepts.
var Formats = []string{"seed", "nft", "iptables", "ip6tables", "pf", "csv", "json", "md"}

// Render writes rules in format. c supplies the context the self-describing
// formats (nft, iptables, pf, md) print: provider, config file, names, ports.
// Output is built whole before it is written, so a failure writes nothing.
func Render(w io.Writer, c *config.Config, rules []Rule, format string) error {
	if c == nil {
		return fmt.Errorf("render %s: no deployment config", format)
	}
	var b bytes.Buffer
	switch format {
	case "seed":
		renderSeed(&b, rules)
	case "nft":
		renderNft(&b, c, rules)
	case "iptables":
		renderIptables(&b, c, rules, false)
	case "ip6tables":
		renderIptables(&b, c, rules, true)
	case "pf":
		renderPF(&b, c, rules)
	case "csv":
		if err := renderCSV(&b, rules); err != nil {
			return err
		}
	case "json":
		if err := renderJSON(&b, rules); err != nil {
			return err
		}
	case "md":
		renderMarkdown(&b, c, rules)
	default:
		return fmt.Errorf("%w %q: want one of %s", ErrUnknownFormat, format, strings.Join(Formats, ", "))
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write %s rules: %w", format, err)
	}
	return nil
}
