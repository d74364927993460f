package netcheck

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/z5vrs/z5/internal/egress"
	"github.com/z5vrs/z5/internal/portrange"
	"github.com/z5vrs/z5/internal/profile"
)

// Checks name what a rule's probe does; they follow the profile's port
// names.
const (
	CheckDNS    = "dns"
	CheckZDial  = "zdial_https"
	CheckMCS    = "mcs_https"
	CheckSIP    = "sip"
	CheckSIPTLS = "sip_tls"
	CheckRTP    = "rtp"
)

// Rule is one outbound rule of the provider's list, derived from the
// profile the way internal/firewall derives it from the deployment: the
// same steps, groups, order and seed rendering, so what `z5 check` names
// is a line of the list the admin was given.
type Rule struct {
	Step  int             `json:"step"`
	Group string          `json:"group"` // an egress.Group* constant
	Check string          `json:"check"` // a Check* constant
	Proto string          `json:"proto"`
	Ports portrange.Range `json:"ports"`
	// Dest is the address to allow; invalid when Name did not resolve.
	Dest netip.Addr `json:"destination"`
	// Name is the DNS name that led to Dest, or the nameserver's address.
	Name string `json:"name"`
	// Required: the client cannot work without it. Where the provider
	// serves SIP over TLS the Z5 client signals only over TLS, so that
	// rule is required too.
	Required bool `json:"required"`
}

// String is the rule as the seed's formal list writes it:
// "outbound 53 udp  208.94.16.61".
func (r Rule) String() string {
	dest := r.Dest.String()
	if !r.Dest.IsValid() {
		dest = "<" + r.Name + ": not resolved>"
	}
	return fmt.Sprintf("outbound %s %s  %s", r.Ports, r.Proto, dest)
}

// Nft is the rule as one nft command for the table `z5d firewall --format
// nft` creates (inet z5_egress, chain output).
func (r Rule) Nft() string {
	if !r.Dest.IsValid() {
		return ""
	}
	family := "ip"
	if !r.Dest.Is4() {
		family = "ip6"
	}
	return fmt.Sprintf(`nft add rule inet z5_egress output %s daddr %s %s dport %s accept comment "z5 step %d %s"`,
		family, r.Dest, r.Proto, r.Ports, r.Step, r.Group)
}

// Label says what the rule is for, in a few words: "DNS", "ZDial
// zdial.champvrs.com", "SIP mcs1.mcs.csdvrs.com".
func (r Rule) Label() string {
	switch r.Check {
	case CheckDNS:
		return "DNS"
	case CheckZDial:
		return "ZDial " + r.Name
	case CheckMCS:
		return "MCS HTTPS " + r.Name
	case CheckSIP:
		return "SIP " + r.Name
	case CheckSIPTLS:
		return "SIP TLS " + r.Name
	case CheckRTP:
		return "RTP " + r.Name
	}
	return r.Check
}

// NameserverRules are step 1's rules: every nameserver of the profile over
// UDP, then over TCP, as the seed lists them.
func NameserverRules(p *profile.Profile) ([]Rule, error) {
	var out []Rule
	for _, proto := range []string{"udp", "tcp"} {
		for _, ns := range p.Nameservers {
			ap, err := netip.ParseAddrPort(ns)
			if err != nil {
				return nil, fmt.Errorf("profile nameserver %q: %w", ns, err)
			}
			port := int(ap.Port())
			out = append(out, Rule{Step: 1, Group: egress.GroupNaming, Check: CheckDNS, Proto: proto,
				Ports: portrange.Single(port), Dest: ap.Addr().Unmap(), Name: ap.Addr().Unmap().String(),
				Required: true})
		}
	}
	return dedup(out), nil
}

// Rules is the whole list for profile p, steps 2-5 built from the
// addresses the names resolved to (addrs: name -> addresses). A name
// without addresses yields one rule per role with an invalid Dest, so the
// report still shows what could not be checked.
func Rules(p *profile.Profile, addrs map[string][]netip.Addr) ([]Rule, error) {
	out, err := NameserverRules(p)
	if err != nil {
		return nil, err
	}
	rtp, err := parseRange(p.Ports.RTP)
	if err != nil {
		return nil, err
	}
	add := func(step int, group, check, proto string, ports portrange.Range, names []string, required bool) {
		for _, name := range names {
			as := addrs[name]
			if len(as) == 0 {
				out = append(out, Rule{Step: step, Group: group, Check: check, Proto: proto, Ports: ports, Name: name, Required: required})
				continue
			}
			for _, a := range as {
				out = append(out, Rule{Step: step, Group: group, Check: check, Proto: proto, Ports: ports,
					Dest: a.Unmap(), Name: name, Required: required})
			}
		}
	}
	add(2, egress.GroupZDial, CheckZDial, "tcp", portrange.Single(p.Ports.ZDialHTTPS), []string{p.Names.ZDial}, true)
	add(3, egress.GroupMCS, CheckMCS, "tcp", portrange.Single(p.Ports.MCSHTTPS), p.Names.MCS, true)
	add(4, egress.GroupSIP, CheckSIP, "tcp", portrange.Single(p.Ports.SIP), p.Names.MCS, true)
	if p.Ports.SIPTLS != 0 {
		add(4, egress.GroupSIP, CheckSIPTLS, "tcp", portrange.Single(p.Ports.SIPTLS), p.Names.MCS, true)
	}
	add(5, egress.GroupRTP, CheckRTP, "udp", rtp, p.Names.MCS, true)
	return dedup(out), nil
}

// dedup drops a rule identical to an earlier one of the same check (two
// names for one address), as the firewall generator does.
func dedup(rules []Rule) []Rule {
	seen := map[string]bool{}
	out := rules[:0]
	for _, r := range rules {
		dest := r.Dest.String()
		if !r.Dest.IsValid() {
			dest = "?" + r.Name
		}
		key := strings.Join([]string{r.Check, r.Proto, r.Ports.String(), dest}, "|")
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, r)
	}
	return out
}

func parseRange(s string) (portrange.Range, error) {
	var pr portrange.Range
	if err := pr.UnmarshalText([]byte(s)); err != nil {
		return pr, fmt.Errorf("profile ports.rtp %q: %w", s, err)
	}
	if pr.Min < 1 || pr.Max > 65535 || pr.Min > pr.Max {
		return pr, fmt.Errorf("profile ports.rtp %q: not a range within 1-65535", s)
	}
	return pr, nil
}

func portString(p int) string { return strconv.Itoa(p) }
