package config

import (
	"os"
	"strings"
	"testing"
)

func TestDevConfigValid(t *testing.T) {
	c := Dev(t.TempDir())
	if got := c.Ports.RTP; got != (PortRange{Min: 20000, Max: 39999}) {
		t.Errorf("dev rtp range = %v", got)
	}
	if n := c.NodesWithRole(RoleMCS); len(n) != 1 || n[0].Addr().String() != "127.0.0.1" {
		t.Errorf("dev MCS nodes = %+v", n)
	}
}

func TestTwoSitesMirrorsSeed(t *testing.T) {
	c, err := Load("../../deploy/two-sites.toml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, role := range []string{RoleDNS, RoleZDial, RoleMCS} {
		for _, n := range c.NodesWithRole(role) {
			got = append(got, role+" "+n.Address)
		}
	}
	want := []string{
		"dns 208.94.16.61", "dns 208.94.16.62", "dns 208.94.16.90",
		"dns 208.95.32.61", "dns 208.95.32.62", "dns 208.95.32.90",
		"zdial 208.94.16.114", "zdial 208.95.32.114",
		"mcs 208.94.16.21", "mcs 208.95.32.21",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("nodes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if c.Ports.RTP != (PortRange{Min: 10000, Max: 65535}) || c.Ports.SIP != 5060 || c.Ports.DNS != 53 {
		t.Errorf("ports = %+v", c.Ports)
	}
	if c.SIP.NoAnswerTimeout.Minutes() < 3 {
		t.Errorf("no-answer timeout %s, want >= 3m", c.SIP.NoAnswerTimeout)
	}
}

func TestValidationErrors(t *testing.T) {
	base, err := os.ReadFile("../../deploy/two-sites.toml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, from, to string
		want           string // substring of the error, including file:line
	}{
		{"unknown key", `sip_domain = "mcs.csdvrs.com"`, "sip_domain = \"mcs.csdvrs.com\"\nsip_domian = \"x\"", "t.toml:14: names.sip_domian: unknown key"},
		{"bad address", `address = "208.94.16.62"`, `address = "208.94.16.300"`, `t.toml:43: site[0].node[1].address: "208.94.16.300" is not an IP address`},
		{"bad role", `roles = ["zdial"]`, `roles = ["zdail"]`, `unknown role "zdail"`},
		{"bad range", `rtp = "10000-65535"`, `rtp = "65535-10000"`, "t.toml:20: ports.rtp: range 65535-10000"},
		{"name outside zones", `zones = ["champvrs.com", "csdvrs.com"]`, `zones = ["champvrs.com"]`, `"lb.mcs.csdvrs.com" is in none of the served zones`},
		{"syntax", `[names]`, `[names`, "t.toml:"},
		{"mcs without host", `hosts = ["mcs2.mcs.csdvrs.com"]`, ``, "an MCS node needs its own name"},
		{"duplicate site", `name = "b"`, `name = "a"`, `t.toml:62: site[1].name: duplicate site "a"`},
		{"duplicate node", `name = "b-ns1"`, `name = "a-ns1"`, `t.toml:65: site[1].node[0].name: duplicate node "a-ns1"`},
		{"node without name", `name = "a-ns2"`, `name = ""`, `site[0].node[1].name: required`},
		{"postgres without dsn", `dsn = "host=/run/postgresql dbname=z5 user=z5"`, ``, "store.dsn: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Replace(string(base), tt.from, tt.to, 1)
			if src == string(base) {
				t.Fatalf("replacement %q not applied", tt.from)
			}
			_, err := Parse("t.toml", []byte(src))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error:\n%v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../../deploy/two-sites.toml"); err == nil {
		f.Add(b)
	}
	f.Add(devTOML)
	f.Add([]byte("[[site]]\n[[site.node]]\nroles=[1]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse("fuzz.toml", b)
		if err == nil && len(c.Sites) == 0 {
			t.Fatal("valid config without sites")
		}
	})
}
