package relay

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var advertise = netip.MustParseAddr("203.0.113.5")

// sdpStep is one description passing through the relay. In want, {Pk} is
// the k-th port pair the relay hands out (in allocation order) and {Pk+1}
// its RTCP port: stream 0 takes P0 (caller side) and P1 (callee side),
// the next stream P2 and P3, and so on.
type sdpStep struct {
	from Side
	sdp  string // in and want in one text, as sdpSplit reads it
	in   string
	want string
	err  string // substring of the expected error; want is then unused
}

var sdpChange = regexp.MustCompile(`\[([^\[\]]*) => ([^\[\]]*)\]`)

// sdpSplit reads a description written as it passes through the relay:
// [x => y] stands for x in what the client sends and for y in what the
// relay forwards, and a line that is empty on one side is not on that side.
// Lines without a change are on both sides as written.
func sdpSplit(s string) (in, want string) {
	var ins, wants []string
	for _, l := range strings.Split(s, "\n") {
		if !sdpChange.MatchString(l) {
			ins, wants = append(ins, l), append(wants, l)
			continue
		}
		if a := sdpChange.ReplaceAllString(l, "$1"); strings.TrimSpace(a) != "" {
			ins = append(ins, a)
		}
		if b := sdpChange.ReplaceAllString(l, "$2"); strings.TrimSpace(b) != "" {
			wants = append(wants, b)
		}
	}
	return strings.Join(ins, "\n"), strings.Join(wants, "\n")
}

// session is the session part of a description from a client at addr
// (origin "user id version"), with both addresses as the relay rewrites them.
func session(origin, addr string) string {
	return fmt.Sprintf(`
		v=0
		o=%s IN IP4 [%s => 203.0.113.5]
		s=-
		c=IN IP4 [%[2]s => 203.0.113.5]
		t=0 0`, origin, addr)
}

func TestSDPSplit(t *testing.T) {
	in, want := sdpSplit("v=0\nc=IN IP4 [10.0.0.5 => 203.0.113.5]\n[a=ice-lite => ]\nm=audio [49170 => {P1}] RTP/AVP [0 => 0 8]\n[ => a=sendrecv]")
	if in != "v=0\nc=IN IP4 10.0.0.5\na=ice-lite\nm=audio 49170 RTP/AVP 0" {
		t.Errorf("in = %q", in)
	}
	if want != "v=0\nc=IN IP4 203.0.113.5\nm=audio {P1} RTP/AVP 0 8\na=sendrecv" {
		t.Errorf("want = %q", want)
	}
}

// offerAV and answerAV are a softphone's audio and video call as it
// reaches the relay, offerAVOut and answerAVOut as the relay forwards them.
var (
	offerAV, offerAVOut   = sdpSplit(offerAVSDP)
	answerAV, answerAVOut = sdpSplit(answerAVSDP)
)

const offerAVSDP = `
v=0
o=alice 2890844526 2890844526 IN IP4 [10.0.0.5 => 203.0.113.5]
s=-
c=IN IP4 [10.0.0.5 => 203.0.113.5]
t=0 0
[a=ice-lite => ]
m=audio [49170 => {P1}] RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtcp:[49171 => {P1+1}]
a=ptime:20
a=sendrecv
[a=ice-ufrag:F7gI => ]
[a=ice-pwd:x9cml/YzichV2+XlhiMu8g => ]
[a=candidate:1 1 UDP 2130706431 10.0.0.5 49170 typ host => ]
[a=candidate:1 2 UDP 2130706430 10.0.0.5 49171 typ host => ]
[a=end-of-candidates => ]
m=video [51372 => {P3}] RTP/AVPF 96
b=AS:2000
a=rtpmap:96 H264/90000
a=fmtp:96 profile-level-id=42e01f;packetization-mode=1
a=rtcp-fb:96 nack pli
a=rtcp-fb:96 ccm fir
a=rtcp-mux
a=sendrecv
`

const answerAVSDP = `
v=0
o=bob 2808844564 2808844564 IN IP4 [10.1.0.9 => 203.0.113.5]
s=-
c=IN IP4 [10.1.0.9 => 203.0.113.5]
t=0 0
m=audio [3456 => {P0}] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtcp:[3457 => {P0+1}] IN IP4 [10.1.0.9 => 203.0.113.5]
m=video [3458 => {P2}] RTP/AVPF 96
c=IN IP4 [10.1.0.10 => 203.0.113.5]
a=rtpmap:96 H264/90000
a=rtcp-fb:96 nack pli
a=rtcp-mux
`

func TestRewriteSDP(t *testing.T) {
	tests := []struct {
		name  string
		steps []sdpStep
	}{
		{"offer and answer, audio and video", []sdpStep{
			{from: SideA, in: offerAV, want: offerAVOut},
			{from: SideB, in: answerAV, want: answerAVOut},
		}},
		{"hold and resume re-INVITE keep the ports and move the version", []sdpStep{
			{from: SideA, in: offerAV, want: offerAVOut},
			{from: SideB, in: answerAV, want: answerAVOut},
			// The same offer again (a session refresh): nothing changed.
			{from: SideA, in: offerAV, want: offerAVOut},
			{from: SideA, sdp: `
				v=0
				o=alice 2890844526 2890844527 IN IP4 [10.0.0.5 => 203.0.113.5]
				s=-
				c=IN IP4 0.0.0.0
				t=0 0
				m=audio [49170 => {P1}] RTP/AVP 0
				a=rtpmap:0 PCMU/8000
				a=sendonly
				m=video [51372 => {P3}] RTP/AVPF 96
				a=rtpmap:96 H264/90000
				a=rtcp-mux
				a=inactive`},
			{from: SideB, sdp: session("bob 2808844564 2808844565", "10.1.0.9") + `
				m=audio [3456 => {P0}] RTP/AVP 0
				a=rtpmap:0 PCMU/8000
				a=recvonly
				m=video [3458 => {P2}] RTP/AVPF 96
				a=rtpmap:96 H264/90000
				a=rtcp-mux
				a=inactive`},
			// Resume, from a client that forgets to bump its version: the
			// relay's description changed, so its version moves anyway.
			{from: SideA, in: strings.Replace(offerAV, "2890844526 2890844526", "2890844526 2890844527", 1),
				want: strings.Replace(offerAVOut, "2890844526 2890844526", "2890844526 2890844528", 1)},
		}},
		{"port-0 m-line stays disabled until a re-INVITE enables it", []sdpStep{
			{from: SideA, sdp: session("- 1 1", "10.0.0.5") + `
				m=audio [49170 => {P1}] RTP/AVP 0
				m=video 0 RTP/AVP 96
				a=rtpmap:96 H264/90000`},
			{from: SideB, sdp: session("- 7 7", "10.1.0.9") + `
				m=audio [3456 => {P0}] RTP/AVP 0
				m=video 0 RTP/AVP 96`},
			{from: SideB, sdp: session("- 7 8", "10.1.0.9") + `
				m=audio [3456 => {P0}] RTP/AVP 0
				m=video [3458 => {P2}] RTP/AVP 96
				a=rtpmap:96 H264/90000`},
		}},
		{"a new m-line in a re-INVITE gets new ports", []sdpStep{
			{from: SideA, sdp: session("- 1 1", "10.0.0.5") + `
				m=audio [49170 => {P1}] RTP/AVP 0`},
			{from: SideA, sdp: session("- 1 2", "10.0.0.5") + `
				m=audio [49170 => {P1}] RTP/AVP 0
				m=text [49180 => {P3}] RTP/AVP 98
				a=rtpmap:98 t140/1000`},
		}},
		{"WebRTC-style 0.0.0.0 with candidates is not hold; IPv6 client", []sdpStep{
			{from: SideA, sdp: `
				v=0
				o=- 4611731400430051336 2 IN [IP6 => IP4] [2001:db8::5 => 203.0.113.5]
				s=-
				t=0 0
				a=group:BUNDLE 0
				m=audio [9 => {P1}] UDP/TLS/RTP/SAVPF 111
				c=IN IP4 [0.0.0.0 => 203.0.113.5]
				a=rtcp:[9 => {P1+1}] IN IP4 [0.0.0.0 => 203.0.113.5]
				[a=ice-ufrag:EsAw => ]
				[a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y => ]
				[a=ice-options:trickle => ]
				a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F
				a=setup:actpass
				a=mid:0
				a=sendrecv
				a=rtcp-mux
				a=rtpmap:111 opus/48000/2
				[a=candidate:1 1 udp 2113937151 2001:db8::5 51000 typ host => ]`},
		}},
		{"a TCP m-line cannot be relayed and is disabled", []sdpStep{
			{from: SideA, sdp: `
				v=0
				o=- 1 1 IN [IP6 => IP4] [2001:db8::5 => 203.0.113.5]
				s=-
				c=IN [IP6 => IP4] [2001:db8::5 => 203.0.113.5]
				t=0 0
				m=audio [49170 => {P1}] RTP/AVP 0
				m=message [2855 => 0] TCP/MSRP *
				a=accept-types:text/plain`},
		}},
		{"malformed descriptions are rejected", []sdpStep{
			{from: SideA, in: `hello`, err: "bad sdp"},
			{from: SideA, in: ``, err: "bad sdp"},
			{from: SideA, in: `
				v=0
				o=- 1 1 IN IP4 10.0.0.5
				s=-
				t=0 0
				m=audio 49170 RTP/AVP 0`, err: "m-line 1 (audio) has no c= line"},
			{from: SideA, in: `
				v=0
				o=- 1 1 IN IP4 10.0.0.5
				s=-
				c=IN IP4 224.2.1.1/127
				t=0 0
				m=audio 49170 RTP/AVP 0`, err: "multicast address 224.2.1.1"},
			{from: SideA, sdp: session("- 1 1", "10.0.0.5") + `
				m=audio 49170 RTP/AVP 0
				a=rtcp:seventy`, err: `m-line 1 (audio) a=rtcp:seventy: bad port "seventy"`},
			{from: SideA, sdp: session("- 1 1", "10.0.0.5") + `
				m=video 49170 RTP/AVP 96
				a=rtpmap:96 H264`, err: "m-line 1 (video) a=rtpmap:96 H264"},
			{from: SideA, sdp: session("- 1 1", "10.0.0.5") + `
				m=audio 70000 RTP/AVP 0`, err: "bad sdp"},
			{from: SideA, in: "v=0\no=- 1 1 IN IP4 10.0.0.5\ns=-\nc=IN IP4 10.0.0.5\nt=0 0\n" +
				strings.Repeat("m=audio 49170 RTP/AVP 0\n", 17), err: "17 m-lines, at most 16"},
			{from: SideA, in: "v=0\r\n" + strings.Repeat("a=x\r\n", maxSDPSize/5), err: "exceeds"},
			{from: Side(2), in: offerAV, err: "unknown side 2"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, pr := newTestRelay(t, relayOpts{advertise: advertise, maxStreams: maxStreams})
			r.pool.rng = nil // ports in order, as the expected descriptions name them
			c := r.NewCall("sdp-test", nil)
			defer c.Close()
			rep := portReplacer(pr.Min)
			for i, st := range tt.steps {
				if st.sdp != "" {
					st.in, st.want = sdpSplit(st.sdp)
				}
				in := sdpText(st.in)
				if st.in == "" {
					in = nil
				}
				got, err := c.RewriteSDP(st.from, in, loopback)
				if st.err != "" {
					if err == nil || !strings.Contains(err.Error(), st.err) {
						t.Fatalf("step %d: error %v, want one containing %q", i, err, st.err)
					}
					if st.from <= SideB && !errors.Is(err, ErrBadSDP) {
						t.Errorf("step %d: error %v does not wrap ErrBadSDP", i, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				want := string(sdpText(rep.Replace(st.want)))
				if d := cmp.Diff(strings.Split(want, "\r\n"), strings.Split(string(got), "\r\n")); d != "" {
					t.Errorf("step %d (from %s): rewritten SDP mismatch (-want +got):\n%s", i, st.from, d)
				}
			}
		})
	}
}

func portReplacer(base int) *strings.Replacer {
	var args []string
	for k := range 2 * maxStreams {
		p := base + 2*k
		args = append(args, fmt.Sprintf("{P%d+1}", k), strconv.Itoa(p+1), fmt.Sprintf("{P%d}", k), strconv.Itoa(p))
	}
	return strings.NewReplacer(args...)
}

func TestRewriteSDPSignalAddress(t *testing.T) {
	r, _ := newTestRelay(t, relayOpts{})
	c := r.NewCall("sig", nil)
	defer c.Close()
	for _, ip := range []netip.Addr{{}, netip.IPv4Unspecified()} {
		if _, err := c.RewriteSDP(SideA, sdpText(offerAV), ip); err == nil {
			t.Errorf("signalling address %v accepted", ip)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RewriteSDP(SideA, sdpText(offerAV), loopback); !errors.Is(err, ErrClosed) {
		t.Errorf("rewrite after close: %v, want ErrClosed", err)
	}
}
