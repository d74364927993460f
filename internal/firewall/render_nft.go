package firewall

import (
	"bytes"
	"fmt"

	"github.com/z5vrs/z5/internal/config"
)

// nftTable is the table the nft ruleset owns; it touches no other table.
const nftTable = "z5_egress"

// renderNft writes a complete nftables ruleset for `nft -f`: an egress
// policy that drops everything leaving the host except loopback, replies
// on established connections, and the Z5 rules, one accept each.
func renderNft(b *bytes.Buffer, c *config.Config, rules []Rule) {
	_, v6 := splitFamilies(rules)
	fmt.Fprintln(b, "#!/usr/sbin/nft -f")
	fmt.Fprintf(b, "# %s: outbound rules for the Z5 client, generated from %s.\n", label(c.Provider.Name, 60), source(c))
	fmt.Fprintln(b, "# An egress policy for a host or VLAN that runs only Z5: everything else")
	fmt.Fprintln(b, "# leaving it is dropped. On a shared host, copy the accept rules into your")
	fmt.Fprintln(b, "# own output chain instead. No inbound rule is needed: replies and incoming")
	fmt.Fprintln(b, "# calls ride connections the client opened.")
	fmt.Fprintln(b, "# Load with: nft -f FILE (replaces only the table below).")
	fmt.Fprintln(b)
	// Declaring then deleting the table makes the file reloadable: the
	// declaration creates it if absent, so the delete never fails.
	fmt.Fprintf(b, "table inet %s\n", nftTable)
	fmt.Fprintf(b, "delete table inet %s\n", nftTable)
	fmt.Fprintln(b)
	fmt.Fprintf(b, "table inet %s {\n", nftTable)
	fmt.Fprintln(b, "\tchain output {")
	fmt.Fprintln(b, "\t\ttype filter hook output priority 0; policy drop;")
	fmt.Fprintln(b, "\t\tct state established,related accept")
	fmt.Fprintln(b, "\t\toif lo accept")
	if len(v6) > 0 {
		// IPv6 needs neighbour discovery before any unicast packet leaves.
		fmt.Fprintln(b, "\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept")
	}
	for _, r := range rules {
		family := "ip"
		if !r.Dest.Is4() {
			family = "ip6"
		}
		fmt.Fprintf(b, "\t\t%s daddr %s %s dport %s accept comment \"%s\"\n",
			family, r.Dest, r.Proto, r.Ports, ruleComment(r))
	}
	fmt.Fprintln(b, "\t}")
	fmt.Fprintln(b, "}")
}
