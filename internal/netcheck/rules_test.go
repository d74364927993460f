package netcheck

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/egress"
	"github.com/z5vrs/z5/internal/firewall"
	"github.com/z5vrs/z5/internal/pki"
	"github.com/z5vrs/z5/internal/profile"
	z5provider "github.com/z5vrs/z5/internal/provider"
)

// TestRulesMatchFirewall: the rules z5 check derives from the profile and
// DNS are, line for line, the ones `z5d firewall` derives from the
// deployment — the seed's list for deploy/two-sites.toml.
func TestRulesMatchFirewall(t *testing.T) {
	for _, path := range []string{"../../deploy/two-sites.toml", "../firewall/testdata/dual-stack.toml"} {
		t.Run(path, func(t *testing.T) {
			c, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			ca, err := pki.LoadOrCreateCA(t.TempDir(), "Z5 test")
			if err != nil {
				t.Fatal(err)
			}
			p := z5provider.NewProfile(c, ca.CertPEM())
			// What the provider's DNS answers: every role name to the
			// addresses of the nodes holding it, each node's hosts to it.
			addrs := map[string][]netip.Addr{}
			for _, n := range c.NodesWithRole(config.RoleZDial) {
				addrs[c.Names.ZDial] = append(addrs[c.Names.ZDial], n.Addr())
			}
			for _, n := range c.NodesWithRole(config.RoleMCS) {
				for _, h := range n.Hosts {
					addrs[h] = append(addrs[h], n.Addr())
				}
			}
			got, err := Rules(p, addrs)
			if err != nil {
				t.Fatal(err)
			}
			var want, have []string
			for _, r := range firewall.Rules(c) {
				want = append(want, strings.Join([]string{r.Group, r.Proto, r.Ports.String(), r.Dest.String()}, " "))
			}
			for _, r := range got {
				have = append(have, strings.Join([]string{r.Group, r.Proto, r.Ports.String(), r.Dest.String()}, " "))
			}
			if d := cmp.Diff(want, have); d != "" {
				t.Errorf("rules differ from the firewall generator's (-firewall +netcheck):\n%s", d)
			}
		})
	}
}

func TestRuleRendering(t *testing.T) {
	rtp := config.PortRange{Min: 10000, Max: 65535}
	for _, tc := range []struct {
		r         Rule
		seed, nft string
	}{
		{Rule{Step: 1, Group: egress.GroupNaming, Check: CheckDNS, Proto: "udp", Ports: config.PortRange{Min: 53, Max: 53},
			Dest: netip.MustParseAddr("208.94.16.61")},
			"outbound 53 udp  208.94.16.61",
			`nft add rule inet z5_egress output ip daddr 208.94.16.61 udp dport 53 accept comment "z5 step 1 Naming"`},
		{Rule{Step: 5, Group: egress.GroupRTP, Check: CheckRTP, Proto: "udp", Ports: rtp,
			Dest: netip.MustParseAddr("2001:db8::21")},
			"outbound 10000-65535 udp  2001:db8::21",
			`nft add rule inet z5_egress output ip6 daddr 2001:db8::21 udp dport 10000-65535 accept comment "z5 step 5 RTP"`},
		{Rule{Step: 2, Group: egress.GroupZDial, Check: CheckZDial, Proto: "tcp", Ports: config.PortRange{Min: 443, Max: 443},
			Name: "zdial.champvrs.com"},
			"outbound 443 tcp  <zdial.champvrs.com: not resolved>", ""},
	} {
		if got := tc.r.String(); got != tc.seed {
			t.Errorf("String = %q, want %q", got, tc.seed)
		}
		if got := tc.r.Nft(); got != tc.nft {
			t.Errorf("Nft = %q, want %q", got, tc.nft)
		}
	}
}

func TestRulesBadProfile(t *testing.T) {
	p := &profile.Profile{Nameservers: []string{"198.18.1.53:53"}, Ports: profile.Ports{RTP: "65535-10000"}}
	if _, err := Rules(p, nil); err == nil {
		t.Error("reversed RTP range: no error")
	}
	p.Nameservers = []string{"ns1.example:53"}
	if _, err := NameserverRules(p); err == nil {
		t.Error("nameserver name: no error")
	}
}

func TestMillis(t *testing.T) {
	for d, want := range map[time.Duration]string{
		250 * time.Microsecond:  "0.25 ms",
		2100 * time.Microsecond: "2.1 ms",
		404 * time.Millisecond:  "404 ms",
		1250 * time.Millisecond: "1.25 s",
	} {
		if got := Millis(d).String(); got != want {
			t.Errorf("Millis(%s) = %q, want %q", d, got, want)
		}
	}
	b, _ := Millis(2100 * time.Microsecond).MarshalJSON()
	var m Millis
	if string(b) != "2.100" || m.UnmarshalJSON(b) != nil || m != Millis(2100*time.Microsecond) {
		t.Errorf("json %s -> %v", b, m)
	}
}
