package firewall

import (
	"bytes"
	"fmt"

	"github.com/z5vrs/z5/internal/config"
)

// renderPF writes a pf.conf fragment: one `pass out quick` per rule, which
// keeps state by default so replies come back without an inbound rule.
func renderPF(b *bytes.Buffer, c *config.Config, rules []Rule) {
	fmt.Fprintf(b, "# %s: outbound rules for the Z5 client, generated from %s.\n", label(c.Provider.Name, 60), source(c))
	fmt.Fprintln(b, "# A pf.conf fragment: include it before your own `block out` rule. pf keeps")
	fmt.Fprintln(b, "# state for these rules, so replies and incoming calls on the connections")
	fmt.Fprintln(b, "# the client opened need no inbound rule.")
	for i, r := range rules {
		if i == 0 || r.Group != rules[i-1].Group {
			fmt.Fprintln(b)
			fmt.Fprintf(b, "# Step %d: %s\n", r.Step, r.Group)
		}
		family := "inet"
		if !r.Dest.Is4() {
			family = "inet6"
		}
		fmt.Fprintf(b, "pass out quick %s proto %s to %s port %s # %s\n",
			family, r.Proto, r.Dest, pfPorts(r.Ports), ruleComment(r))
	}
}

// pfPorts writes a range the pf way: "10000:65535" is inclusive.
func pfPorts(p config.PortRange) string {
	if p.Min == p.Max {
		return fmt.Sprint(p.Min)
	}
	return fmt.Sprintf("%d:%d", p.Min, p.Max)
}
