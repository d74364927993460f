package devstack

import (
	"fmt"
	"maps"
	"testing"

	"github.com/z5vrs/z5/internal/config"
)

// TestConfigLoads checks the description is a deployment the config
// package accepts, with the extra table in effect and n1 on the address.
func TestConfigLoads(t *testing.T) {
	dir := t.TempDir()
	text := Config("Z5 test", dir, "127.0.0.9", "\n[relay]\nmax_ports_per_customer = 12\n")
	cfg, err := config.Parse("z5.toml", []byte(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if cfg.Provider.Name != "Z5 test" || cfg.DataDir != dir {
		t.Errorf("provider %q, data dir %q", cfg.Provider.Name, cfg.DataDir)
	}
	if cfg.Relay.MaxPortsPerCustomer != 12 {
		t.Errorf("relay max_ports_per_customer = %d, want 12", cfg.Relay.MaxPortsPerCustomer)
	}
	n, ok := cfg.Node("n1")
	if !ok || n.Address != "127.0.0.9" {
		t.Errorf("node n1 = %+v, %v", n, ok)
	}
}

// TestDeploymentSites checks a deployment of two sites without SIP over TLS
// loads with each node on its site, address, roles and hosts.
func TestDeploymentSites(t *testing.T) {
	text := Deployment("Z5 two", t.TempDir(), false, "",
		Site{Name: "a", Nodes: []Node{
			{Name: "n1", Roles: []string{"dns", "zdial"}, Address: "127.0.0.1"},
			{Name: "n2", Roles: []string{"mcs"}, Address: "127.0.0.2", Hosts: []string{"mcs1.mcs.z5.test"}},
		}},
		Site{Name: "b", Nodes: []Node{
			{Name: "n3", Roles: []string{"mcs"}, Address: "127.0.0.3", Hosts: []string{"mcs2.mcs.z5.test"}},
		}})
	cfg, err := config.Parse("z5.toml", []byte(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if cfg.Ports.SIPTLS != 0 {
		t.Errorf("ports.sip_tls = %d without SIP over TLS", cfg.Ports.SIPTLS)
	}
	want := map[string]string{"n1": "a 127.0.0.1 [dns zdial] []", "n2": "a 127.0.0.2 [mcs] [mcs1.mcs.z5.test]", "n3": "b 127.0.0.3 [mcs] [mcs2.mcs.z5.test]"}
	if len(cfg.Sites) != 2 {
		t.Fatalf("%d sites, want 2:\n%s", len(cfg.Sites), text)
	}
	got := map[string]string{}
	for _, s := range cfg.Sites {
		for _, n := range s.Nodes {
			got[n.Name] = fmt.Sprintf("%s %s %v %v", s.Name, n.Address, n.Roles, n.Hosts)
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("nodes %v, want %v", got, want)
	}
}
