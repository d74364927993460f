package devstack

import (
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
