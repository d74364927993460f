// Package license issues and verifies the signed statement a Z5 client needs
// before its SIP stack may start (step 3). A license binds a number, a
// device, features and a validity window, and is signed with Ed25519 so
// clients and every MCS node verify it offline with the provider profile's
// public key.
//
// Wire form: base64url(JSON claims) "." base64url(signature over the first
// part), compact enough for a SIP header.
package license

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// Errors callers branch on.
var (
	ErrMalformed    = errors.New("license malformed")
	ErrUnknownKey   = errors.New("license signed by an unknown key")
	ErrBadSignature = errors.New("license signature invalid")
	ErrExpired      = errors.New("license expired")
	ErrNotYetValid  = errors.New("license not yet valid")
)

// Claims is what a license states.
type Claims struct {
	Version   int      `json:"v"`
	ID        string   `json:"id"`
	Issuer    string   `json:"iss"`
	KeyID     string   `json:"kid"`
	Number    string   `json:"number"`
	DeviceID  int64    `json:"device"`
	SIPUser   string   `json:"sip_user"`
	Features  []string `json:"features"`
	NotBefore int64    `json:"nbf"` // Unix seconds
	NotAfter  int64    `json:"exp"`
}

// Has reports whether the license grants feature f.
func (c Claims) Has(f string) bool { return slices.Contains(c.Features, f) }

// Expires is NotAfter as a time.
func (c Claims) Expires() time.Time { return time.Unix(c.NotAfter, 0).UTC() }

// Valid checks the window at now, allowing skew for clock differences.
func (c Claims) Valid(now time.Time, skew time.Duration) error {
	if now.Add(skew).Unix() < c.NotBefore {
		return fmt.Errorf("%w: valid from %s", ErrNotYetValid, time.Unix(c.NotBefore, 0).UTC().Format(time.RFC3339))
	}
	if now.Add(-skew).Unix() >= c.NotAfter {
		return fmt.Errorf("%w: at %s", ErrExpired, c.Expires().Format(time.RFC3339))
	}
	return nil
}

// KeyID names a public key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

// Sign issues a license for claims (Version and KeyID are filled in).
func Sign(key ed25519.PrivateKey, c Claims) (string, error) {
	if c.ID == "" {
		b := make([]byte, 12)
		rand.Read(b)
		c.ID = base64.RawURLEncoding.EncodeToString(b)
	}
	c.Version = 1
	c.KeyID = KeyID(key.Public().(ed25519.PublicKey))
	body, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode license: %w", err)
	}
	p := base64.RawURLEncoding.EncodeToString(body)
	sig := ed25519.Sign(key, []byte(p))
	return p + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// Parse checks the signature against any of keys and decodes the claims,
// without checking the validity window (see Verify).
func Parse(token string, keys ...ed25519.PublicKey) (Claims, error) {
	var c Claims
	if len(token) > 4096 {
		return c, fmt.Errorf("%w: %d bytes", ErrMalformed, len(token))
	}
	p, s, ok := strings.Cut(strings.TrimSpace(token), ".")
	if !ok {
		return c, fmt.Errorf("%w: no signature part", ErrMalformed)
	}
	body, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return c, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return c, fmt.Errorf("%w: signature encoding", ErrMalformed)
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return Claims{}, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	if c.Version != 1 {
		return Claims{}, fmt.Errorf("%w: version %d", ErrMalformed, c.Version)
	}
	for _, k := range keys {
		if KeyID(k) != c.KeyID {
			continue
		}
		if !ed25519.Verify(k, []byte(p), sig) {
			return Claims{}, ErrBadSignature
		}
		return c, nil
	}
	return Claims{}, fmt.Errorf("%w: kid %q", ErrUnknownKey, c.KeyID)
}

// Verify parses a license and checks that it is valid at now.
func Verify(token string, now time.Time, keys ...ed25519.PublicKey) (Claims, error) {
	c, err := Parse(token, keys...)
	if err != nil {
		return c, err
	}
	return c, c.Valid(now, 2*time.Minute)
}

// LoadOrCreateKey reads an Ed25519 private key (PKCS#8 PEM) from path, or
// creates one there (mode 0600) when the file does not exist.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate license key: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("encode license key: %w", err)
		}
		out := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if err := writeFileAtomic(path, out, 0o600); err != nil {
			return nil, fmt.Errorf("write license key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read license key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("license key %s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("license key %s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("license key %s: %T is not Ed25519", path, k)
	}
	return key, nil
}

// EncodePublicKey is the profile's form of a public key: base64 (std) of
// the 32 raw bytes.
func EncodePublicKey(pub ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(pub)
}

// DecodePublicKey reverses EncodePublicKey.
func DecodePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("license public key: want base64 of %d bytes", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
