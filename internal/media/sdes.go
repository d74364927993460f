package media

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/srtp/v3"
)

// SRTP crypto suites (RFC 7714 14.2, RFC 4568 6.2.1), in the order we
// offer them: the AEAD suite first, the one every SDES device has second.
const (
	SuiteAEADAES128GCM       = "AEAD_AES_128_GCM"
	SuiteAESCM128HMACSHA1_80 = "AES_CM_128_HMAC_SHA1_80"
)

// srtpSuites are the suites we offer and accept, with pion's profile and
// the master key and salt lengths (RFC 3711 8.2; RFC 7714 12: 96-bit salt).
var srtpSuites = []struct {
	name      string
	profile   srtp.ProtectionProfile
	key, salt int
}{
	{SuiteAEADAES128GCM, srtp.ProtectionProfileAeadAes128Gcm, 16, 12},
	{SuiteAESCM128HMACSHA1_80, srtp.ProtectionProfileAes128CmHmacSha1_80, 16, 14},
}

// suiteProfile returns pion's profile for a suite and the length of its
// master key plus salt, ok false for a suite we do not support.
func suiteProfile(name string) (srtp.ProtectionProfile, int, bool) {
	for _, s := range srtpSuites {
		if s.name == name {
			return s.profile, s.key + s.salt, true
		}
	}
	return 0, 0, false
}

// SRTPKeys is the SDES keying of one encrypted stream: the suite, the
// master key and salt we send with, and the peer's. It holds secrets, so it
// is never marshalled and prints and logs as the suite name only.
type SRTPKeys struct {
	Suite  string
	Local  []byte // our master key || master salt
	Remote []byte // the peer's
}

// String names the suite only: keys never reach a log or a terminal.
func (k *SRTPKeys) String() string {
	if k == nil {
		return "none"
	}
	return k.Suite
}

// LogValue keeps keys out of structured logs too.
func (k *SRTPKeys) LogValue() slog.Value { return slog.StringValue(k.String()) }

// cryptoAttr is one a=crypto line (RFC 4568 9.1) we can use: a single
// inline key, no MKI, no session parameters.
type cryptoAttr struct {
	tag   string
	suite string
	key   []byte // master key || master salt
}

// value writes the attribute value; it carries the key, so it goes only
// into SDP bodies.
func (c cryptoAttr) value() string {
	return c.tag + " " + c.suite + " inline:" + base64.StdEncoding.EncodeToString(c.key)
}

// parseCrypto reads an a=crypto value. It fails for a line we cannot use:
// a malformed one, an unknown suite, a key of the wrong length, several
// keys, an MKI, or session parameters (UNENCRYPTED_SRTP, KDR and the like
// change what the suite means; RFC 4568 6.3 lets us skip such a line).
func parseCrypto(v string) (cryptoAttr, error) {
	f := strings.Fields(v)
	if len(f) < 3 {
		return cryptoAttr{}, fmt.Errorf("a=crypto %q: want tag, suite and key parameters: %w", redactCrypto(v), ErrBadSDP)
	}
	if len(f) > 3 {
		return cryptoAttr{}, fmt.Errorf("a=crypto session parameters %q not supported: %w", strings.Join(f[3:], " "), ErrBadSDP)
	}
	tag, suite, params := f[0], f[1], f[2]
	if n, err := strconv.ParseUint(tag, 10, 32); err != nil || len(tag) > 9 || n > 999999999 {
		return cryptoAttr{}, fmt.Errorf("a=crypto tag %q: %w", tag, ErrBadSDP)
	}
	_, size, ok := suiteProfile(suite)
	if !ok {
		return cryptoAttr{}, fmt.Errorf("a=crypto suite %q not supported: %w", suite, ErrBadSDP)
	}
	if strings.Contains(params, ";") {
		return cryptoAttr{}, fmt.Errorf("a=crypto with several keys not supported: %w", ErrBadSDP)
	}
	method, info, _ := strings.Cut(params, ":")
	if !strings.EqualFold(method, "inline") {
		return cryptoAttr{}, fmt.Errorf("a=crypto key method %q, want inline: %w", method, ErrBadSDP)
	}
	parts := strings.Split(info, "|")
	switch {
	case len(parts) > 3:
		return cryptoAttr{}, fmt.Errorf("a=crypto key parameters: too many fields: %w", ErrBadSDP)
	case len(parts) == 3 || (len(parts) == 2 && strings.Contains(parts[1], ":")):
		return cryptoAttr{}, fmt.Errorf("a=crypto with an MKI not supported: %w", ErrBadSDP)
	case len(parts) == 2 && !validLifetime(parts[1]):
		return cryptoAttr{}, fmt.Errorf("a=crypto key lifetime %q: %w", parts[1], ErrBadSDP)
	}
	key, err := base64.StdEncoding.DecodeString(parts[0])
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(parts[0])
	}
	if err != nil {
		return cryptoAttr{}, fmt.Errorf("a=crypto key is not base64: %w", ErrBadSDP)
	}
	if len(key) != size {
		return cryptoAttr{}, fmt.Errorf("a=crypto %s key of %d bytes, want %d: %w", suite, len(key), size, ErrBadSDP)
	}
	return cryptoAttr{tag: tag, suite: suite, key: key}, nil
}

// validLifetime accepts "2^n" or a decimal packet count (RFC 4568 6.1).
func validLifetime(s string) bool {
	if e, ok := strings.CutPrefix(s, "2^"); ok {
		n, err := strconv.ParseUint(e, 10, 8)
		return err == nil && n > 0 && n <= 48
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return err == nil && n > 0
}

// redactCrypto drops what follows "inline:" so an error message that
// quotes a line never carries its key.
func redactCrypto(v string) string {
	if i := strings.Index(strings.ToLower(v), "inline:"); i >= 0 {
		return v[:i+len("inline:")] + "…"
	}
	return v
}

// newCrypto draws a fresh master key and salt for suite.
func newCrypto(tag, suite string) (cryptoAttr, error) {
	_, size, ok := suiteProfile(suite)
	if !ok {
		return cryptoAttr{}, fmt.Errorf("media: srtp suite %q: %w", suite, ErrBadConfig)
	}
	key := make([]byte, size)
	if _, err := rand.Read(key); err != nil {
		return cryptoAttr{}, fmt.Errorf("media: random srtp key: %w", err)
	}
	return cryptoAttr{tag: tag, suite: suite, key: key}, nil
}

// isSecureProto reports an SDES-keyed RTP profile (RFC 3711, RFC 5124).
func isSecureProto(proto string) bool { return proto == "RTP/SAVP" || proto == "RTP/SAVPF" }

// OfferedKeys are the keys of an SRTP offer, by m= line and tag, kept to
// pair with the answer's. It holds secrets: never log or marshal it.
type OfferedKeys struct {
	lines map[int][]cryptoAttr
}

// WithCrypto turns every active audio, video and text m= line of an offer
// this end wrote into RTP/SAVP (RTP/SAVPF from RTP/AVPF) with one a=crypto
// line per suite, each with fresh random keys (RFC 4568).
func WithCrypto(offer []byte) ([]byte, *OfferedKeys, error) {
	sd, err := parseSDP(offer)
	if err != nil {
		return nil, nil, err
	}
	ok := &OfferedKeys{lines: map[int][]cryptoAttr{}}
	for i, md := range sd.MediaDescriptions {
		kind, proto := md.MediaName.Media, strings.Join(md.MediaName.Protos, "/")
		if md.MediaName.Port.Value == 0 || (kind != KindAudio && kind != KindVideo && kind != KindText) {
			continue
		}
		switch proto {
		case "RTP/AVP":
			md.MediaName.Protos = []string{"RTP", "SAVP"}
		case "RTP/AVPF":
			md.MediaName.Protos = []string{"RTP", "SAVPF"}
		default:
			continue
		}
		for j, s := range srtpSuites {
			c, err := newCrypto(strconv.Itoa(j+1), s.name)
			if err != nil {
				return nil, nil, err
			}
			ok.lines[i] = append(ok.lines[i], c)
			md.Attributes = append(md.Attributes, sdp.NewAttribute("crypto", c.value()))
		}
	}
	b, err := sd.Marshal()
	if err != nil {
		return nil, nil, fmt.Errorf("media: marshal sdp with crypto: %w", err)
	}
	return b, ok, nil
}

// ApplyAnswer pairs the answer's a=crypto with the keys we offered and
// marks neg's streams (from ParseAnswer and ParseText of the same answer)
// encrypted. An accepted stream that we offered SRTP on must come back
// RTP/SAVP(F) with one a=crypto naming an offered tag and its suite;
// anything else is ErrBadSDP, since the two ends would not understand each
// other's packets, except for text, which is then dropped from neg.
func (o *OfferedKeys) ApplyAnswer(answer []byte, neg *Negotiated) error {
	if o == nil {
		return nil
	}
	sd, err := parseSDP(answer)
	if err != nil {
		return err
	}
	for _, sp := range neg.streams() {
		if sp == nil {
			continue
		}
		i := answeredLine(sd, sp)
		offered := o.lines[i]
		if i < 0 || len(offered) == 0 {
			continue
		}
		md := sd.MediaDescriptions[i]
		var keys *SRTPKeys
		if proto := strings.Join(md.MediaName.Protos, "/"); !isSecureProto(proto) {
			err = fmt.Errorf("media: answer m= line %d: %s over %s to an SRTP offer: %w", i+1, sp.Kind, proto, ErrBadSDP)
		} else if keys, err = pairCrypto(md, offered); err != nil {
			err = fmt.Errorf("media: answer m= line %d: %w", i+1, err)
		}
		if err != nil && neg.Text != nil && sp == &neg.Text.StreamParams {
			neg.Text = nil // text the two ends cannot key costs the call nothing
			continue
		}
		if err != nil {
			return err
		}
		sp.Encrypted, sp.SRTP = true, keys
	}
	return nil
}

// streams are the negotiated streams, nil ones included.
func (n *Negotiated) streams() []*StreamParams {
	s := []*StreamParams{n.Audio, n.Video}
	if n.Text != nil {
		s = append(s, &n.Text.StreamParams)
	}
	return s
}

// answeredLine finds the m= line ParseAnswer took sp from: the first of
// its kind, enabled, on its port. -1 when there is none.
func answeredLine(sd *sdp.SessionDescription, sp *StreamParams) int {
	for i, md := range sd.MediaDescriptions {
		if md.MediaName.Media == sp.Kind && md.MediaName.Port.Value == int(sp.Remote.Port()) {
			return i
		}
	}
	return -1
}

// pairCrypto reads the answer's single a=crypto and matches it to the
// offered line with the same tag and suite.
func pairCrypto(md *sdp.MediaDescription, offered []cryptoAttr) (*SRTPKeys, error) {
	var found *SRTPKeys
	for _, a := range md.Attributes {
		if a.Key != "crypto" {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("answer with more than one a=crypto: %w", ErrBadSDP)
		}
		c, err := parseCrypto(a.Value)
		if err != nil {
			return nil, err
		}
		for _, oc := range offered {
			if oc.tag == c.tag && oc.suite == c.suite {
				found = &SRTPKeys{Suite: c.suite, Local: oc.key, Remote: c.key}
			}
		}
		if found == nil {
			return nil, fmt.Errorf("a=crypto tag %s %s was not offered: %w", c.tag, c.suite, ErrBadSDP)
		}
	}
	if found == nil {
		return nil, fmt.Errorf("no a=crypto in the answer to an SRTP offer: %w", ErrBadSDP)
	}
	return found, nil
}

// answerCrypto picks the first offered a=crypto we support (RFC 4568
// 7.1.1: the answerer picks one, in the offerer's order of preference) and
// returns our answering line, with a fresh key, and the stream's keys. why
// says what was wrong when no line is usable.
func answerCrypto(md *sdp.MediaDescription) (sdp.Attribute, *SRTPKeys, string) {
	why := "no a=crypto in the " + md.MediaName.Media + " offer"
	for _, a := range md.Attributes {
		if a.Key != "crypto" {
			continue
		}
		c, err := parseCrypto(a.Value)
		if err != nil {
			why = err.Error()
			continue
		}
		ours, err := newCrypto(c.tag, c.suite)
		if err != nil {
			return sdp.Attribute{}, nil, err.Error()
		}
		return sdp.NewAttribute("crypto", ours.value()), &SRTPKeys{Suite: c.suite, Local: ours.key, Remote: c.key}, ""
	}
	return sdp.Attribute{}, nil, why
}

// Encrypted reports whether every negotiated stream runs SRTP, real-time
// text included: a call whose text goes in the clear is not private.
func (n Negotiated) Encrypted() bool {
	some := false
	for _, sp := range n.streams() {
		if sp == nil {
			continue
		}
		if !sp.Encrypted {
			return false
		}
		some = true
	}
	return some
}
