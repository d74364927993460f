package store

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"hash"
)

// NewToken returns a random bearer token (256 bits, URL-safe).
func NewToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// TokenHash is how tokens are stored and looked up: only the SHA-256 of a
// token is at rest, so a database leak yields no usable token.
func TokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// NewCredentials computes the digest HA1 values of user:realm:password for
// every algorithm the registrar offers (RFC 8760 SHA-256 and SHA-512-256,
// RFC 2617 MD5), so the password itself never needs storing.
func NewCredentials(user, realm, password string) Credentials {
	ha1 := func(h hash.Hash) string {
		h.Write([]byte(user + ":" + realm + ":" + password))
		return hex.EncodeToString(h.Sum(nil))
	}
	return Credentials{
		Realm:         realm,
		HA1MD5:        ha1(md5.New()),
		HA1SHA256:     ha1(sha256.New()),
		HA1SHA512_256: ha1(sha512.New512_256()),
	}
}

// HA1 returns the stored HA1 for a digest algorithm name as it appears in
// the Authorization header ("MD5", "SHA-256", "SHA-512-256", with or
// without "-sess"), and false for an algorithm we do not offer.
func (c Credentials) HA1(algorithm string) (string, bool) {
	switch algorithm {
	case "", "MD5", "MD5-sess":
		return c.HA1MD5, c.HA1MD5 != ""
	case "SHA-256", "SHA-256-sess":
		return c.HA1SHA256, c.HA1SHA256 != ""
	case "SHA-512-256", "SHA-512-256-sess":
		return c.HA1SHA512_256, c.HA1SHA512_256 != ""
	}
	return "", false
}
