package media

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// sdpText turns readable SDP (one line per line, leading tabs ignored) into
// the CRLF form on the wire.
func sdpText(s string) string {
	var b strings.Builder
	for line := range strings.Lines(strings.TrimSpace(s)) {
		b.WriteString(strings.TrimSpace(line) + "\r\n")
	}
	return b.String()
}

var (
	addrCmp  = cmpopts.EquateComparable(netip.AddrPort{})
	loopback = netip.MustParseAddr("127.0.0.1")
	peerIP   = netip.MustParseAddr("192.0.2.2")
	ap       = netip.AddrPortFrom
)

// ourSession starts every description TestBuildAnswer expects of us
// (session 7 on 127.0.0.1); peerSession starts the peer's descriptions
// whose session part does not matter to the case (192.0.2.2).
const (
	ourSession = `
		v=0
		o=z5 7 7 IN IP4 127.0.0.1
		s=z5
		c=IN IP4 127.0.0.1
		t=0 0`
	peerSession = `
		v=0
		o=- 1 1 IN IP4 192.0.2.2
		s=-
		c=IN IP4 192.0.2.2
		t=0 0`
)

// baresipOffer is what baresip 1.0 sends in an INVITE (captured; it has no
// H.264 here, so video is VP8 and the call is audio-only). PT 96 means opus
// in audio and VP8 in video.
const baresipOffer = `
v=0
o=- 1279136378 1020955985 IN IP4 192.0.2.2
s=-
c=IN IP4 192.0.2.2
t=0 0
a=tool:baresip 1.0.0
m=audio 40052 RTP/AVP 0 8 96 9 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:9 G722/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=label:1
a=rtcp-rsize
a=ssrc:1637140516 cname:sip:alice@127.0.0.1
a=minptime:20
a=ptime:20
m=video 40038 RTP/AVP 96
a=rtpmap:96 VP8/90000
a=fmtp:96 max-fs=3600
a=sendrecv
a=label:2
a=rtcp-rsize
a=ssrc:1435278601 cname:sip:alice@127.0.0.1
a=framerate:25.00
a=rtcp-fb:* nack pli
a=content:main
`

// baresipAnswer is baresip 1.0 answering BuildOffer's offer (captured):
// PCMU, no rtcp-mux, video declined.
const baresipAnswer = `
v=0
o=- 1860090227 436817630 IN IP4 192.0.2.2
s=-
c=IN IP4 192.0.2.2
t=0 0
a=tool:baresip 1.0.0
m=audio 40060 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendrecv
a=label:1
a=ssrc:2777234692 cname:sip:alice@127.0.0.1
a=minptime:20
a=ptime:20
m=video 0 RTP/AVP 0
`

// linphoneOffer has the shape of a Linphone 5 offer: opus first, RTCP on
// a=rtcp ports, rtcp-xr, H.264 in mode 0 and mode 1 after VP8, wildcard
// feedback.
const linphoneOffer = `
v=0
o=bob 3456 1234 IN IP4 192.0.2.20
s=Talk
c=IN IP4 192.0.2.20
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
a=record:off
m=audio 7078 RTP/AVP 96 97 0 8 101 100
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:101 telephone-event/48000
a=rtpmap:100 telephone-event/8000
a=rtcp:7079
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
m=video 9078 RTP/AVP 96 97 98
c=IN IP4 192.0.2.21
a=rtpmap:96 VP8/90000
a=rtpmap:97 H264/90000
a=fmtp:97 profile-level-id=42801F
a=rtpmap:98 H264/90000
a=fmtp:98 profile-level-id=42801F;packetization-mode=1
a=rtcp:9079 IN IP4 192.0.2.22
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
a=rtcp-fb:96 nack pli
a=rtcp-fb:96 ccm fir
a=rtcp-fb:98 nack pli
a=rtcp-fb:98 ccm fir
`

func TestBuildOffer(t *testing.T) {
	tests := []struct {
		name         string
		addr         netip.Addr
		audio, video int
		mux          bool
		want         string
	}{
		{"audio and video, rtcp-mux", loopback, 41000, 41002, true, `
			v=0
			o=z5 42 42 IN IP4 127.0.0.1
			s=z5
			c=IN IP4 127.0.0.1
			t=0 0
			m=audio 41000 RTP/AVP 0
			a=rtpmap:0 PCMU/8000
			a=ptime:20
			a=sendrecv
			a=rtcp-mux
			m=video 41002 RTP/AVP 96
			a=rtpmap:96 H264/90000
			a=fmtp:96 profile-level-id=42e01f;packetization-mode=1
			a=rtcp-fb:96 nack pli
			a=rtcp-fb:96 ccm fir
			a=sendrecv
			a=rtcp-mux`},
		{"audio only, rtcp on port+1, IPv6", netip.MustParseAddr("::1"), 41000, 0, false, `
			v=0
			o=z5 42 42 IN IP6 ::1
			s=z5
			c=IN IP6 ::1
			t=0 0
			m=audio 41000 RTP/AVP 0
			a=rtpmap:0 PCMU/8000
			a=ptime:20
			a=sendrecv
			a=rtcp:41001`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := buildOffer(tt.addr, tt.audio, tt.video, tt.mux, 42)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(sdpText(tt.want), string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []struct{ a, v int }{{0, 0}, {70000, 0}, {65535, 0}, {-1, 5000}} {
		if _, err := BuildOffer(loopback, bad.a, bad.v, false); !errors.Is(err, ErrBadConfig) {
			t.Errorf("BuildOffer(%d, %d): %v, want ErrBadConfig", bad.a, bad.v, err)
		}
	}
	if _, err := BuildOffer(netip.Addr{}, 4000, 0, true); !errors.Is(err, ErrBadConfig) {
		t.Errorf("no address: %v", err)
	}
}

func TestBuildAnswer(t *testing.T) {
	tests := []struct {
		name    string
		offer   string
		want    string
		wantNeg Negotiated
	}{
		{"baresip: PCMU, VP8 declined", baresipOffer, ourSession + `
			m=audio 50000 RTP/AVP 0
			a=rtpmap:0 PCMU/8000
			a=ptime:20
			a=sendrecv
			a=rtcp:50001
			m=video 0 RTP/AVP 96`,
			Negotiated{Audio: &StreamParams{
				Kind: KindAudio, Codec: "PCMU", PT: 0, ClockRate: 8000,
				Remote: ap(peerIP, 40052), RemoteRTCP: ap(peerIP, 40053), Send: true, Recv: true,
			}}},
		{"linphone: H.264 mode 1 chosen over mode 0, a=rtcp honoured", linphoneOffer, ourSession + `
			m=audio 50000 RTP/AVP 0
			a=rtpmap:0 PCMU/8000
			a=ptime:20
			a=sendrecv
			a=rtcp:50001
			m=video 50002 RTP/AVP 98
			a=rtpmap:98 H264/90000
			a=fmtp:98 profile-level-id=42801F;packetization-mode=1
			a=rtcp-fb:98 nack pli
			a=rtcp-fb:98 ccm fir
			a=sendrecv
			a=rtcp:50003`,
			Negotiated{
				Audio: &StreamParams{
					Kind: KindAudio, Codec: "PCMU", PT: 0, ClockRate: 8000,
					Remote: ap(netip.MustParseAddr("192.0.2.20"), 7078), RemoteRTCP: ap(netip.MustParseAddr("192.0.2.20"), 7079), Send: true, Recv: true,
				},
				Video: &StreamParams{
					Kind: KindVideo, Codec: "H264", PT: 98, ClockRate: 90000, Fmtp: "profile-level-id=42801F;packetization-mode=1",
					Remote: ap(netip.MustParseAddr("192.0.2.21"), 9078), RemoteRTCP: ap(netip.MustParseAddr("192.0.2.22"), 9079),
					Send: true, Recv: true, PLI: true, FIR: true,
				},
			}},
		{"H.264 mode 0 only: video declined, audio-only call", peerSession + `
			m=audio 4000 RTP/AVP 0
			a=rtcp-mux
			m=video 4002 RTP/AVP 97
			a=rtpmap:97 H264/90000
			a=fmtp:97 profile-level-id=42e01f
			a=rtcp-mux`, ourSession + `
			m=audio 50000 RTP/AVP 0
			a=rtpmap:0 PCMU/8000
			a=ptime:20
			a=sendrecv
			a=rtcp-mux
			m=video 0 RTP/AVP 97`,
			Negotiated{Audio: &StreamParams{
				Kind: KindAudio, Codec: "PCMU", PT: 0, ClockRate: 8000,
				Remote: ap(peerIP, 4000), RemoteRTCP: ap(peerIP, 4000), RTCPMux: true, Send: true, Recv: true,
			}}},
		{"text stream and SRTP audio declined, directions mirrored", peerSession + `
			a=sendonly
			m=audio 4000 RTP/SAVP 0
			m=text 4010 RTP/AVP 98
			a=rtpmap:98 t140/1000
			m=audio 4004 RTP/AVP 0
			m=video 4006 RTP/AVPF 96
			a=rtpmap:96 h264/90000
			a=fmtp:96 packetization-mode=1
			a=rtcp-fb:* nack pli
			a=recvonly`, ourSession + `
			m=audio 0 RTP/SAVP 0
			m=text 0 RTP/AVP 98
			m=audio 50000 RTP/AVP 0
			a=rtpmap:0 PCMU/8000
			a=ptime:20
			a=recvonly
			a=rtcp:50001
			m=video 50002 RTP/AVPF 96
			a=rtpmap:96 H264/90000
			a=fmtp:96 profile-level-id=42000a;packetization-mode=1
			a=rtcp-fb:96 nack pli
			a=sendonly
			a=rtcp:50003`,
			Negotiated{
				Audio: &StreamParams{
					Kind: KindAudio, Codec: "PCMU", PT: 0, ClockRate: 8000,
					Remote: ap(peerIP, 4004), RemoteRTCP: ap(peerIP, 4005), Recv: true,
				},
				Video: &StreamParams{
					Kind: KindVideo, Codec: "H264", PT: 96, ClockRate: 90000, Fmtp: "packetization-mode=1",
					Remote: ap(peerIP, 4006), RemoteRTCP: ap(peerIP, 4007), Send: true, PLI: true,
				},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, neg, err := buildAnswer([]byte(sdpText(tt.offer)), loopback, 50000, 50002, 7)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(sdpText(tt.want), string(got)); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantNeg, neg, addrCmp); diff != "" {
				t.Errorf("negotiated (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBuildAnswerErrors(t *testing.T) {
	tests := []struct {
		name  string
		offer string
		want  error
	}{
		{"not SDP", "INVITE sip:x SIP/2.0", ErrBadSDP},
		{"no common codec", peerSession + `
			m=audio 4000 RTP/AVP 8 96
			a=rtpmap:8 PCMA/8000
			a=rtpmap:96 opus/48000/2
			m=video 4002 RTP/AVP 96
			a=rtpmap:96 VP8/90000`, ErrNoCommonCodec},
		{"PCMU at the wrong rate", peerSession + `
			m=audio 4000 RTP/AVP 0
			a=rtpmap:0 PCMU/16000`, ErrNoCommonCodec},
		{"no connection address", `
			v=0
			o=- 1 1 IN IP4 192.0.2.2
			s=-
			t=0 0
			m=audio 4000 RTP/AVP 0`, ErrBadSDP},
		{"hostname for an address", `
			v=0
			o=- 1 1 IN IP4 192.0.2.2
			s=-
			c=IN IP4 peer.example
			t=0 0
			m=audio 4000 RTP/AVP 0`, ErrBadSDP},
		{"bad a=rtcp", peerSession + `
			m=audio 4000 RTP/AVP 0
			a=rtcp:port`, ErrBadSDP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := BuildAnswer([]byte(sdpText(tt.offer)), loopback, 50000, 50002)
			if !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseAnswer(t *testing.T) {
	tests := []struct {
		name   string
		answer string
		want   Negotiated
	}{
		{"baresip: audio only, rtcp on port+1", baresipAnswer, Negotiated{Audio: &StreamParams{
			Kind: KindAudio, Codec: "PCMU", PT: 0, ClockRate: 8000,
			Remote: ap(peerIP, 40060), RemoteRTCP: ap(peerIP, 40061), Send: true, Recv: true,
		}}},
		{"full answer with rtcp-mux, fmtp omitted", peerSession + `
			m=audio 30000 RTP/AVP 0 101
			a=rtpmap:101 telephone-event/8000
			a=rtcp-mux
			m=video 30002 RTP/AVP 96
			a=rtpmap:96 H264/90000
			a=rtcp-fb:96 ccm fir
			a=recvonly
			a=rtcp-mux`, Negotiated{
			Audio: &StreamParams{
				Kind: KindAudio, Codec: "PCMU", PT: 0, ClockRate: 8000,
				Remote: ap(peerIP, 30000), RemoteRTCP: ap(peerIP, 30000), RTCPMux: true, Send: true, Recv: true,
			},
			Video: &StreamParams{
				Kind: KindVideo, Codec: "H264", PT: 96, ClockRate: 90000,
				Remote: ap(peerIP, 30002), RemoteRTCP: ap(peerIP, 30002), RTCPMux: true, Send: true, FIR: true,
			},
		}},
		{"video in mode 0 is declined; hold address", `
			v=0
			o=- 1 2 IN IP4 0.0.0.0
			s=-
			c=IN IP4 0.0.0.0
			t=0 0
			m=audio 30000 RTP/AVP 0
			m=video 30002 RTP/AVP 96
			a=rtpmap:96 H264/90000
			a=fmtp:96 packetization-mode=0`, Negotiated{Audio: &StreamParams{
			Kind: KindAudio, Codec: "PCMU", PT: 0, ClockRate: 8000,
			Remote: ap(netip.IPv4Unspecified(), 30000), RemoteRTCP: ap(netip.IPv4Unspecified(), 30001), Recv: true,
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAnswer([]byte(sdpText(tt.answer)))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, addrCmp); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	declined := sdpText(peerSession + `
		m=audio 0 RTP/AVP 0
		m=video 0 RTP/AVP 96`)
	if _, err := ParseAnswer([]byte(declined)); !errors.Is(err, ErrNoCommonCodec) {
		t.Errorf("all declined: %v", err)
	}
	if _, err := ParseAnswer([]byte("v=0\r\nbogus")); !errors.Is(err, ErrBadSDP) {
		t.Errorf("garbage: %v", err)
	}
}

// TestOfferAnswerRoundTrip: our offer, answered by us, read back by us.
func TestOfferAnswerRoundTrip(t *testing.T) {
	for _, mux := range []bool{true, false} {
		offer, err := BuildOffer(loopback, 41000, 41002, mux)
		if err != nil {
			t.Fatal(err)
		}
		answer, atB, err := BuildAnswer(offer, peerIP, 52000, 52002)
		if err != nil {
			t.Fatal(err)
		}
		atA, err := ParseAnswer(answer)
		if err != nil {
			t.Fatal(err)
		}
		rtcpB := ap(peerIP, 52003)
		if mux {
			rtcpB = ap(peerIP, 52002)
		}
		if v := atA.Video; v == nil || v.PT != PTH264 || v.Remote != ap(peerIP, 52002) || v.RemoteRTCP != rtcpB ||
			v.RTCPMux != mux || !v.PLI || !v.FIR || !v.Send || !v.Recv {
			t.Errorf("mux=%t: A sees video %+v", mux, v)
		}
		if a := atB.Audio; a == nil || a.Remote != ap(loopback, 41000) || a.RTCPMux != mux {
			t.Errorf("mux=%t: B sees audio %+v", mux, a)
		}
	}
}

func FuzzParseAnswer(f *testing.F) {
	f.Add([]byte(sdpText(baresipAnswer)))
	f.Add([]byte(sdpText(baresipOffer)))
	f.Add([]byte(sdpText(linphoneOffer)))
	offer, _ := buildOffer(loopback, 41000, 41002, true, 1)
	f.Add(offer)
	f.Fuzz(func(t *testing.T, b []byte) {
		neg, err := ParseAnswer(b)
		if err == nil && neg.Audio == nil && neg.Video == nil {
			t.Fatal("no error and no stream")
		}
		for _, p := range []*StreamParams{neg.Audio, neg.Video} {
			if p != nil && (!p.Remote.IsValid() || !p.RemoteRTCP.IsValid() || p.Remote.Port() == 0) {
				t.Fatalf("invalid addresses in %+v", p)
			}
		}
		// The answering side must cope with the same input.
		BuildAnswer(b, loopback, 50000, 50002)
	})
}
