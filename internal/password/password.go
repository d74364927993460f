// Package password hashes customer passwords with argon2id (RFC 9106) and
// stores them in the PHC string format
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// where salt and hash are unpadded standard base64. The cost parameters
// travel inside each string, so raising them later only needs NeedsRehash
// at the next successful login; old hashes keep verifying.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Length limits, in characters (MinLen) and bytes (MaxLen). The upper limit
// only exists so nobody can make us hash megabytes; 1024 bytes is longer than
// any passphrase a person types.
const (
	MinLen = 8
	MaxLen = 1024
)

// Errors callers branch on.
var (
	ErrTooShort = fmt.Errorf("password shorter than %d characters", MinLen)
	ErrTooLong  = fmt.Errorf("password longer than %d bytes", MaxLen)
	// ErrMalformed: an encoded hash is not an argon2id PHC string we accept.
	ErrMalformed = errors.New("malformed argon2id hash")
)

// Params are argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// Default is the OWASP minimum for argon2id (19 MiB, 2 passes, 1 lane):
// roughly 30-50 ms on one core, affordable on small nodes that also run
// SIP and the media relay, and expensive enough offline.
func Default() Params {
	return Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// Bounds on parameters read back from an encoded hash. A hash comes from
// our own database, but a corrupted or tampered row must not be able to make
// one login allocate gigabytes or spin for minutes.
const (
	maxMemory  = 256 * 1024 // KiB: 256 MiB
	minMemory  = 8          // argon2 needs 8 KiB per lane at least
	maxTime    = 16
	maxThreads = 16
	minSaltLen = 8
	maxSaltLen = 64
	minKeyLen  = 16
	maxKeyLen  = 64
	// maxEncoded bounds the whole string before any parsing.
	maxEncoded = 256
)

var b64 = base64.RawStdEncoding.Strict()

// Hash checks the length limits and hashes pw with the default parameters
// and a fresh random salt.
func Hash(pw string) (string, error) {
	return HashWith(Default(), pw)
}

// HashWith is Hash with explicit parameters, for tests that need cheap
// hashes and for operators who raise the cost.
func HashWith(p Params, pw string) (string, error) {
	if err := CheckLength(pw); err != nil {
		return "", err
	}
	if err := p.check(); err != nil {
		return "", err
	}
	salt := make([]byte, p.SaltLen)
	rand.Read(salt) // never fails (crypto/rand, Go 1.24+)
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return encode(p, salt, key), nil
}

// CheckLength reports whether pw is an acceptable new password.
func CheckLength(pw string) error {
	if len(pw) > MaxLen {
		return ErrTooLong
	}
	if utf8.RuneCountInString(pw) < MinLen {
		return ErrTooShort
	}
	return nil
}

// Verify reports whether pw matches encoded, comparing in constant time. A
// malformed or out-of-bounds encoding is an error wrapping ErrMalformed, not
// a mismatch, so a broken account row is noticed rather than silently
// locking its owner out. A password over MaxLen never matches (Hash refuses
// to create one) and is rejected without hashing.
func Verify(encoded, pw string) (bool, error) {
	p, salt, want, err := decode(encoded)
	if err != nil {
		return false, err
	}
	if len(pw) > MaxLen {
		return false, nil
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// NeedsRehash reports whether encoded should be replaced by a fresh Hash
// (after a successful Verify): it is malformed or its parameters differ from
// Default.
func NeedsRehash(encoded string) bool {
	return NeedsRehashWith(Default(), encoded)
}

// NeedsRehashWith is NeedsRehash against the parameters d, for callers that
// hash with HashWith.
func NeedsRehashWith(d Params, encoded string) bool {
	p, salt, key, err := decode(encoded)
	if err != nil {
		return true
	}
	return p.Memory != d.Memory || p.Time != d.Time || p.Threads != d.Threads ||
		uint32(len(salt)) < d.SaltLen || uint32(len(key)) != d.KeyLen
}

func encode(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// decode parses a PHC argon2id string strictly: exact field order, decimal
// numbers without signs or leading zeros, canonical unpadded base64, every
// value within bounds.
func decode(s string) (Params, []byte, []byte, error) {
	var p Params
	if len(s) > maxEncoded {
		return p, nil, nil, fmt.Errorf("%w: %d bytes, over %d", ErrMalformed, len(s), maxEncoded)
	}
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" {
		return p, nil, nil, fmt.Errorf("%w: want 5 '$'-separated fields", ErrMalformed)
	}
	if f[1] != "argon2id" {
		return p, nil, nil, fmt.Errorf("%w: algorithm %q, want argon2id", ErrMalformed, truncate(f[1]))
	}
	if f[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, fmt.Errorf("%w: version %q, want v=%d", ErrMalformed, truncate(f[2]), argon2.Version)
	}
	kv := strings.Split(f[3], ",")
	if len(kv) != 3 {
		return p, nil, nil, fmt.Errorf("%w: parameters %q, want m=,t=,p=", ErrMalformed, truncate(f[3]))
	}
	m, err := param(kv[0], "m", minMemory, maxMemory)
	if err != nil {
		return p, nil, nil, err
	}
	t, err := param(kv[1], "t", 1, maxTime)
	if err != nil {
		return p, nil, nil, err
	}
	th, err := param(kv[2], "p", 1, maxThreads)
	if err != nil {
		return p, nil, nil, err
	}
	if m < 8*th {
		return p, nil, nil, fmt.Errorf("%w: m=%d below 8 KiB per lane (p=%d)", ErrMalformed, m, th)
	}
	// Go's base64 skips CR and LF even when strict: refuse them, so an
	// accepted string has one form.
	if strings.ContainsAny(f[4]+f[5], "\r\n") {
		return p, nil, nil, fmt.Errorf("%w: line break inside salt or hash", ErrMalformed)
	}
	salt, err := b64.DecodeString(f[4])
	if err != nil || len(salt) < minSaltLen || len(salt) > maxSaltLen {
		return p, nil, nil, fmt.Errorf("%w: salt must be %d-%d bytes of unpadded base64", ErrMalformed, minSaltLen, maxSaltLen)
	}
	key, err := b64.DecodeString(f[5])
	if err != nil || len(key) < minKeyLen || len(key) > maxKeyLen {
		return p, nil, nil, fmt.Errorf("%w: hash must be %d-%d bytes of unpadded base64", ErrMalformed, minKeyLen, maxKeyLen)
	}
	p = Params{Memory: m, Time: t, Threads: uint8(th), SaltLen: uint32(len(salt)), KeyLen: uint32(len(key))}
	return p, salt, key, nil
}

func param(s, name string, lo, hi uint32) (uint32, error) {
	v, ok := strings.CutPrefix(s, name+"=")
	if !ok || v == "" || len(v) > 10 || (len(v) > 1 && v[0] == '0') {
		return 0, fmt.Errorf("%w: parameter %q, want %s=<number>", ErrMalformed, truncate(s), name)
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: parameter %q, want %s=<number>", ErrMalformed, truncate(s), name)
	}
	if uint32(n) < lo || uint32(n) > hi {
		return 0, fmt.Errorf("%w: %s=%d outside %d-%d", ErrMalformed, name, n, lo, hi)
	}
	return uint32(n), nil
}

func (p Params) check() error {
	switch {
	case p.Memory < minMemory || p.Memory > maxMemory:
		return fmt.Errorf("argon2id memory %d KiB outside %d-%d", p.Memory, minMemory, maxMemory)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("argon2id time %d outside 1-%d", p.Time, maxTime)
	case p.Threads < 1 || p.Threads > maxThreads:
		return fmt.Errorf("argon2id threads %d outside 1-%d", p.Threads, maxThreads)
	case p.Memory < 8*uint32(p.Threads):
		return fmt.Errorf("argon2id memory %d KiB below 8 KiB per thread", p.Memory)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("argon2id salt length %d outside %d-%d", p.SaltLen, minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("argon2id key length %d outside %d-%d", p.KeyLen, minKeyLen, maxKeyLen)
	}
	return nil
}

// truncate keeps error messages about hostile strings short.
func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
