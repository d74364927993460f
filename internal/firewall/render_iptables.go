package firewall

import (
	"bytes"
	"fmt"
	"net/netip"

	"github.com/z5vrs/z5/internal/config"
)

// renderIptables writes an iptables-restore file (ip6tables-restore when v6)
// for the filter table: OUTPUT drops by default and accepts loopback,
// established replies and the Z5 rules of that address family.
// iptables-restore takes one family per file, so a rule of the other family
// is named in a header comment that points to the other format.
func renderIptables(b *bytes.Buffer, c *config.Config, rules []Rule, v6 bool) {
	v4rules, v6rules := splitFamilies(rules)
	tool, mine, other, otherFormat := "iptables", v4rules, v6rules, "ip6tables"
	if v6 {
		tool, mine, other, otherFormat = "ip6tables", v6rules, v4rules, "iptables"
	}
	fmt.Fprintf(b, "# %s: outbound rules for the Z5 client, generated from %s.\n", label(c.Provider.Name, 60), source(c))
	fmt.Fprintf(b, "# Load with: %s-restore FILE. It replaces the whole filter table and\n", tool)
	fmt.Fprintln(b, "# drops everything leaving the host except Z5: meant for a host or VLAN that")
	fmt.Fprintln(b, "# runs only Z5. On a shared host, copy the -A lines into your own rules.")
	fmt.Fprintln(b, "# No inbound rule is needed: replies and incoming calls ride connections the")
	fmt.Fprintln(b, "# client opened.")
	if len(other) > 0 {
		fmt.Fprintf(b, "# %d more rules have %s destinations, which %s-restore cannot load:\n",
			len(other), familyName(!v6), tool)
		fmt.Fprintf(b, "# render them with --format %s and load that file with %s-restore.\n", otherFormat, otherFormat)
		for _, r := range other {
			fmt.Fprintf(b, "#   step %d %s %s/%s to %s\n", r.Step, r.Group, r.Proto, r.Ports, r.Dest)
		}
	}
	if len(mine) == 0 {
		fmt.Fprintf(b, "# No rule has an %s destination: Z5 needs no %s egress here.\n", familyName(v6), familyName(v6))
	}
	fmt.Fprintln(b, "*filter")
	fmt.Fprintln(b, ":OUTPUT DROP [0:0]")
	fmt.Fprintln(b, "-A OUTPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
	fmt.Fprintln(b, "-A OUTPUT -o lo -j ACCEPT")
	if v6 && len(mine) > 0 {
		// IPv6 needs neighbour discovery before any unicast packet leaves.
		for _, t := range []string{"neighbour-solicitation", "neighbour-advertisement", "router-solicitation"} {
			fmt.Fprintf(b, "-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type %s -j ACCEPT\n", t)
		}
	}
	for _, r := range mine {
		fmt.Fprintf(b, "-A OUTPUT -d %s -p %s -m %s --dport %s -m comment --comment \"%s\" -j ACCEPT\n",
			netip.PrefixFrom(r.Dest, r.Dest.BitLen()), r.Proto, r.Proto, iptablesPorts(r.Ports), ruleComment(r))
	}
	fmt.Fprintln(b, "COMMIT")
}

// iptablesPorts writes a range the iptables way, "10000:65535".
func iptablesPorts(p config.PortRange) string {
	if p.Min == p.Max {
		return fmt.Sprint(p.Min)
	}
	return fmt.Sprintf("%d:%d", p.Min, p.Max)
}

func familyName(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}
