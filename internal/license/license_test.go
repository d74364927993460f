package license

import (
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	key, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "license.key"))
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	_, other, _ := ed25519.GenerateKey(nil)
	now := time.Unix(1_800_000_000, 0)
	tok, err := Sign(key, Claims{Number: "5551230001", DeviceID: 7, Features: []string{"video"},
		NotBefore: now.Unix(), NotAfter: now.Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Verify(tok, now.Add(time.Minute), pub)
	if err != nil || c.Number != "5551230001" || c.DeviceID != 7 || !c.Has("video") {
		t.Fatalf("Verify = %+v, %v", c, err)
	}
	p, s, _ := strings.Cut(tok, ".")
	tampered := strings.Replace(p, p[10:14], "AAAA", 1) + "." + s
	for name, tt := range map[string]struct {
		tok  string
		at   time.Time
		keys []ed25519.PublicKey
		want error
	}{
		"tampered":    {tampered, now, []ed25519.PublicKey{pub}, nil},
		"expired":     {tok, now.Add(2 * time.Hour), []ed25519.PublicKey{pub}, ErrExpired},
		"early":       {tok, now.Add(-time.Hour), []ed25519.PublicKey{pub}, ErrNotYetValid},
		"unknown key": {tok, now, []ed25519.PublicKey{other.Public().(ed25519.PublicKey)}, ErrUnknownKey},
		"garbage":     {"x.y", now, []ed25519.PublicKey{pub}, ErrMalformed},
	} {
		_, err := Verify(tt.tok, tt.at, tt.keys...)
		if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("%s: err = %v, want %v", name, err, tt.want)
		}
	}
	// The key persists.
	again, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "x"))
	if err != nil || again.Equal(key) {
		t.Fatal("new key expected in a new file")
	}
}

func FuzzParse(f *testing.F) {
	_, key, _ := ed25519.GenerateKey(nil)
	tok, _ := Sign(key, Claims{Number: "5551230001"})
	f.Add(tok)
	f.Add("a.b")
	f.Fuzz(func(t *testing.T, s string) {
		Parse(s, key.Public().(ed25519.PublicKey))
	})
}
