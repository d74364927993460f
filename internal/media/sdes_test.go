package media

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// Keys of the lengths each suite takes, recognizable in failures.
var (
	gcmKey  = bytes.Repeat([]byte{0xa1}, 28) // 16 key + 12 salt
	cmKey   = bytes.Repeat([]byte{0xc3}, 30) // 16 key + 14 salt
	gcmB64  = base64.StdEncoding.EncodeToString(gcmKey)
	cmB64   = base64.StdEncoding.EncodeToString(cmKey)
	cmRaw64 = base64.RawStdEncoding.EncodeToString(cmKey)
)

func TestParseCrypto(t *testing.T) {
	tests := []struct {
		value     string
		wantTag   string
		wantSuite string
		wantKey   []byte
		wantErr   string // "" succeeds
	}{
		{"1 AEAD_AES_128_GCM inline:" + gcmB64, "1", SuiteAEADAES128GCM, gcmKey, ""},
		{"2 AES_CM_128_HMAC_SHA1_80 inline:" + cmB64, "2", SuiteAESCM128HMACSHA1_80, cmKey, ""},
		{"3 AES_CM_128_HMAC_SHA1_80 inline:" + cmB64 + "|2^31", "3", SuiteAESCM128HMACSHA1_80, cmKey, ""},
		{"4 AES_CM_128_HMAC_SHA1_80 inline:" + cmB64 + "|1048576", "4", SuiteAESCM128HMACSHA1_80, cmKey, ""},
		{"5 AES_CM_128_HMAC_SHA1_80 INLINE:" + cmRaw64, "5", SuiteAESCM128HMACSHA1_80, cmKey, ""},
		{"1 AES_CM_128_HMAC_SHA1_32 inline:" + cmB64, "", "", nil, "not supported"},
		{"1 AES_256_CM_HMAC_SHA1_80 inline:" + cmB64, "", "", nil, "not supported"},
		{"1 AEAD_AES_128_GCM inline:" + cmB64, "", "", nil, "key of 30 bytes, want 28"},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + cmB64 + "|2^20|1:4", "", "", nil, "MKI"},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + cmB64 + "|1:4", "", "", nil, "MKI"},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + cmB64 + "|2^99", "", "", nil, "lifetime"},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + cmB64 + " UNENCRYPTED_SRTP", "", "", nil, "session parameters"},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + cmB64 + ";inline:" + cmB64, "", "", nil, "several keys"},
		{"1 AES_CM_128_HMAC_SHA1_80 uri:https://k.example/" + cmB64, "", "", nil, "key method"},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:!!notbase64!!", "", "", nil, "not base64"},
		{"x AES_CM_128_HMAC_SHA1_80 inline:" + cmB64, "", "", nil, "tag"},
		{"1234567890 AES_CM_128_HMAC_SHA1_80 inline:" + cmB64, "", "", nil, "tag"},
		{"1 AES_CM_128_HMAC_SHA1_80", "", "", nil, "want tag, suite and key"},
		{"", "", "", nil, "want tag, suite and key"},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			got, err := parseCrypto(tt.value)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrBadSDP) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want ErrBadSDP saying %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), cmB64) || strings.Contains(err.Error(), gcmB64) {
					t.Errorf("error quotes the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.tag != tt.wantTag || got.suite != tt.wantSuite || !bytes.Equal(got.key, tt.wantKey) {
				t.Errorf("got tag %q suite %q key %x, want %q %q %x", got.tag, got.suite, got.key, tt.wantTag, tt.wantSuite, tt.wantKey)
			}
		})
	}
}

// TestBuildAnswerSRTP answers SDP offers with and without SDES: the first
// offered suite we support is picked with a fresh key of ours, plain offers
// are answered plain, and unusable crypto declines the stream.
func TestBuildAnswerSRTP(t *testing.T) {
	tests := []struct {
		name      string
		media     string // the offer's m= section(s)
		wantProto string // "" when the audio is declined
		wantTag   string
		wantSuite string
		wantPeer  []byte // the offerer's key we must decrypt with
	}{
		{"AEAD first", `
			m=audio 4000 RTP/SAVP 0
			a=crypto:1 AEAD_AES_128_GCM inline:` + gcmB64 + `
			a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:` + cmB64,
			"RTP/SAVP", "1", SuiteAEADAES128GCM, gcmKey},
		{"offerer prefers AES_CM", `
			m=audio 4000 RTP/SAVP 0
			a=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:` + cmB64 + `
			a=crypto:8 AEAD_AES_128_GCM inline:` + gcmB64,
			"RTP/SAVP", "7", SuiteAESCM128HMACSHA1_80, cmKey},
		{"unsupported suites skipped (baresip/Linphone style)", `
			m=audio 4000 RTP/SAVPF 0
			a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:` + base64.StdEncoding.EncodeToString(make([]byte, 46)) + `
			a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:` + cmB64 + `
			a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:` + cmB64 + ` UNENCRYPTED_SRTP
			a=crypto:4 AES_CM_128_HMAC_SHA1_80 inline:` + cmB64 + `|2^31`,
			"RTP/SAVPF", "4", SuiteAESCM128HMACSHA1_80, cmKey},
		{"plain offer answered plain", `
			m=audio 4000 RTP/AVP 0`,
			"RTP/AVP", "", "", nil},
		{"SAVP without crypto declined", `
			m=audio 4000 RTP/SAVP 0`,
			"", "", "", nil},
		{"only unusable crypto declined", `
			m=audio 4000 RTP/SAVP 0
			a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:` + cmB64 + `
			a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:` + cmB64 + `|2^20|1:4`,
			"", "", "", nil},
		{"DTLS-SRTP is not SDES", `
			m=audio 4000 UDP/TLS/RTP/SAVPF 0
			a=fingerprint:sha-256 00:11`,
			"", "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			offer := sdpText(peerSession + "\n" + tt.media)
			ans, neg, err := buildAnswer([]byte(offer), loopback, 5000, 0, 7)
			if tt.wantProto == "" {
				if !errors.Is(err, ErrNoCommonCodec) {
					t.Fatalf("err %v, want the only stream declined (ErrNoCommonCodec)", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			text := string(ans)
			if !strings.Contains(text, "m=audio 5000 "+tt.wantProto+" 0\r\n") {
				t.Errorf("answer lacks m=audio 5000 %s:\n%s", tt.wantProto, text)
			}
			a := neg.Audio
			if tt.wantSuite == "" {
				if a.Encrypted || a.SRTP != nil || strings.Contains(text, "a=crypto") {
					t.Errorf("plain offer got crypto: %+v\n%s", a, text)
				}
				return
			}
			if !a.Encrypted || a.SRTP == nil || a.SRTP.Suite != tt.wantSuite || !bytes.Equal(a.SRTP.Remote, tt.wantPeer) {
				t.Fatalf("negotiated %+v keys %v, want %s with the offer's key", a, a.SRTP, tt.wantSuite)
			}
			if bytes.Equal(a.SRTP.Local, a.SRTP.Remote) || len(a.SRTP.Local) != len(tt.wantPeer) {
				t.Errorf("our key %x: want a fresh one of %d bytes", a.SRTP.Local, len(tt.wantPeer))
			}
			want := fmt.Sprintf("a=crypto:%s %s inline:%s\r\n", tt.wantTag, tt.wantSuite, base64.StdEncoding.EncodeToString(a.SRTP.Local))
			if strings.Count(text, "a=crypto:") != 1 || !strings.Contains(text, want) {
				t.Errorf("answer crypto, want exactly %q:\n%s", want, text)
			}
		})
	}
}

// TestSRTPOfferAnswer runs our offer through our answer: both suites are
// offered with fresh keys, the answerer picks the first, and each side
// decrypts with the key the other encrypts with.
func TestSRTPOfferAnswer(t *testing.T) {
	plain, err := BuildOffer(loopback, 4000, 4002, true)
	if err != nil {
		t.Fatal(err)
	}
	offer, keys, err := WithCrypto(plain)
	if err != nil {
		t.Fatal(err)
	}
	text := string(offer)
	for _, want := range []string{"m=audio 4000 RTP/SAVP 0", "m=video 4002 RTP/SAVP 96",
		"a=crypto:1 AEAD_AES_128_GCM inline:", "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:"} {
		if !strings.Contains(text, want) {
			t.Errorf("offer lacks %q:\n%s", want, text)
		}
	}
	if n := strings.Count(text, "a=crypto:"); n != 4 {
		t.Errorf("%d a=crypto lines, want 2 per stream", n)
	}
	again, _, err := WithCrypto(plain)
	if err != nil {
		t.Fatal(err)
	}
	if cryptoValues(text) == cryptoValues(string(again)) {
		t.Error("two offers carry the same keys")
	}

	answer, ansNeg, err := BuildAnswer(offer, loopback, 6000, 6002)
	if err != nil {
		t.Fatal(err)
	}
	neg, err := ParseAnswer(answer)
	if err != nil {
		t.Fatal(err)
	}
	if neg.Encrypted() {
		t.Fatal("encrypted before the answer's keys were applied")
	}
	if err := keys.ApplyAnswer(answer, &neg); err != nil {
		t.Fatal(err)
	}
	if !neg.Encrypted() || !ansNeg.Encrypted() {
		t.Fatalf("offerer encrypted %t, answerer %t", neg.Encrypted(), ansNeg.Encrypted())
	}
	for _, pair := range [][2]*StreamParams{{neg.Audio, ansNeg.Audio}, {neg.Video, ansNeg.Video}} {
		off, ans := pair[0].SRTP, pair[1].SRTP
		if off.Suite != SuiteAEADAES128GCM || ans.Suite != off.Suite {
			t.Errorf("%s suites %s / %s, want %s", pair[0].Kind, off.Suite, ans.Suite, SuiteAEADAES128GCM)
		}
		if !bytes.Equal(off.Local, ans.Remote) || !bytes.Equal(off.Remote, ans.Local) {
			t.Errorf("%s: keys do not cross", pair[0].Kind)
		}
	}
	if (Negotiated{}).Encrypted() {
		t.Error("an empty negotiation is not encrypted")
	}
	withText := neg
	withText.Text = &TextParams{StreamParams: StreamParams{Kind: KindText}}
	if withText.Encrypted() {
		t.Error("a call with plain real-time text is not encrypted")
	}
	withText.Text.Encrypted = true
	if !withText.Encrypted() {
		t.Error("every stream encrypted, text included, is an encrypted call")
	}

	// Keys never reach JSON, a formatted value or a log line.
	js, err := json.Marshal(neg)
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("call", "srtp", neg.Audio.SRTP, "neg", neg)
	for _, out := range []string{string(js), fmt.Sprintf("%v %+v", neg.Audio.SRTP, neg.Audio), logged.String()} {
		for _, k := range [][]byte{neg.Audio.SRTP.Local, neg.Audio.SRTP.Remote} {
			if strings.Contains(out, base64.StdEncoding.EncodeToString(k)) || strings.Contains(out, fmt.Sprintf("%x", k)) ||
				strings.Contains(out, fmt.Sprint(k)) {
				t.Errorf("key in output: %s", out)
			}
		}
	}
	if !strings.Contains(string(js), `"encrypted":true`) {
		t.Errorf("json lacks encrypted: %s", js)
	}
}

func cryptoValues(sdp string) string {
	var b strings.Builder
	for line := range strings.Lines(sdp) {
		if strings.HasPrefix(line, "a=crypto:") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// TestApplyAnswerErrors: an answer that cannot be paired with the SRTP we
// offered fails the call instead of running media nobody can decrypt.
func TestApplyAnswerErrors(t *testing.T) {
	plain, err := BuildOffer(loopback, 4000, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	_, keys, err := WithCrypto(plain)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, media, wantErr string
	}{
		{"plain answer", `
			m=audio 6000 RTP/AVP 0`, "RTP/AVP to an SRTP offer"},
		{"no crypto", `
			m=audio 6000 RTP/SAVP 0`, "no a=crypto"},
		{"tag not offered", `
			m=audio 6000 RTP/SAVP 0
			a=crypto:9 AEAD_AES_128_GCM inline:` + gcmB64, "not offered"},
		{"suite changed", `
			m=audio 6000 RTP/SAVP 0
			a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:` + cmB64, "not offered"},
		{"two crypto lines", `
			m=audio 6000 RTP/SAVP 0
			a=crypto:1 AEAD_AES_128_GCM inline:` + gcmB64 + `
			a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:` + cmB64, "more than one"},
		{"bad key", `
			m=audio 6000 RTP/SAVP 0
			a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:` + gcmB64, "want 30"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answer := []byte(sdpText(peerSession + "\n" + tt.media))
			neg, err := ParseAnswer(answer)
			if err != nil {
				t.Fatal(err)
			}
			err = keys.ApplyAnswer(answer, &neg)
			if !errors.Is(err, ErrBadSDP) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err %v, want ErrBadSDP saying %q", err, tt.wantErr)
			}
		})
	}
	// A plain offer (nil keys) takes any answer as it is.
	var none *OfferedKeys
	neg := Negotiated{Audio: &StreamParams{Kind: KindAudio}}
	if err := none.ApplyAnswer([]byte("junk"), &neg); err != nil || neg.Encrypted() {
		t.Errorf("nil keys: %v, encrypted %t", err, neg.Encrypted())
	}
}

// TestSRTPText: real-time text is keyed like audio and video, so an SRTP
// call carries no stream in the clear; a text answer that cannot be keyed
// drops text, not the call.
func TestSRTPText(t *testing.T) {
	plain, err := BuildOffer(loopback, 4000, 0, true)
	if err == nil {
		plain, err = WithText(plain, 4004, true, 77, "c1")
	}
	if err != nil {
		t.Fatal(err)
	}
	offer, keys, err := WithCrypto(plain)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(offer), "m=text 4004 RTP/SAVP ") {
		t.Fatalf("text not offered over SRTP:\n%s", offer)
	}
	answer, ansNeg, err := BuildAnswer(offer, loopback, 6000, 0)
	if err == nil {
		answer, ansNeg.Text, err = AnswerText(offer, answer, 6004, 88, "c2")
	}
	if err != nil {
		t.Fatal(err)
	}
	if ansNeg.Text == nil || !ansNeg.Text.Encrypted || !ansNeg.Encrypted() {
		t.Fatalf("answerer: text %+v, call encrypted %t\n%s", ansNeg.Text, ansNeg.Encrypted(), answer)
	}
	neg, err := ParseAnswer(answer)
	if err == nil {
		neg.Text, err = ParseText(answer)
	}
	if err == nil {
		err = keys.ApplyAnswer(answer, &neg)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !neg.Encrypted() || !bytes.Equal(neg.Text.SRTP.Local, ansNeg.Text.SRTP.Remote) || !bytes.Equal(neg.Text.SRTP.Remote, ansNeg.Text.SRTP.Local) {
		t.Fatalf("offerer: text %+v keys do not cross, call encrypted %t", neg.Text, neg.Encrypted())
	}

	// A peer that answers our SRTP text in the clear loses text only.
	plainText := strings.Replace(string(answer), "m=text 6004 RTP/SAVP", "m=text 6004 RTP/AVP", 1)
	neg, err = ParseAnswer([]byte(plainText))
	if err == nil {
		neg.Text, err = ParseText([]byte(plainText))
	}
	if err != nil || neg.Text == nil {
		t.Fatalf("parse: %v, text %+v", err, neg.Text)
	}
	if err := keys.ApplyAnswer([]byte(plainText), &neg); err != nil || neg.Text != nil || !neg.Encrypted() {
		t.Errorf("plain text answer: %v, text %+v, call encrypted %t: want text dropped, the rest encrypted", err, neg.Text, neg.Encrypted())
	}
}
