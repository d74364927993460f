package relay

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pion/rtcp"
	"github.com/pion/srtp/v3"
)

const (
	cryptoGCM = "a=crypto:1 AEAD_AES_128_GCM inline:oaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoQ=="
	cryptoCM  = "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:w8PDw8PDw8PDw8PDw8PDw8PDw8PDw8PDw8PDw8PD"
)

// TestSRTPSDPPassesThrough: the relay anchors an SDES offer like any
// other, keeping the profile and every a=crypto line byte for byte.
func TestSRTPSDPPassesThrough(t *testing.T) {
	r, _ := newTestRelay(t, relayOpts{})
	call := r.NewCall(t.Name(), nil)
	defer call.Close()
	a := newClient(t, false)
	in := a.describe(1, cryptoGCM+"\n"+cryptoCM)
	out, err := call.RewriteSDP(SideA, in, loopback)
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, want := range []string{" RTP/SAVP 0\r\n", " RTP/SAVPF 96\r\n", cryptoGCM + "\r\n", cryptoCM + "\r\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("rewritten offer lacks %q:\n%s", want, text)
		}
	}
	if n := strings.Count(text, "a=crypto:"); n != 4 {
		t.Errorf("%d a=crypto lines, want the 4 offered", n)
	}
	if strings.Contains(text, fmt.Sprintf(" %d ", a.audio.port())) {
		t.Errorf("client port left in the rewritten offer:\n%s", text)
	}
}

// TestRequireSRTP is the require_srtp decision on descriptions: only
// streams keyed end to end pass; disabled m-lines do not count.
func TestRequireSRTP(t *testing.T) {
	tests := []struct {
		name  string
		media string
		err   string // "" passes
	}{
		{"SDES audio and video", "m=audio 4000 RTP/SAVP 0\n" + cryptoCM + "\nm=video 4002 RTP/SAVPF 96\n" + cryptoGCM, ""},
		{"DTLS-SRTP", "m=audio 4000 UDP/TLS/RTP/SAVPF 111\na=fingerprint:sha-256 AB:CD\na=setup:actpass", ""},
		{"DTLS data channel", "m=application 4000 UDP/DTLS/SCTP webrtc-datachannel\na=fingerprint:sha-256 AB:CD", ""},
		{"plain video declined", "m=audio 4000 RTP/SAVP 0\n" + cryptoCM + "\nm=video 0 RTP/AVP 96", ""},
		{"plain audio", "m=audio 4000 RTP/AVP 0", "m-line 1 (audio) over RTP/AVP"},
		{"plain video beside SRTP audio", "m=audio 4000 RTP/SAVP 0\n" + cryptoCM + "\nm=video 4002 RTP/AVP 96", "m-line 2 (video) over RTP/AVP"},
		{"SAVP without keys", "m=audio 4000 RTP/SAVP 0", "m-line 1 (audio) over RTP/SAVP"},
		{"ZRTP proves nothing in SDP", "m=audio 4000 RTP/AVP 0\na=zrtp-hash:1.10 0123", "over RTP/AVP"},
		{"plain text", "m=audio 4000 RTP/SAVP 0\n" + cryptoCM + "\nm=text 4004 RTP/AVP 98\na=rtpmap:98 t140/1000", "m-line 2 (text)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parseSDP(sdpText("v=0\no=- 1 1 IN IP4 192.0.2.2\ns=-\nc=IN IP4 192.0.2.2\nt=0 0\n" + tt.media))
			if err != nil {
				t.Fatal(err)
			}
			err = p.requireSRTP()
			if tt.err == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrSRTPRequired) || !errors.Is(err, ErrBadSDP) || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err %v, want ErrSRTPRequired (an ErrBadSDP) naming %q", err, tt.err)
			}
		})
	}
}

// TestRequireSRTPRewrite: with RequireSRTP the relay refuses a plain
// offer before binding a port, and anchors an SRTP one.
func TestRequireSRTPRewrite(t *testing.T) {
	r, _ := newTestRelay(t, relayOpts{requireSRTP: true})
	call := r.NewCall(t.Name(), nil)
	defer call.Close()
	a := newClient(t, false)
	if _, err := call.RewriteSDP(SideA, a.sdp(1), loopback); !errors.Is(err, ErrSRTPRequired) {
		t.Fatalf("plain offer: %v, want ErrSRTPRequired", err)
	}
	if n := r.AllocatedPorts(); n != 0 {
		t.Errorf("%d ports bound for a refused offer", n)
	}
	if _, err := call.RewriteSDP(SideA, a.describe(1, cryptoCM), loopback); err != nil {
		t.Fatalf("SRTP offer refused: %v", err)
	}
	// Without the policy a plain offer goes through (the default).
	r2, _ := newTestRelay(t, relayOpts{})
	call2 := r2.NewCall(t.Name()+"-plain", nil)
	defer call2.Close()
	if _, err := call2.RewriteSDP(SideA, a.sdp(1), loopback); err != nil {
		t.Fatalf("plain offer without require_srtp: %v", err)
	}
}

// setupSRTPCall is setupCall with both sides offering SDES-SRTP; it also
// returns the rewritten offer.
func setupSRTPCall(t testing.TB, r *Relay) (*callSetup, []byte) {
	t.Helper()
	cs := &callSetup{call: r.NewCall(t.Name(), nil), a: newClient(t, false), b: newClient(t, false)}
	t.Cleanup(func() { cs.call.Close() })
	offer, err := cs.call.RewriteSDP(SideA, cs.a.describe(1, cryptoGCM), loopback)
	if err != nil {
		t.Fatal(err)
	}
	cs.relayBAudio, cs.relayBVideo = relayPorts(t, offer)
	answer, err := cs.call.RewriteSDP(SideB, cs.b.describe(1, cryptoGCM), loopback)
	if err != nil {
		t.Fatal(err)
	}
	cs.relayAAudio, cs.relayAVideo = relayPorts(t, answer)
	cs.call.Answered()
	return cs, offer
}

// srtpCtx is one endpoint's sending context for suite.
func srtpCtx(t testing.TB, profile srtp.ProtectionProfile) *srtp.Context {
	t.Helper()
	kl, _ := profile.KeyLen()
	sl, _ := profile.SaltLen()
	key := make([]byte, kl+sl)
	rand.Read(key)
	c, err := srtp.CreateContext(key[:kl], key[kl:], profile)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestForwardSRTP: real SRTP and SRTCP from both suites cross the relay
// byte for byte, latching on the clear headers and counted from them; the
// record says encrypted, and a plain call's says not.
func TestForwardSRTP(t *testing.T) {
	r, _ := newTestRelay(t, relayOpts{})
	cs, offer := setupSRTPCall(t, r)

	gcmA, gcmB := srtpCtx(t, srtp.ProtectionProfileAeadAes128Gcm), srtpCtx(t, srtp.ProtectionProfileAeadAes128Gcm)
	cmA := srtpCtx(t, srtp.ProtectionProfileAes128CmHmacSha1_80)
	enc := func(c *srtp.Context, p []byte) []byte {
		t.Helper()
		out, err := c.EncryptRTP(nil, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	encRTCP := func(c *srtp.Context, p []byte) []byte {
		t.Helper()
		out, err := c.EncryptRTCP(nil, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if classify(out) != kindRTCP {
			t.Fatalf("SRTCP %x not classified as RTCP", out)
		}
		return out
	}

	// Audio: caller sequence 1, 2, 4 (3 lost on the way), callee one.
	var sentA int
	for _, seq := range []uint16{1, 2, 4} {
		p := enc(gcmA, rtpPacket(0, seq, 160*uint32(seq), 0xa0a0a0a0, strings.Repeat("\xff", 160)))
		cs.a.audio.send(cs.relayAAudio, p)
		cs.b.audio.expect(p, cs.relayBAudio)
		sentA += len(p)
	}
	pb := enc(gcmB, rtpPacket(0, 9, 160, 0xb0b0b0b0, strings.Repeat("\x7f", 160)))
	cs.b.audio.send(cs.relayBAudio, pb)
	cs.a.audio.expect(pb, cs.relayAAudio)
	// SRTCP on the RTCP ports: encrypted report blocks, index and tag
	// after the payload.
	rr := encRTCP(gcmA, receiverReport(0xa0a0a0a0, 0xb0b0b0b0, 0, 80))
	cs.a.audioRTCP.send(plus1(cs.relayAAudio), rr)
	cs.b.audioRTCP.expect(rr, plus1(cs.relayBAudio))
	sentA += len(rr)

	// Video with rtcp-mux, the other suite, SRTCP on the RTP port.
	v := enc(cmA, rtpPacket(96, 100, 9000, 0xc0c0c0c0, strings.Repeat("\x65", 1100)))
	cs.a.video.send(cs.relayAVideo, v)
	cs.b.video.expect(v, cs.relayBVideo)
	sr, err := rtcp.Marshal([]rtcp.Packet{&rtcp.SenderReport{SSRC: 0xc0c0c0c0, PacketCount: 1}})
	if err != nil {
		t.Fatal(err)
	}
	vsr := encRTCP(cmA, sr)
	cs.a.video.send(cs.relayAVideo, vsr)
	cs.b.video.expect(vsr, cs.relayBVideo)

	ca := statsOf(cs.call, "caller", "audio")
	if ca.Packets != 4 || ca.Bytes != uint64(sentA) || ca.RTCP != 1 || ca.Lost != 1 {
		t.Errorf("caller audio %+v: want 4 packets, %d bytes, 1 RTCP, 1 lost (from the headers)", ca, sentA)
	}
	if cv := statsOf(cs.call, "caller", "video"); cv.Packets != 2 || cv.RTCP != 1 {
		t.Errorf("caller video %+v", cv)
	}
	for _, st := range cs.call.Stats() {
		if !st.Encrypted {
			t.Errorf("%s %s not recorded encrypted", st.Leg, st.Media)
		}
	}

	// A plain call is recorded unencrypted; one SRTP side is not enough.
	plain := r.NewCall(t.Name()+"-plain", nil)
	defer plain.Close()
	pa, pb2 := newClient(t, false), newClient(t, false)
	if _, err := plain.RewriteSDP(SideA, pa.describe(1, cryptoCM), loopback); err != nil {
		t.Fatal(err)
	}
	if _, err := plain.RewriteSDP(SideB, pb2.sdp(1), loopback); err != nil {
		t.Fatal(err)
	}
	for _, st := range plain.Stats() {
		if st.Encrypted {
			t.Errorf("plain %s %s recorded encrypted", st.Leg, st.Media)
		}
	}
	if !bytes.Contains(offer, []byte(cryptoGCM)) {
		t.Error("offer lost its crypto")
	}
}
