package sipserver

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unsafe"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/google/go-cmp/cmp"
)

// RFC 7616 §3.9.1: the same request answered with MD5 and SHA-256.
func TestDigestResponseVectors(t *testing.T) {
	const (
		user, realm, pass = "Mufasa", "http-auth@example.org", "Circle of Life"
		nonce             = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
		cnonce            = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
	)
	for _, tc := range []struct{ alg, want string }{
		{"MD5", "8ca523f5e9506fed4657c9700eebdbec"},
		{"SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"},
	} {
		h, ok := digestHash(tc.alg)
		if !ok {
			t.Fatalf("%s not offered", tc.alg)
		}
		ha1 := hexHash(h, user, realm, pass)
		if got := digestResponse(h, ha1, nonce, "00000001", cnonce, "auth", "GET", "/dir/index.html"); got != tc.want {
			t.Errorf("%s: response %s, want %s", tc.alg, got, tc.want)
		}
	}
}

func TestParseDigest(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want digestCredentials
		err  bool
	}{
		{
			in: `Digest username="alice", realm="mcs.z5.test", nonce="n1", uri="sip:mcs.z5.test", response="abc", algorithm=SHA-256, cnonce="c", qop=auth, nc=00000001, opaque="o"`,
			want: digestCredentials{Username: "alice", Realm: "mcs.z5.test", Nonce: "n1", URI: "sip:mcs.z5.test", Response: "abc",
				Algorithm: "SHA-256", CNonce: "c", QOP: "auth", NC: "00000001", Opaque: "o"},
		},
		{
			in:   `digest USERNAME = "a\"b" ,realm="r",nonce="n",uri="u",response="x"`,
			want: digestCredentials{Username: `a"b`, Realm: "r", Nonce: "n", URI: "u", Response: "x"},
		},
		{in: `Basic dXNlcjpwYXNz`, err: true},
		{in: `Digest username="a", username="b", nonce="n", uri="u", response="x"`, err: true},
		{in: `Digest username="a, nonce="n", uri="u", response="x"`, err: true},
		{in: `Digest username="a" nonce="n"`, err: true},
		{in: `Digest realm="r"`, err: true},
		{in: `Digest username=, nonce="n"`, err: true},
	} {
		got, err := parseDigest(tc.in)
		if tc.err {
			if err == nil {
				t.Errorf("%q: parsed as %+v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%q (-want +got):\n%s", tc.in, d)
		}
	}
}

func TestVerifyDigest(t *testing.T) {
	a := newDigestAuth("mcs.z5.test", time.Minute, []string{"SHA-256", "MD5"})
	now := time.Now()
	bind := nonceBinding("UDP", "192.0.2.7:5060")
	nonce := a.newNonce(now, bind)
	h, _ := digestHash("SHA-256")
	ha1 := hexHash(h, "alice", "mcs.z5.test", "pw")
	cred := func(nc string, mutate func(*digestCredentials)) digestCredentials {
		c := digestCredentials{Username: "alice", Realm: "mcs.z5.test", Nonce: nonce, URI: "sip:mcs.z5.test",
			Algorithm: "SHA-256", CNonce: "cn", QOP: "auth", NC: nc, Opaque: a.opaque}
		if mutate != nil {
			mutate(&c)
		}
		c.Response = digestResponse(h, ha1, c.Nonce, c.NC, c.CNonce, c.QOP, "REGISTER", c.URI)
		return c
	}
	any := func(string) bool { return true }
	for _, tc := range []struct {
		name string
		c    digestCredentials
		at   time.Time
		want error
	}{
		{"good", cred("00000001", nil), now, nil},
		{"replayed nc", cred("00000001", nil), now, errDigestReplay},
		{"lower nc", cred("00000001", nil), now, errDigestReplay},
		{"next nc", cred("00000002", nil), now, nil},
		{"stale", cred("00000003", nil), now.Add(2 * time.Minute), errDigestStale},
		{"forged nonce", cred("00000001", func(c *digestCredentials) { c.Nonce = c.Nonce[:20] + flip(c.Nonce[20]) + c.Nonce[21:] }), now, errDigestBadNonce},
		{"wrong opaque", cred("00000004", func(c *digestCredentials) { c.Opaque = "x" }), now, errDigestParams},
		{"no qop", cred("00000004", func(c *digestCredentials) { c.QOP = "" }), now, errDigestParams},
		{"sess not offered", cred("00000004", func(c *digestCredentials) { c.Algorithm = "SHA-256-sess" }), now, errDigestParams},
		{"other realm", cred("00000004", func(c *digestCredentials) { c.Realm = "evil" }), now, errDigestParams},
	} {
		err := a.verify(tc.c, "REGISTER", ha1, tc.at, bind, any)
		if !errors.Is(err, tc.want) && !(err == nil && tc.want == nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	bad := cred("00000009", nil)
	bad.Response = strings.Repeat("0", 64)
	if err := a.verify(bad, "REGISTER", ha1, now, bind, any); !errors.Is(err, errDigestMismatch) {
		t.Errorf("wrong password: %v", err)
	}
	if err := a.verify(cred("0000000a", nil), "INVITE", ha1, now, bind, any); !errors.Is(err, errDigestMismatch) {
		t.Errorf("digest of another method: %v", err)
	}
}

func TestFailureLimiter(t *testing.T) {
	l := newFailureLimiter(2, time.Minute)
	now := time.Now()
	l.fail("k", now)
	if l.blocked("k", now) {
		t.Fatal("blocked after one failure")
	}
	l.fail("k", now)
	if !l.blocked("k", now) {
		t.Fatal("not blocked after two")
	}
	if l.blocked("k", now.Add(2*time.Minute)) {
		t.Fatal("still blocked after the window")
	}
	l.fail("k", now)
	l.succeed("k")
	if l.blocked("k", now) {
		t.Fatal("success did not clear")
	}
	// Reservations: two in flight take the limit, a third is refused;
	// one given back lets the next through, and an empty key takes no room.
	if !l.reserve("r", now, true) || !l.reserve("r", now, true) || l.reserve("r", now, true) {
		t.Fatal("want two reservations, then a refusal")
	}
	l.release("r")
	if !l.reserve("r", now, true) {
		t.Fatal("a released reservation was not given back")
	}
	l.release("r")
	l.release("r")
	if _, kept := l.keys["r"]; kept {
		t.Fatal("a key with no failures left is still held")
	}
	if off := newFailureLimiter(-1, time.Minute); !off.reserve("k", now, true) || off.blocked("k", now) || len(off.keys) != 0 {
		t.Fatal("a limiter with no limit counted")
	}
}

// FuzzDigest feeds Authorization values to the parser: it must not panic,
// and what it accepts must survive a round trip through the header form.
func FuzzDigest(f *testing.F) {
	for _, s := range []string{
		`Digest username="alice", realm="mcs.z5.test", nonce="n1", uri="sip:mcs.z5.test", response="abc", algorithm=SHA-256, cnonce="c", qop=auth, nc=00000001, opaque="o"`,
		`Digest username="a\"b",realm=r,nonce=n,uri="u",response=x`,
		`Digest username="",`,
		`NoSuchScheme param="value"`,
		`Digest username="a" ,, nonce="n"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		c, err := parseDigest(v)
		if err != nil {
			return
		}
		q := func(s string) string { return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"` }
		again := "Digest username=" + q(c.Username) + ", realm=" + q(c.Realm) + ", nonce=" + q(c.Nonce) +
			", uri=" + q(c.URI) + ", response=" + q(c.Response) + ", algorithm=" + q(c.Algorithm) +
			", cnonce=" + q(c.CNonce) + ", opaque=" + q(c.Opaque) + ", qop=" + q(c.QOP) + ", nc=" + q(c.NC)
		c2, err := parseDigest(again)
		if err != nil {
			t.Fatalf("re-serialised %q does not parse: %v", again, err)
		}
		if c != c2 {
			t.Fatalf("round trip changed %+v into %+v", c, c2)
		}
	})
}

func flip(b byte) string {
	if b == 'A' {
		return "B"
	}
	return "A"
}

// TestDigestResponseInPlace: the response verify computes in place is
// digestResponse's, and is compared as strings.ToLower would have it.
func TestDigestResponseInPlace(t *testing.T) {
	long := strings.Repeat("x", 600) // past the scratch buffer
	for _, alg := range []string{"MD5", "SHA-256", "SHA-512-256"} {
		h, _ := digestHash(alg)
		for _, uri := range []string{"sip:mcs.z5.test", long} {
			ha1 := hexHash(h, "alice", "mcs.z5.test", "pw")
			want := digestResponse(h, ha1, "n0nce", "00000001", "c", "auth", "REGISTER", uri)
			var scratch [16]byte
			got := appendDigestResponse(nil, scratch[:0], alg, ha1, "n0nce", "00000001", "c", "auth", "REGISTER", uri)
			if string(got) != want {
				t.Errorf("%s: %s, want %s", alg, got, want)
			}
			if !hexEqualFold(got, strings.ToUpper(want)) || hexEqualFold(got, want[1:]) || hexEqualFold(got, "g"+want[1:]) {
				t.Errorf("%s: hexEqualFold disagrees with comparing lower-cased", alg)
			}
		}
	}
}

// TestKeptKeysOwnTheirBytes: parseDigest returns slices of the
// Authorization header, and the account failure table outlives the
// request: its keys must be copies, or each kept key holds the whole
// header (about 300 bytes a registration, seen in the memory benchmark).
// (The nonce-count table keeps no strings: nonceCounts.)
func TestKeptKeysOwnTheirBytes(t *testing.T) {
	a := newDigestAuth("mcs.z5.test", time.Minute, []string{"SHA-256"})
	now := time.Now()
	bind := nonceBinding("UDP", "192.0.2.7:5060")
	h, _ := digestHash("SHA-256")
	ha1 := hexHash(h, "alice", "mcs.z5.test", "pw")
	header := func(nc string) (string, digestCredentials) {
		c := digestCredentials{Username: "alice", Realm: "mcs.z5.test", Nonce: a.newNonce(now, bind), URI: "sip:mcs.z5.test",
			Algorithm: "SHA-256", CNonce: "cn", QOP: "auth", NC: nc, Opaque: a.opaque}
		c.Response = digestResponse(h, ha1, c.Nonce, c.NC, c.CNonce, c.QOP, "REGISTER", c.URI)
		v := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", algorithm=%s, cnonce="%s", qop=%s, nc=%s, opaque="%s", response="%s"`,
			c.Username, c.Realm, c.Nonce, c.URI, c.Algorithm, c.CNonce, c.QOP, c.NC, c.Opaque, c.Response)
		parsed, err := parseDigest(v)
		if err != nil {
			t.Fatal(err)
		}
		return v, parsed
	}
	within := func(s, in string) bool {
		p, start := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.StringData(in)))
		return p >= start && p < start+uintptr(len(in))
	}

	l := newFailureLimiter(5, time.Minute)
	v, c := header("00000003")
	l.reserve(c.Username, now, true)
	l.fail(c.Username, now) // an existing key stored again
	for k := range l.keys {
		if within(k, v) {
			t.Error("the failure table's key is a slice of the header")
		}
	}
}

func TestSameURI(t *testing.T) {
	var target sipmsg.Uri
	if err := sipmsg.ParseUri("sip:5552340001@MCS.z5.test:5060;transport=tcp", &target); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		digestURI string
		want      bool
	}{
		{"sip:5552340001@MCS.z5.test:5060;transport=tcp", true},
		{"sip:5552340001@mcs.z5.test:5060", true},
		{"SIP:5552340001@mcs.z5.test:5060;lr", true},
		{"sip:5552340001@mcs.z5.test", false},
		{"sip:5552340002@mcs.z5.test:5060", false},
		{"sips:5552340001@mcs.z5.test:5060", false},
		{"sip:5552340001@other.z5.test:5060", false},
		{"", false},
		{"<garbage", false},
	} {
		if got := sameURI(tc.digestURI, target); got != tc.want {
			t.Errorf("sameURI(%q) = %v, want %v", tc.digestURI, got, tc.want)
		}
	}
}
