package firewall

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/egress"
)

// seedHeadings are the seed's group headings; RTP's carries the seed's
// reminder that media never flows peer to peer.
var seedHeadings = map[string]string{
	egress.GroupNaming: "# Naming",
	egress.GroupZDial:  "# ZDial",
	egress.GroupMCS:    "# MCS license and address-book",
	egress.GroupSIP:    "# SIP",
	egress.GroupRTP:    "# RTP (all media is proxied through the MCS)",
}

func seedHeading(group string) string {
	if h, ok := seedHeadings[group]; ok {
		return h
	}
	return "# " + label(group, 80)
}

// renderSeed writes the seed's formal list: a heading per group, a blank
// line between groups, and within a group a blank line where the protocol or
// port changes (the seed separates DNS over UDP from DNS over TCP).
func renderSeed(b *bytes.Buffer, rules []Rule) {
	for i, r := range rules {
		switch {
		case i == 0:
			fmt.Fprintln(b, seedHeading(r.Group))
		case r.Group != rules[i-1].Group:
			fmt.Fprintln(b)
			fmt.Fprintln(b, seedHeading(r.Group))
		case r.Proto != rules[i-1].Proto || r.Ports != rules[i-1].Ports:
			fmt.Fprintln(b)
		}
		// Two spaces before the address, as the seed has them.
		fmt.Fprintf(b, "outbound %s %s  %s\n", r.Ports, r.Proto, r.Dest)
	}
}

// label makes s safe inside a quoted firewall comment or a Markdown line:
// printable ASCII without quotes, backslashes or comment markers, at most
// max bytes. Node and site names come from the config, which does not
// restrict their characters.
func label(s string, max int) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case strings.ContainsRune(" -_.,:/()+@=", r):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= max {
			break
		}
	}
	out := b.String()
	if len(out) > max {
		out = out[:max]
	}
	return out
}

// source names the config a render came from, without directories so the
// output does not depend on where it was generated.
func source(c *config.Config) string {
	if c.Path == "" {
		return "(built-in config)"
	}
	if strings.HasPrefix(c.Path, "(") {
		return label(c.Path, 60)
	}
	return label(filepath.Base(c.Path), 60)
}

// ruleComment is the per-rule comment of the packet-filter formats: the
// step, its group and the node, so an admin can tell which rule a drop or
// a `z5 check` report refers to.
func ruleComment(r Rule) string {
	return label(fmt.Sprintf("z5 step %d %s: %s/%s to %s (site %s)",
		r.Step, r.Group, r.Proto, r.Ports, r.Node, r.Site), 120)
}

// shortPurpose is the protocol part of a purpose ("DNS", "HTTPS", ...).
func shortPurpose(p string) string {
	if before, _, ok := strings.Cut(p, ":"); ok {
		return before
	}
	return p
}

// splitFamilies separates IPv4 from IPv6 destinations, keeping order.
func splitFamilies(rules []Rule) (v4, v6 []Rule) {
	for _, r := range rules {
		if r.Dest.Is4() {
			v4 = append(v4, r)
		} else {
			v6 = append(v6, r)
		}
	}
	return v4, v6
}
