package provider

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"path/filepath"
	"runtime"
	"strings"
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
// 9248 configuration built from it carries it. (rue's own tests pin the
// JSON spelling.)
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
	got := r.ForSubscriber("2025550100", "Alice Smith")
	if got.ProviderEntryPoint != "https://lb.mcs.csdvrs.com/rue/v1/config" || got.ProviderDomain != "mcs.csdvrs.com" ||
		got.Contacts != "https://lb.mcs.csdvrs.com/api/v1/contacts.xml" || got.CardDAV != "2025550100@lb.mcs.csdvrs.com" {
		t.Errorf("RUE configuration of two-sites.toml: %+v", got)
	}
	proxies := []string{"sip:lb.mcs.csdvrs.com:5060;transport=tcp;lr", "sip:mcs1.mcs.csdvrs.com:5060;transport=tcp;lr",
		"sip:mcs2.mcs.csdvrs.com:5060;transport=tcp;lr"}
	if d := cmp.Diff(proxies, got.OutboundProxies); d != "" {
		t.Errorf("outbound proxies (-want +got):\n%s", d)
	}

	// The dev stack names its port.
	dev := rue.ForProfile(NewProfile(config.Dev(t.TempDir()), ca.CertPEM(), pub))
	if dev.ProviderEntryPoint != "https://lb.mcs.z5.test:9443/rue/v1/config" {
		t.Errorf("dev: %+v", dev)
	}
}

// TestProfileSaysTLS: a deployment with SIP over TLS puts its port in the
// profile (the Z5 client then signals only over TLS) and lists sips:
// proxies first in the RFC 9248 configuration; the seed's deployment,
// without TLS, has neither.
func TestProfileSaysTLS(t *testing.T) {
	ca, err := pki.LoadOrCreateCA(t.TempDir(), "Z5 test")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	seed := NewProfile(twoSites(t), ca.CertPEM(), pub)
	if seed.Ports.SIPTLS != 0 {
		t.Errorf("two-sites profile: sip_tls %d, want 0 (no TLS)", seed.Ports.SIPTLS)
	}
	for _, px := range NewRUE(seed).OutboundProxies {
		if strings.HasPrefix(px, "sips:") {
			t.Errorf("two-sites RUE config lists %q without TLS", px)
		}
	}
	dev := NewProfile(config.Dev(t.TempDir()), ca.CertPEM(), pub)
	if dev.Ports.SIPTLS != 5061 || dev.Ports.SIP != 5060 {
		t.Errorf("dev profile ports: %+v, want sip 5060 and sip_tls 5061", dev.Ports)
	}
	want := []string{
		"sips:lb.mcs.z5.test:5061;lr", "sips:mcs1.mcs.z5.test:5061;lr", "sips:mcs2.mcs.z5.test:5061;lr",
		"sip:lb.mcs.z5.test:5060;transport=tcp;lr", "sip:mcs1.mcs.z5.test:5060;transport=tcp;lr", "sip:mcs2.mcs.z5.test:5060;transport=tcp;lr",
	}
	if d := cmp.Diff(want, NewRUE(dev).OutboundProxies); d != "" {
		t.Errorf("dev outbound proxies (-want +got):\n%s", d)
	}
	b, err := json.Marshal(NewRUE(dev))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rue.Parse(b); err != nil {
		t.Errorf("dev RUE config does not parse back: %v\n%s", err, b)
	}
}
