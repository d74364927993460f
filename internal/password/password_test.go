package password

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// cheap keeps tests fast; Default is exercised once by TestDefaultRoundTrip.
var cheap = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestDefaultRoundTrip(t *testing.T) {
	start := time.Now()
	h, err := Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("default argon2id hash took %v: %s", time.Since(start), h)
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("Hash = %q, want default parameters in PHC form", h)
	}
	if ok, err := Verify(h, "correct horse battery staple"); !ok || err != nil {
		t.Errorf("Verify(right) = %v, %v", ok, err)
	}
	if ok, err := Verify(h, "correct horse battery stapler"); ok || err != nil {
		t.Errorf("Verify(wrong) = %v, %v", ok, err)
	}
	if NeedsRehash(h) {
		t.Errorf("NeedsRehash(default hash) = true")
	}
	h2, _ := Hash("correct horse battery staple")
	if h == h2 {
		t.Errorf("two hashes of one password are equal: salt not random")
	}
}

// Vectors from the argon2 reference CLI (as in x/crypto's tests), written
// in PHC form: another implementation's output must verify.
func TestVerifyReferenceVectors(t *testing.T) {
	tests := []struct {
		encoded, pw string
		want        bool
	}{
		{"$argon2id$v=19$m=64,t=2,p=1$c29tZXNhbHQ$Bo1ismRVk2qm6+YAYLCmWHDb+j3fjUH3", "password", true},
		{"$argon2id$v=19$m=64,t=2,p=2$c29tZXNhbHQ$NQrDciL0Nsy1wJcvHr079rlYvyBxhBNi", "password", true},
		{"$argon2id$v=19$m=64,t=2,p=1$c29tZXNhbHQ$Bo1ismRVk2qm6+YAYLCmWHDb+j3fjUH3", "Password", false},
		{"$argon2id$v=19$m=64,t=2,p=2$c29tZXNhbHQ$Bo1ismRVk2qm6+YAYLCmWHDb+j3fjUH3", "password", false},
	}
	for _, tt := range tests {
		ok, err := Verify(tt.encoded, tt.pw)
		if err != nil || ok != tt.want {
			t.Errorf("Verify(%q, %q) = %v, %v; want %v", tt.encoded, tt.pw, ok, err, tt.want)
		}
		if !NeedsRehash(tt.encoded) {
			t.Errorf("NeedsRehash(%q) = false, want true (weaker than Default)", tt.encoded)
		}
	}
}

func TestVerifyMalformed(t *testing.T) {
	const salt, key = "c29tZXNhbHQ", "Bo1ismRVk2qm6+YAYLCmWHDb+j3fjUH3"
	tests := []string{
		"",
		"plaintext",
		"$argon2i$v=19$m=64,t=2,p=1$" + salt + "$" + key,
		"$argon2d$v=19$m=64,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=16$m=64,t=2,p=1$" + salt + "$" + key,
		"$argon2id$m=64,t=2,p=1$" + salt + "$" + key,
		"argon2id$v=19$m=64,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=2,p=1$" + salt + "$" + key + "$",
		"$argon2id$v=19$t=2,m=64,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=2$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=2,p=1,x=1$" + salt + "$" + key,
		"$argon2id$v=19$m=064,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=+64,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=-64,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=2,p=0$" + salt + "$" + key,
		"$argon2id$v=19$m=16,t=2,p=4$" + salt + "$" + key, // < 8 KiB per lane
		// Hostile costs: would allocate 4 GiB or loop for hours.
		"$argon2id$v=19$m=4194304,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=4294967295,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=4294967296,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1000000,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=4096,t=2,p=255$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=2,p=1$c29tZQ$" + key,        // 4-byte salt
		"$argon2id$v=19$m=64,t=2,p=1$" + salt + "$Ym9vbQ",  // 4-byte hash
		"$argon2id$v=19$m=64,t=2,p=1$" + salt + "=$" + key, // padding
		"$argon2id$v=19$m=64,t=2,p=1$" + salt + "$" + key + "==",
		"$argon2id$v=19$m=64,t=2,p=1$c29tZXNhbHR$" + key, // non-canonical trailing bits
		"$argon2id$v=19$m=64,t=2,p=1$c29t!XNhbHQ$" + key,
		"$argon2id$v=19$m=64,t=2,p=1$" + salt + "$" + strings.Repeat("A", 300),
	}
	for _, enc := range tests {
		ok, err := Verify(enc, "password")
		if ok || !errors.Is(err, ErrMalformed) {
			t.Errorf("Verify(%q) = %v, %v; want ErrMalformed", enc, ok, err)
		}
		if !NeedsRehash(enc) {
			t.Errorf("NeedsRehash(%q) = false", enc)
		}
	}
}

func TestLengthLimits(t *testing.T) {
	tests := []struct {
		pw   string
		want error
	}{
		{"", ErrTooShort},
		{"1234567", ErrTooShort},
		{"12345678", nil},
		{"ñññññññ", ErrTooShort}, // 7 characters, 14 bytes
		{"ññññññññ", nil},
		{strings.Repeat("x", MaxLen), nil},
		{strings.Repeat("x", MaxLen+1), ErrTooLong},
	}
	for _, tt := range tests {
		h, err := HashWith(cheap, tt.pw)
		if !errors.Is(err, tt.want) {
			t.Errorf("HashWith(len %d) error = %v, want %v", len(tt.pw), err, tt.want)
			continue
		}
		if err == nil {
			if ok, err := Verify(h, tt.pw); !ok || err != nil {
				t.Errorf("Verify(len %d) = %v, %v", len(tt.pw), ok, err)
			}
		}
	}
	// An over-long candidate never matches and is not hashed.
	h, _ := HashWith(cheap, "12345678")
	if ok, err := Verify(h, strings.Repeat("x", MaxLen+1)); ok || err != nil {
		t.Errorf("Verify(over-long) = %v, %v", ok, err)
	}
}

func TestHashWithRejectsBadParams(t *testing.T) {
	bad := []Params{
		{Memory: 4, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 1 << 30, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 0, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 4, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 8},
	}
	for _, p := range bad {
		if _, err := HashWith(p, "12345678"); err == nil {
			t.Errorf("HashWith(%+v) succeeded", p)
		}
	}
}

func TestNeedsRehash(t *testing.T) {
	h, _ := HashWith(cheap, "12345678")
	if !NeedsRehash(h) {
		t.Errorf("NeedsRehash(cheap) = false")
	}
	d := Default()
	d.Time++
	h, _ = HashWith(d, "12345678")
	if !NeedsRehash(h) {
		t.Errorf("NeedsRehash(t=3) = false: parameters that differ from Default should be replaced")
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("$argon2id$v=19$m=64,t=2,p=1$c29tZXNhbHQ$Bo1ismRVk2qm6+YAYLCmWHDb+j3fjUH3", "password")
	f.Add("$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHQ$Bo1ismRVk2qm6+YAYLCmWHDb+j3fjUH3", "x")
	f.Add("$$$$$", "")
	f.Fuzz(func(t *testing.T, enc, pw string) {
		p, salt, key, err := decode(enc)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if p.Memory > maxMemory || p.Time > maxTime || p.Threads > maxThreads {
			t.Fatalf("decode accepted out-of-bounds %+v", p)
		}
		// Only hash when it is cheap, so the fuzzer keeps its pace.
		if p.Memory*p.Time <= 4096 {
			if _, err := Verify(enc, pw); err != nil {
				t.Fatal(err)
			}
		}
		// Accepted strings re-encode to themselves: one canonical form.
		if got := encode(p, salt, key); got != enc {
			t.Fatalf("re-encode = %q, want %q", got, enc)
		}
	})
}

// NeedsRehashWith compares against the given parameters, not Default.
func TestNeedsRehashWith(t *testing.T) {
	cheap := Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	h, err := HashWith(cheap, "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if NeedsRehashWith(cheap, h) {
		t.Errorf("NeedsRehashWith(its own parameters) = true")
	}
	if !NeedsRehashWith(Default(), h) || !NeedsRehash(h) {
		t.Errorf("a cheap hash does not need a rehash to Default")
	}
	if !NeedsRehashWith(cheap, "plaintext") {
		t.Errorf("NeedsRehashWith(malformed) = false")
	}
}
