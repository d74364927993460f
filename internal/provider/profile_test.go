package provider

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/pki"
	"github.com/z5vrs/z5/internal/rue"
)

func twoSites(t *testing.T) *config.Config {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	c, err := config.Load(filepath.Join(filepath.Dir(file), "..", "..", "deploy", "two-sites.toml"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The documents of the seed's deployment, as a client receives them: the
// profile names every nameserver and MCS node of the config, and the RFC
// 9248 configuration built from it (in the spelling we write) carries it.
func TestNewProfileAndRUE(t *testing.T) {
	ca, err := pki.LoadOrCreateCA(t.TempDir(), "Z5 test")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	p := NewProfile(twoSites(t), ca.CertPEM(), pub)
	if err := p.Validate(); err != nil {
		t.Fatalf("profile of two-sites.toml: %v", err)
	}
	if d := cmp.Diff([]string{"mcs1.mcs.csdvrs.com", "mcs2.mcs.csdvrs.com"}, p.Names.MCS); d != "" {
		t.Errorf("mcs names (-want +got):\n%s", d)
	}

	r := NewRUE(p)
	if r.Z5 != p {
		t.Error("the RUE configuration does not carry the profile")
	}
	r.Z5 = nil
	b, err := json.MarshalIndent(r.ForSubscriber("2025550100", "Alice Smith"), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "version": 1,
  "lifetime": 86400,
  "providerEntryPoint": "https://lb.mcs.csdvrs.com/rue/v1/config",
  "provider-domain": "mcs.csdvrs.com",
  "display-name": "Alice Smith",
  "phone-number": "+12025550100",
  "outbound-proxies": [
    "sip:lb.mcs.csdvrs.com:5060;transport=tcp;lr",
    "sip:mcs1.mcs.csdvrs.com:5060;transport=tcp;lr",
    "sip:mcs2.mcs.csdvrs.com:5060;transport=tcp;lr"
  ],
  "ice-servers": [],
  "contacts": "https://lb.mcs.csdvrs.com/api/v1/contacts.xml",
  "carddav": "2025550100@lb.mcs.csdvrs.com",
  "sendLocationWithRegistration": false
}`
	if d := cmp.Diff(want, string(b)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}

	// The dev stack names its port.
	dev := rue.ForProfile(NewProfile(config.Dev(t.TempDir()), ca.CertPEM(), pub))
	if dev.ProviderEntryPoint != "https://lb.mcs.z5.test:9443/rue/v1/config" {
		t.Errorf("dev: %+v", dev)
	}
}
