package main

import (
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/pki"
	"github.com/z5vrs/z5/internal/provider"
	"github.com/z5vrs/z5/internal/rue"
)

func TestLoadProfileAcceptsRUEConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Dev(dir)
	ca, err := pki.LoadOrCreateCA(dir, "t")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	prof := provider.NewProfile(cfg, ca.CertPEM(), pub)

	plain := filepath.Join(dir, "provider.json")
	if err := prof.Save(plain); err != nil {
		t.Fatal(err)
	}
	ruePath := filepath.Join(dir, "rue.json")
	b, err := json.Marshal(provider.NewRUE(prof))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(ruePath, b, 0o644)
	noExt := filepath.Join(dir, "rue-plain.json")
	b, _ = json.Marshal(rue.ForProfile(prof))
	os.WriteFile(noExt, b, 0o644)
	junk := filepath.Join(dir, "junk.json")
	os.WriteFile(junk, []byte(`{"hello":1}`), 0o644)

	for _, p := range []string{plain, ruePath} {
		got, err := loadProfile(p)
		if err != nil || got.Names.ZDial != "zdial.z5.test" || len(got.Nameservers) != 1 {
			t.Errorf("loadProfile(%s) = %+v, %v", filepath.Base(p), got, err)
		}
	}
	for path, want := range map[string]string{noExt: "without the z5 extension", junk: "neither a Z5 provider profile"} {
		if _, err := loadProfile(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("loadProfile(%s) error = %v, want %q", filepath.Base(path), err, want)
		}
	}
}
