package sipserver

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/z5vrs/z5/internal/clip"
	"github.com/z5vrs/z5/internal/sipcore"
)

// Digest authentication (RFC 3261 §22, RFC 7616 as applied to SIP by
// RFC 8760). The server offers SHA-256, SHA-512-256 and MD5 in that order
// of preference, always with qop=auth.
//
// Nonces are stateless: base64url(issued unix seconds, 8 random bytes,
// HMAC-SHA-256 of both and of the address the challenge went to, under a
// per-process key, truncated to 16 bytes). Any nonce this process issued
// verifies without a table, but only from the address it was issued to:
// a UDP source can be forged, so a nonce is good only for the ip:port
// that received it (a forged REGISTER cannot answer a challenge it never
// saw); over TCP and TLS the handshake proves the address and the nonce is
// bound to the IP alone, so a client reconnecting from a new port keeps
// it. One older than the TTL earns 401 with stale=true. What does need
// state is replay protection: for each nonce that has authenticated a
// request, the highest nonce-count seen; a request repeating an nc (or
// going back) is refused. Entries exist only for nonces that passed a full
// digest check, so only holders of a password can add them, and they leave
// with the nonce's TTL.

// Errors of digest verification.
var (
	errDigestMalformed = errors.New("digest: malformed credentials")
	errDigestStale     = errors.New("digest: nonce expired")
	errDigestBadNonce  = errors.New("digest: nonce not issued here")
	errDigestMismatch  = errors.New("digest: response does not match")
	errDigestReplay    = errors.New("digest: nonce count replayed")
	errDigestParams    = errors.New("digest: parameters do not match the challenge")
)

// digestCredentials is a parsed Authorization / Proxy-Authorization value.
type digestCredentials struct {
	Username, Realm, Nonce, URI, Response string
	Algorithm, CNonce, Opaque, QOP, NC    string
}

// parseDigest parses `Digest auth-param *("," auth-param)` (RFC 7616 §3.4,
// RFC 3261 §25.1). Other schemes, duplicate or malformed parameters are
// errors.
func parseDigest(v string) (digestCredentials, error) {
	var c digestCredentials
	// Read in place, once per authenticated request: the parameters kept
	// go to their fields, others are parsed and ignored, and a duplicate
	// of either is an error, as parseDigestParams has it.
	var seen uint16
	var others []string
	err := eachDigestParam(v, func(name, val string) error {
		var f *string
		var bit uint16
		switch name {
		case "username":
			f, bit = &c.Username, 1<<0
		case "realm":
			f, bit = &c.Realm, 1<<1
		case "nonce":
			f, bit = &c.Nonce, 1<<2
		case "uri":
			f, bit = &c.URI, 1<<3
		case "response":
			f, bit = &c.Response, 1<<4
		case "algorithm":
			f, bit = &c.Algorithm, 1<<5
		case "cnonce":
			f, bit = &c.CNonce, 1<<6
		case "opaque":
			f, bit = &c.Opaque, 1<<7
		case "qop":
			f, bit = &c.QOP, 1<<8
		case "nc":
			f, bit = &c.NC, 1<<9
		}
		if f == nil {
			if slices.Contains(others, name) {
				return fmt.Errorf("%w: duplicate parameter %q", errDigestMalformed, name)
			}
			others = append(others, name)
			return nil
		}
		if seen&bit != 0 {
			return fmt.Errorf("%w: duplicate parameter %q", errDigestMalformed, name)
		}
		seen |= bit
		*f = val
		return nil
	})
	if err != nil {
		return digestCredentials{}, err
	}
	if c.Username == "" || c.Nonce == "" || c.Response == "" || c.URI == "" {
		return c, fmt.Errorf("%w: username, nonce, uri and response are required", errDigestMalformed)
	}
	return c, nil
}

// parseDigestParams parses `Digest auth-param *("," auth-param)` into its
// parameters by lower-case name: credentials, or a challenge (the trunk's,
// trunk_auth.go).
func parseDigestParams(v string) (map[string]string, error) {
	params := map[string]string{}
	err := eachDigestParam(v, func(name, val string) error {
		if _, dup := params[name]; dup {
			return fmt.Errorf("%w: duplicate parameter %q", errDigestMalformed, name)
		}
		params[name] = val
		return nil
	})
	if err != nil {
		return nil, err
	}
	return params, nil
}

// eachDigestParam parses `Digest auth-param *("," auth-param)`, calling
// f with each parameter's lower-case name and its value, unquoted, until
// f returns an error.
func eachDigestParam(v string, f func(name, val string) error) error {
	v = trimLWS(v)
	scheme, rest, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Digest") {
		return fmt.Errorf("%w: scheme is not Digest", errDigestMalformed)
	}
	s := rest
	for {
		s = trimLWS(s)
		if s == "" {
			break
		}
		i := tokenLen(s)
		if i == 0 {
			return fmt.Errorf("%w: expected a parameter name at %q", errDigestMalformed, clip.String(s, 24))
		}
		name := strings.ToLower(s[:i])
		s = trimLWS(s[i:])
		if s == "" || s[0] != '=' {
			return fmt.Errorf("%w: parameter %q has no value", errDigestMalformed, name)
		}
		s = trimLWS(s[1:])
		var val string
		if end := quotedEnd(s); end > 0 {
			// No quoted-pair: the value is the text between the quotes.
			val, s = s[1:end], s[end+1:]
		} else if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			j := 1
			closed := false
			for j < len(s) {
				ch := s[j]
				if ch == '\\' && j+1 < len(s) {
					b.WriteByte(s[j+1])
					j += 2
					continue
				}
				if ch == '"' {
					closed = true
					j++
					break
				}
				b.WriteByte(ch)
				j++
			}
			if !closed {
				return fmt.Errorf("%w: unterminated quoted value of %q", errDigestMalformed, name)
			}
			val, s = b.String(), s[j:]
		} else {
			j := tokenLen(s)
			if j == 0 {
				return fmt.Errorf("%w: parameter %q has no value", errDigestMalformed, name)
			}
			val, s = s[:j], s[j:]
		}
		if err := f(name, val); err != nil {
			return err
		}
		s = trimLWS(s)
		if s == "" {
			break
		}
		if s[0] != ',' {
			return fmt.Errorf("%w: expected ',' at %q", errDigestMalformed, clip.String(s, 24))
		}
		s = s[1:]
	}
	return nil
}

// trimLWS drops leading spaces and tabs (strings.TrimLeft with a cutset
// builds the set on every call, several times per credential).
func trimLWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	return s
}

// quotedEnd is the index of the quote closing the quoted string s starts
// with, 0 when s does not start with one, has a quoted-pair (a backslash)
// before its end, or is unterminated.
func quotedEnd(s string) int {
	if !strings.HasPrefix(s, `"`) {
		return 0
	}
	for j := 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			return 0
		case '"':
			return j
		}
	}
	return 0
}

// tokenLen is the length of the RFC 3261 token s starts with.
func tokenLen(s string) int {
	i := 0
	for i < len(s) && isTokenChar(s[i]) {
		i++
	}
	return i
}

// digestHash returns the hash of a digest algorithm we offer.
func digestHash(alg string) (func() hash.Hash, bool) {
	switch strings.ToUpper(alg) {
	case "", "MD5":
		return md5.New, true
	case "SHA-256":
		return sha256.New, true
	case "SHA-512-256":
		return sha512.New512_256, true
	}
	return nil, false
}

func hexHash(h func() hash.Hash, parts ...string) string {
	d := h()
	d.Write([]byte(strings.Join(parts, ":")))
	return hex.EncodeToString(d.Sum(nil))
}

// digestResponse computes request-digest for qop=auth (RFC 7616 §3.4.1).
func digestResponse(h func() hash.Hash, ha1, nonce, nc, cnonce, qop, method, uri string) string {
	ha2 := hexHash(h, method, uri)
	return hexHash(h, ha1, nonce, nc, cnonce, qop, ha2)
}

// appendDigestResponse appends digestResponse's value for alg (one that
// digestHash knows, upper-case) to dst, hashing in scratch, without the
// allocations of hash.Hash values and hex strings.
func appendDigestResponse(dst, scratch []byte, alg, ha1, nonce, nc, cnonce, qop, method, uri string) []byte {
	var ha2 [2 * sha512.Size256]byte
	b := append(append(append(scratch[:0], method...), ':'), uri...)
	h2 := appendHexSum(ha2[:0], alg, b)
	b = append(append(scratch[:0], ha1...), ':')
	b = append(append(b, nonce...), ':')
	b = append(append(b, nc...), ':')
	b = append(append(b, cnonce...), ':')
	b = append(append(b, qop...), ':')
	b = append(b, h2...)
	return appendHexSum(dst, alg, b)
}

// appendHexSum appends the lower-case hex digest of data under alg.
func appendHexSum(dst []byte, alg string, data []byte) []byte {
	switch alg {
	case "SHA-256":
		sum := sha256.Sum256(data)
		return hex.AppendEncode(dst, sum[:])
	case "SHA-512-256":
		sum := sha512.Sum512_256(data)
		return hex.AppendEncode(dst, sum[:])
	default: // MD5, as digestHash has it
		sum := md5.Sum(data)
		return hex.AppendEncode(dst, sum[:])
	}
}

// hexEqualFold reports, in time independent of where they differ,
// whether resp is want (lower-case hex) in either case: want ==
// strings.ToLower(resp), as no other character lower-cases to a hex digit.
func hexEqualFold(want []byte, resp string) bool {
	if len(want) != len(resp) {
		return false
	}
	var diff byte
	for i := 0; i < len(resp); i++ {
		c := resp[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		diff |= c ^ want[i]
	}
	return diff == 0
}

// digestAuth issues challenges and verifies credentials.
type digestAuth struct {
	realm  string
	ttl    time.Duration
	algs   []string // offered, best first
	key    []byte
	opaque string

	macs sync.Pool // *nonceMACState: HMAC-SHA-256 under key, reused

	nc *nonceCounts
}

// nonceMACState is a nonce MAC in the making; a pooled one saves the
// HMAC's allocations on every authenticated request.
type nonceMACState struct {
	h   hash.Hash
	in  []byte
	sum [sha256.Size]byte
}

func newDigestAuth(realm string, ttl time.Duration, algs []string) *digestAuth {
	key := make([]byte, 32)
	rand.Read(key)
	o := make([]byte, 12)
	rand.Read(o)
	return &digestAuth{realm: realm, ttl: ttl, algs: algs, key: key, opaque: hex.EncodeToString(o), nc: newNonceCounts(nonceSlotCount)}
}

// newNonce issues a nonce for the address bind (see nonceBinding): its
// issue time and its id in the replay table (nonceCounts), under a MAC,
// so that neither can be forged.
func (a *digestAuth) newNonce(now time.Time, bind nonceBind) string {
	var b [8 + 8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.Unix()))
	binary.BigEndian.PutUint64(b[8:16], a.nc.issue())
	copy(b[16:], a.nonceMAC(b[:16], bind))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (a *digestAuth) nonceMAC(head []byte, bind nonceBind) []byte {
	var mac [16]byte
	a.nonceMACTo(&mac, head, bind)
	return mac[:]
}

// nonceMACTo writes the MAC of head and bind to mac.
func (a *digestAuth) nonceMACTo(mac *[16]byte, head []byte, bind nonceBind) {
	m, _ := a.macs.Get().(*nonceMACState)
	if m == nil {
		m = &nonceMACState{h: hmac.New(sha256.New, a.key)}
	}
	m.h.Reset()
	m.in = bind.appendTo(append(m.in[:0], head...))
	m.h.Write(m.in)
	copy(mac[:], m.h.Sum(m.sum[:0]))
	a.macs.Put(m)
}

// nonceIssued verifies a nonce issued to bind and returns when it was
// issued and its id. A nonce issued to another address does not verify.
func (a *digestAuth) nonceIssued(nonce string, bind nonceBind) (issued time.Time, id uint64, ok bool) {
	var b []byte
	var in [43]byte
	var dec [32]byte
	if len(nonce) == len(in) {
		// What newNonce issues: decoded on the stack.
		copy(in[:], nonce)
		n, err := base64.RawURLEncoding.Decode(dec[:], in[:])
		if err != nil || n != len(dec) {
			return time.Time{}, 0, false
		}
		b = dec[:]
	} else {
		var err error
		if b, err = base64.RawURLEncoding.DecodeString(nonce); err != nil || len(b) != 32 {
			return time.Time{}, 0, false
		}
	}
	var mac [16]byte
	a.nonceMACTo(&mac, b[:16], bind)
	if !hmac.Equal(mac[:], b[16:]) {
		return time.Time{}, 0, false
	}
	return time.Unix(int64(binary.BigEndian.Uint64(b[:8])), 0), binary.BigEndian.Uint64(b[8:16]), true
}

// nonceBind is what a nonce is bound to for a request from a source
// (ip:port) over a transport: the full source for UDP, which can be
// forged, the IP for TCP and TLS, where the handshake has proved it. It
// is written into the nonce's MAC (appendTo), not formatted as a string
// of its own for every request.
type nonceBind struct {
	udp  bool
	src  string     // the source as given: UDP's, or one that does not parse
	addr netip.Addr // a stream source's IP
}

func nonceBinding(transport, source string) nonceBind {
	if strings.EqualFold(transport, "UDP") {
		return nonceBind{udp: true, src: source}
	}
	ap, err := netip.ParseAddrPort(source)
	if err != nil {
		return nonceBind{src: source}
	}
	return nonceBind{addr: ap.Addr().Unmap()}
}

// appendTo appends the binding as the MAC covers it: "udp|ip:port" or
// "stream|ip".
func (b nonceBind) appendTo(dst []byte) []byte {
	switch {
	case b.udp:
		return append(append(dst, "udp|"...), b.src...)
	case b.addr.IsValid():
		return b.addr.AppendTo(append(dst, "stream|"...))
	default:
		return append(append(dst, "stream|"...), b.src...)
	}
}

// challenges returns one challenge value per algorithm, best first, or
// MD5 alone for legacy endpoints, with a nonce bound to bind.
func (a *digestAuth) challenges(now time.Time, stale, legacy bool, bind nonceBind) []string {
	nonce := a.newNonce(now, bind)
	out := make([]string, 0, len(a.algs))
	algs := a.algs
	if legacy && slices.Contains(algs, "MD5") {
		// libre (baresip) fails on any challenge it cannot compute and
		// SIPp answers only the first: such endpoints get MD5 alone.
		algs = []string{"MD5"}
	}
	for _, alg := range algs {
		v := `Digest realm="` + a.realm + `", nonce="` + nonce + `", opaque="` + a.opaque + `", algorithm=` + alg + `, qop="auth"`
		if stale {
			v += ", stale=true"
		}
		out = append(out, v)
	}
	return out
}

// verify checks credentials against the HA1 for their algorithm and the
// request's method; the nonce must have been issued to bind. uriMatches
// decides whether the digest-uri names the request's target.
func (a *digestAuth) verify(c digestCredentials, method, ha1 string, now time.Time, bind nonceBind, uriMatches func(string) bool) error {
	alg := strings.ToUpper(c.Algorithm)
	if alg == "" {
		alg = "MD5" // RFC 7616 §3.3: absent means MD5
	}
	_, ok := digestHash(alg)
	switch {
	case !ok || !slices.Contains(a.algs, alg):
		return fmt.Errorf("%w: algorithm %q not offered", errDigestParams, c.Algorithm)
	case c.Realm != a.realm:
		return fmt.Errorf("%w: realm", errDigestParams)
	case c.Opaque != a.opaque:
		return fmt.Errorf("%w: opaque", errDigestParams)
	case !uriMatches(c.URI):
		return fmt.Errorf("%w: uri %q is not the Request-URI", errDigestParams, c.URI)
	case c.QOP != "auth" || c.CNonce == "" || len(c.NC) != 8:
		return fmt.Errorf("%w: qop=auth with cnonce and nc required", errDigestParams)
	}
	nc, err := strconv.ParseUint(c.NC, 16, 32)
	if err != nil || nc == 0 {
		return fmt.Errorf("%w: nc", errDigestParams)
	}
	issued, id, ok := a.nonceIssued(c.Nonce, bind)
	if !ok {
		return errDigestBadNonce
	}
	var buf [512]byte
	var want [2 * sha512.Size256]byte
	if !hexEqualFold(appendDigestResponse(want[:0], buf[:0], alg, ha1, c.Nonce, c.NC, c.CNonce, c.QOP, method, c.URI), c.Response) {
		return errDigestMismatch
	}
	// The password is right; now freshness. A stale nonce with a right
	// password asks the client to retry with a new one (RFC 7616 §3.3).
	if now.Sub(issued) > a.ttl || issued.After(now.Add(time.Minute)) {
		return errDigestStale
	}
	return a.nc.use(id, nc)
}

// failureLimiter counts failed authentications per key (a user and
// source address, or an account) and refuses a key that has failed too
// often within the window. The decisions are sipcore's; this holds the
// counts. max <= 0 turns it off.
type failureLimiter struct {
	max    int
	window time.Duration

	mu   sync.Mutex // guards keys and swept
	keys map[string]sipcore.Failures
	// swept is when a full table was last swept: at most once a second,
	// so a flood of new keys into a full table does not scan it on every
	// request.
	swept time.Time
}

const maxFailureKeys = 1 << 16

func newFailureLimiter(max int, window time.Duration) *failureLimiter {
	return &failureLimiter{max: max, window: window, keys: map[string]sipcore.Failures{}}
}

// reserve counts a failure for key in advance of checking a digest, unless
// key is at the limit and enforce is set (then it returns false). Only
// release or succeed gives the reservation back, so guesses in flight at
// once cannot overshoot the limit.
func (l *failureLimiter) reserve(key string, now time.Time, enforce bool) bool {
	if l.max <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.keys[key]
	if !ok && len(l.keys) >= maxFailureKeys {
		if now.Sub(l.swept) >= time.Second || now.Before(l.swept) {
			l.sweepLocked(now)
			l.swept = now
		}
		if len(l.keys) >= maxFailureKeys {
			return true // under a flood, stop counting rather than grow
		}
	}
	f, admitted := sipcore.ReserveFailure(f, l.max, l.window, now, enforce)
	// A user name is a slice of the request's Authorization header, and
	// storing under an existing key replaces the key too: a copy, so a
	// kept key does not keep the header alive.
	l.keys[strings.Clone(key)] = f
	return admitted
}

// release gives back a reservation whose check was not a wrong guess.
func (l *failureLimiter) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f, ok := l.keys[key]; ok {
		if f = sipcore.ReleaseFailure(f); f.Count == 0 {
			delete(l.keys, key) // only keys with failures take room
		} else {
			l.keys[strings.Clone(key)] = f // as in reserve
		}
	}
}

// blocked reports whether key has reached the limit.
func (l *failureLimiter) blocked(key string, now time.Time) bool {
	if l.max <= 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return sipcore.FailureBlocked(l.keys[key], l.max, l.window, now)
}

// fail counts a failure for key without checking the limit.
func (l *failureLimiter) fail(key string, now time.Time) {
	l.reserve(key, now, false)
}

// succeed clears key's failures.
func (l *failureLimiter) succeed(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.keys, key)
}

func (l *failureLimiter) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
}

func (l *failureLimiter) sweepLocked(now time.Time) {
	for k, f := range l.keys {
		if f.Count == 0 || now.Sub(f.Since) > l.window {
			delete(l.keys, k)
		}
	}
}
