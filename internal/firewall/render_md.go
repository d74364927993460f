package firewall

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/egress"
)

// renderMarkdown regenerates the seed document for this deployment: what
// the client does at each of the five steps and what that requires of the
// customer's firewall, followed by the formal list.
func renderMarkdown(b *bytes.Buffer, c *config.Config, rules []Rule) {
	provider := label(c.Provider.Name, 60)
	byGroup := map[string][]Rule{}
	for _, r := range rules {
		byGroup[r.Group] = append(byGroup[r.Group], r)
	}

	fmt.Fprintf(b, "# %s: network requirements for the Z5 client\n\n", provider)
	para(b, "Generated from the deployment config %s by `z5d firewall --format md`.", source(c))
	para(b, "The Z5 client reaches the provider in five steps. Every connection below is "+
		"opened by the client, so only *outbound* rules are needed: replies, and incoming "+
		"calls, come back over connections the client opened, which a stateful firewall "+
		"lets in without an inbound rule.")

	fmt.Fprint(b, "## Step 1: DNS resolution\n\n")
	para(b, "The client resolves %s directly against the %s nameservers.",
		quotedList(resolvedNames(c)), provider)
	naming := byGroup[egress.GroupNaming]
	if req := requirement(naming); req != "" {
		para(b, "This requires %s to be allowed through the customer's DNS servers and/or "+
			"firewall to reach the %s nameservers:", req, provider)
		for _, site := range sitesOf(naming) {
			fmt.Fprintf(b, "- site %s: %s\n", label(site, 60), strings.Join(destsOf(naming, site), ", "))
		}
		fmt.Fprintln(b)
		para(b, "%s", sourcePortNote(naming))
	} else {
		para(b, "%s", noRules)
	}

	fmt.Fprint(b, "## Step 2: login and number selection (ZDial)\n\n")
	para(b, "The client first authenticates to the ZDial server (%s) over HTTPS. If the "+
		"customer profile holds more than one phone number, the client also selects the "+
		"one to use here.", c.Names.ZDial)
	stepRequires(b, byGroup[egress.GroupZDial])

	fmt.Fprint(b, "## Step 3: license and address book (MCS)\n\n")
	para(b, "From here on everything goes through the MCS, the provider's carrier server: "+
		"address book, SIP signalling and media. The client queries the MCS over HTTPS to "+
		"obtain a license for its SIP stack and to download the phone's address book.")
	stepRequires(b, byGroup[egress.GroupMCS])

	sip := byGroup[egress.GroupSIP]
	fmt.Fprint(b, "## Step 4: SIP registration and calls\n\n")
	para(b, "The client registers and authenticates with the MCS (SIP domain %s) using SIP "+
		"over a TCP connection it opens to %s. All signalling, incoming calls included, "+
		"rides that one connection.", c.Names.SIPDomain, sipPorts(sip))
	stepRequires(b, sip)

	fmt.Fprint(b, "## Step 5: media (RTP)\n\n")
	para(b, "During a call the client sends and receives audio and video as RTP and RTCP "+
		"over UDP. All media is proxied through the MCS; it never flows directly between "+
		"the parties.")
	stepRequires(b, byGroup[egress.GroupRTP])

	fmt.Fprint(b, "## Formal list\n\n")
	para(b, "Here is the formal list of ports and IP addresses that need to be permitted:")
	fmt.Fprintln(b, "```")
	renderSeed(b, rules)
	fmt.Fprintln(b, "```")
}

const noRules = "This deployment has no node for this step, so it needs no rule."

// para writes one paragraph wrapped at 78 columns and a blank line after it.
func para(b *bytes.Buffer, format string, args ...any) {
	col := 0
	for _, w := range strings.Fields(fmt.Sprintf(format, args...)) {
		switch {
		case col == 0:
		case col+1+len(w) > 78:
			b.WriteByte('\n')
			col = 0
		default:
			b.WriteByte(' ')
			col++
		}
		b.WriteString(w)
		col += len(w)
	}
	b.WriteString("\n\n")
}

// sipPorts says where the SIP connection goes: "port 5060", or with SIP
// over TLS on, "port 5061 with SIP over TLS (standard SIP devices may
// use port 5060 without it)": a Z5 client then always uses TLS.
func sipPorts(rules []Rule) string {
	var plain, tls []string
	for _, r := range rules {
		p := r.Ports.String()
		if r.Purpose == purposeSIPTLS {
			if !slices.Contains(tls, p) {
				tls = append(tls, p)
			}
		} else if !slices.Contains(plain, p) {
			plain = append(plain, p)
		}
	}
	s := "its SIP port"
	if len(plain) > 0 {
		s = "port " + strings.Join(plain, " and ")
	}
	if len(tls) > 0 {
		s = "port " + strings.Join(tls, " and ") + " with SIP over TLS"
		if len(plain) > 0 {
			s += " (standard SIP devices may use port " + strings.Join(plain, " and ") + " without it)"
		}
	}
	return s
}

// stepRequires writes a step's "This requires ..." paragraph and its
// source-port note.
func stepRequires(b *bytes.Buffer, rules []Rule) {
	req := requirement(rules)
	if req == "" {
		para(b, "%s", noRules)
		return
	}
	para(b, "This requires %s to %s.", req, strings.Join(destsOf(rules, ""), ", "))
	para(b, "%s", sourcePortNote(rules))
}

// requirement describes the protocols and destination ports of rules the
// seed's way: "UDP and TCP destination port 53 [DNS]".
func requirement(rules []Rule) string {
	type key struct {
		ports config.PortRange
		tag   string
	}
	var order []key
	protos := map[key][]string{}
	for _, r := range rules {
		k := key{r.Ports, shortPurpose(r.Purpose)}
		if _, ok := protos[k]; !ok {
			order = append(order, k)
		}
		if p := strings.ToUpper(r.Proto); !slices.Contains(protos[k], p) {
			protos[k] = append(protos[k], p)
		}
	}
	var parts []string
	for _, k := range order {
		noun := "port"
		if k.ports.Min != k.ports.Max {
			noun = "ports"
		}
		parts = append(parts, fmt.Sprintf("%s destination %s %s [%s]",
			strings.Join(protos[k], " and "), noun, k.ports, label(k.tag, 40)))
	}
	return strings.Join(parts, " and ")
}

// sourcePortNote is the seed's remark on source ports for rules' protocols.
func sourcePortNote(rules []Rule) string {
	var protos []string
	for _, r := range rules {
		if p := strings.ToUpper(r.Proto); !slices.Contains(protos, p) {
			protos = append(protos, p)
		}
	}
	if len(rules) > 0 && rules[0].Group == egress.GroupRTP {
		return "UDP source ports are chosen by the client and may be any port: the rules " +
			"restrict only the destination. The MCS sends media back to the address and " +
			"port the client sends from, which a stateful firewall lets in."
	}
	return fmt.Sprintf("%s source ports are ephemeral, and depend on the operating system Z5 runs on.",
		strings.Join(protos, " and "))
}

// resolvedNames are the names the client resolves in step 1, in the seed's
// order: ZDial, the MCS load-balancing name, each MCS node's own names, and
// the SIP domain.
func resolvedNames(c *config.Config) []string {
	var names []string
	add := func(n string) {
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	add(c.Names.ZDial)
	add(c.Names.LBMCS)
	for _, n := range c.NodesWithRole(config.RoleMCS) {
		for _, h := range n.Hosts {
			add(h)
		}
	}
	add(c.Names.SIPDomain)
	return names
}

// quotedList writes "a", "b" and "c".
func quotedList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = `"` + label(s, 253) + `"`
	}
	switch len(q) {
	case 0:
		return "its names"
	case 1:
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}

// sitesOf lists the sites of rules in order of first appearance.
func sitesOf(rules []Rule) []string {
	var sites []string
	for _, r := range rules {
		if !slices.Contains(sites, r.Site) {
			sites = append(sites, r.Site)
		}
	}
	return sites
}

// destsOf lists the distinct destinations of rules (of one site unless site
// is empty) in order.
func destsOf(rules []Rule, site string) []string {
	var out []string
	for _, r := range rules {
		if site != "" && r.Site != site {
			continue
		}
		if d := r.Dest.String(); !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}
