package relay

import (
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// testStream is a stream as the SDP of a call would leave it: the caller
// signals from 198.51.100.7 and offered 10.0.0.5:4000 (RTCP 4001), the callee
// signals from 192.0.2.9 and answered 10.1.0.9:5000 (RTCP 5001). Both are
// behind NAT: their SDP addresses are not their signalling addresses, so
// nothing goes to those until each side latched.
func testStream(mux bool) *stream {
	s := &stream{media: "audio", enabled: true, policy: &dstPolicy{}}
	s.legs[SideA] = leg{allowed: netip.MustParseAddr("198.51.100.7"), hasSDP: true, mux: mux, ep: [2]endpoint{
		{sdp: netip.MustParseAddrPort("10.0.0.5:4000")}, {sdp: netip.MustParseAddrPort("10.0.0.5:4001")}}}
	s.legs[SideB] = leg{allowed: netip.MustParseAddr("192.0.2.9"), hasSDP: true, mux: mux, ep: [2]endpoint{
		{sdp: netip.MustParseAddrPort("10.1.0.9:5000")}, {sdp: netip.MustParseAddrPort("10.1.0.9:5001")}}}
	return s
}

// publicStream is testStream with clients on public addresses: each SDP
// names its side's signalling IP.
func publicStream() *stream {
	s := testStream(false)
	s.legs[SideA].ep = [2]endpoint{{sdp: netip.MustParseAddrPort("198.51.100.7:4000")}, {sdp: netip.MustParseAddrPort("198.51.100.7:4001")}}
	s.legs[SideB].ep = [2]endpoint{{sdp: netip.MustParseAddrPort("192.0.2.9:5000")}, {sdp: netip.MustParseAddrPort("192.0.2.9:5001")}}
	return s
}

// pkt is a datagram written in hex, spaces for readability.
func pkt(h string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(h, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

const (
	rtpPCMU   = "80 00 0001 00000000 11111111 ffff"                                         // V=2 PT=0 seq 1
	rtpPCMU2  = "80 00 0002 000000a0 11111111 ffff"                                         // seq 2
	rtpOther  = "80 00 0001 00000000 33333333 ffff"                                         // another SSRC
	rtcpRR    = "81 c9 0007 22222222 11111111 00000000 00000000 00000000 00000000 00000000" // RR, one block
	dtlsHello = "16 fefd 0000 0000 0000 0000 0001 01"
	// Payloads of other protocols whose first byte falls in a range RFC
	// 7983 gives to DTLS or TURN.
	snmpGet   = "30 26 02 01 01 04 06 70 75 62 6c 69 63 a0 19 02 04 12345678 0201 00 0201 00 300b 3009 0605 2b06010201 0500"
	syslogMsg = "3c 33 34 3e 4f 63 74 20 31 31 20 32 32 3a 31 34 3a 31 35 20 68 6f 73 74 20 73 75 3a 20 78" // "<34>Oct 11 22:14:15 host su: x"
	sipInvite = "49 4e 56 49 54 45 20 73 69 70 3a 31 30 30 40 74 72 75 6e 6b 20 53 49 50 2f 32 2e 30 0d 0a" // "INVITE sip:100@trunk SIP/2.0\r\n"
	stunBind  = "00 01 0000 2112a442 000000000000000000000000"
	turnData  = "40 00 0004 deadbeef"
)

func TestDecide(t *testing.T) {
	type in struct {
		side Side
		comp component
		data string
		src  string
	}
	type want struct {
		verdict verdict
		dst     string
		out     component
		latched bool
		steady  bool // may move to the kernel
	}
	type step struct {
		in   in
		want want
	}
	tests := []struct {
		name   string
		stream func() *stream
		steps  []step
	}{
		{name: "behind NAT: latch, then forward both ways; strangers and hijackers dropped", stream: func() *stream { return testStream(false) }, steps: []step{
			// Not the caller's signalling IP: never forwarded, never latched.
			{in{SideA, compRTP, rtpPCMU, "203.0.113.66:4000"}, want{verdict: verdictStranger}},
			// Garbage from the right IP does not latch.
			{in{SideA, compRTP, "00", "198.51.100.7:31000"}, want{verdict: verdictMalformed}},
			{in{SideA, compRTP, "ff 00 0001", "198.51.100.7:31000"}, want{verdict: verdictMalformed}},
			// Nor does another protocol, or DTLS the call did not negotiate.
			{in{SideA, compRTP, sipInvite, "198.51.100.7:31000"}, want{verdict: verdictMalformed}},
			{in{SideA, compRTP, dtlsHello, "198.51.100.7:31000"}, want{verdict: verdictMalformed}},
			// First RTP from the caller's IP latches that exact ip:port. The
			// callee has not sent yet and its SDP names a private address,
			// not its signalling IP: the packet goes nowhere.
			{in{SideA, compRTP, rtpPCMU, "198.51.100.7:31000"}, want{verdict: verdictNoPeer, out: compRTP, latched: true}},
			// Same IP, other port: a hijack attempt.
			{in{SideA, compRTP, rtpPCMU2, "198.51.100.7:31002"}, want{verdict: verdictStranger}},
			{in{SideA, compRTP, rtpPCMU2, "198.51.100.7:31000"}, want{verdict: verdictNoPeer, out: compRTP}},
			// The callee latches from behind its NAT; the caller gets it at
			// its latched address, not the private one in its SDP.
			{in{SideB, compRTP, rtpPCMU, "[::ffff:192.0.2.9]:40000"}, want{verdictForward, "198.51.100.7:31000", compRTP, true, true}},
			// Now the caller's media follows the callee's latched address.
			// RTP between two latched ends is settled: it may move to the
			// kernel; RTCP and media to an unlatched SDP address never do.
			{in{SideA, compRTP, rtpPCMU, "198.51.100.7:31000"}, want{verdictForward, "192.0.2.9:40000", compRTP, false, true}},
			// RTCP on port+1 latches separately.
			{in{SideA, compRTCP, rtcpRR, "198.51.100.7:31001"}, want{verdict: verdictNoPeer, out: compRTCP, latched: true}},
			{in{SideB, compRTCP, rtcpRR, "192.0.2.9:40001"}, want{verdictForward, "198.51.100.7:31001", compRTCP, true, false}},
			{in{SideB, compRTCP, rtcpRR, "192.0.2.9:40009"}, want{verdict: verdictStranger}},
			// Without negotiated rtcp-mux, RTCP sent to the RTP port still
			// reaches the peer's RTCP port.
			{in{SideA, compRTP, rtcpRR, "198.51.100.7:31000"}, want{verdictForward, "192.0.2.9:40001", compRTCP, false, false}},
			// Latched peers cannot use the relay for other protocols.
			{in{SideB, compRTP, dtlsHello, "192.0.2.9:40000"}, want{verdict: verdictMalformed}},
			{in{SideB, compRTP, snmpGet, "192.0.2.9:40000"}, want{verdict: verdictMalformed}},
			{in{SideB, compRTP, syslogMsg, "192.0.2.9:40000"}, want{verdict: verdictMalformed}},
			{in{SideB, compRTP, sipInvite, "192.0.2.9:40000"}, want{verdict: verdictMalformed}},
			{in{SideB, compRTP, stunBind, "192.0.2.9:40000"}, want{verdict: verdictMalformed}},
			{in{SideB, compRTP, turnData, "192.0.2.9:40000"}, want{verdict: verdictMalformed}},
		}},
		{name: "rtcp-mux keeps RTCP on the RTP path", stream: func() *stream { return testStream(true) }, steps: []step{
			{in{SideA, compRTP, rtcpRR, "198.51.100.7:31000"}, want{verdict: verdictNoPeer, out: compRTP, latched: true}},
			{in{SideA, compRTP, rtpPCMU, "198.51.100.7:31000"}, want{verdict: verdictNoPeer, out: compRTP}},
			{in{SideB, compRTP, rtcpRR, "192.0.2.9:40000"}, want{verdictForward, "198.51.100.7:31000", compRTP, true, false}},
			{in{SideA, compRTCP, rtcpRR, "198.51.100.7:31000"}, want{verdictForward, "192.0.2.9:40000", compRTP, true, false}},
			{in{SideA, compRTP, rtpPCMU, "198.51.100.7:31000"}, want{verdictForward, "192.0.2.9:40000", compRTP, false, true}},
		}},
		{name: "SDP names the signalling IP: only the announced ports latch, and media may go there first", stream: publicStream, steps: []step{
			// A host sharing the caller's address, on another port.
			{in{SideA, compRTP, rtpPCMU, "198.51.100.7:4002"}, want{verdict: verdictStranger}},
			{in{SideA, compRTCP, rtcpRR, "198.51.100.7:4003"}, want{verdict: verdictStranger}},
			// The caller's announced port latches; the callee's SDP names
			// its signalling IP, so media may go there before it latches.
			{in{SideA, compRTP, rtpPCMU, "198.51.100.7:4000"}, want{verdictForward, "192.0.2.9:5000", compRTP, true, false}},
			{in{SideB, compRTP, rtpPCMU, "192.0.2.9:5002"}, want{verdict: verdictStranger}},
			{in{SideA, compRTP, rtpPCMU2, "198.51.100.7:4000"}, want{verdictForward, "192.0.2.9:5000", compRTP, false, false}},
			{in{SideB, compRTP, rtpPCMU, "192.0.2.9:5000"}, want{verdictForward, "198.51.100.7:4000", compRTP, true, true}},
			{in{SideA, compRTCP, rtcpRR, "198.51.100.7:4001"}, want{verdictForward, "192.0.2.9:5001", compRTCP, true, false}},
		}},
		{name: "a=ssrc: only a packet with an announced SSRC latches", stream: func() *stream {
			s := testStream(false)
			s.legs[SideA].ssrcs = []uint32{0x11111111}
			s.legs[SideB].ssrcs = []uint32{0x22222222}
			return s
		}, steps: []step{
			{in{SideA, compRTP, rtpOther, "198.51.100.7:31000"}, want{verdict: verdictStranger}},
			{in{SideA, compRTP, rtpPCMU, "198.51.100.7:31000"}, want{verdict: verdictNoPeer, out: compRTP, latched: true}},
			// RTCP proves by its sender SSRC.
			{in{SideB, compRTCP, "81 c9 0007 33333333 11111111 00000000 00000000 00000000 00000000 00000000", "192.0.2.9:40001"}, want{verdict: verdictStranger}},
			{in{SideB, compRTCP, rtcpRR, "192.0.2.9:40001"}, want{verdict: verdictNoPeer, out: compRTCP, latched: true}},
			{in{SideB, compRTP, rtpOther, "192.0.2.9:40000"}, want{verdict: verdictStranger}},
		}},
		{name: "DTLS crosses when both sides negotiated it", stream: func() *stream {
			s := testStream(false)
			s.legs[SideA].dtls, s.legs[SideB].dtls = true, true
			return s
		}, steps: []step{
			{in{SideB, compRTP, dtlsHello, "192.0.2.9:40000"}, want{verdict: verdictNoPeer, out: compRTP, latched: true}},
			{in{SideA, compRTP, dtlsHello, "198.51.100.7:31000"}, want{verdictForward, "192.0.2.9:40000", compRTP, true, false}},
			{in{SideA, compRTP, stunBind, "198.51.100.7:31000"}, want{verdict: verdictMalformed}},
		}},
		{name: "a private or loopback source is no customer: it never latches", stream: func() *stream {
			s := testStream(false)
			s.legs[SideA].allowed = netip.MustParseAddr("10.0.0.5")
			s.legs[SideB].allowed = netip.MustParseAddr("127.0.0.1")
			return s
		}, steps: []step{
			{in{SideA, compRTP, rtpPCMU, "10.0.0.5:4000"}, want{verdict: verdictStranger}},
			{in{SideB, compRTP, rtpPCMU, "127.0.0.1:5000"}, want{verdict: verdictStranger}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.stream()
			now := time.Unix(1700000000, 0)
			for i, st := range tt.steps {
				d := s.decide(st.in.side, st.in.comp, pkt(st.in.data), netip.MustParseAddrPort(st.in.src), now)
				var dst netip.AddrPort
				if st.want.dst != "" {
					dst = netip.MustParseAddrPort(st.want.dst)
				}
				w := decision{verdict: st.want.verdict, dst: dst, out: st.want.out, latched: st.want.latched, steady: st.want.steady}
				if d != w {
					t.Errorf("step %d %+v: got %+v, want %+v", i, st.in, d, w)
				}
				now = now.Add(20 * time.Millisecond)
			}
		})
	}
}

func TestDecideNoPeerAndDisabled(t *testing.T) {
	s := testStream(false)
	// The callee is on hold (c=0.0.0.0) and never latched.
	s.legs[SideB].ep = [2]endpoint{}
	src := netip.MustParseAddrPort("198.51.100.7:31000")
	if d := s.decide(SideA, compRTP, pkt(rtpPCMU), src, time.Now()); d.verdict != verdictNoPeer || !d.latched {
		t.Errorf("to a side without address: %+v, want no_peer and latched", d)
	}
	s.enabled = false
	if d := s.decide(SideA, compRTP, pkt(rtpPCMU), src, time.Now()); d.verdict != verdictDisabled {
		t.Errorf("disabled stream: %+v", d)
	}
	if got := s.legs[SideA].packets; got != 1 {
		t.Errorf("packets = %d, want 1", got)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		data string
		want kind
	}{
		{"", kindUnknown},
		{stunBind, kindSTUN},
		{"00 01 0000 2112a442", kindUnknown},
		{"00 01 0004 2112a442 000000000000000000000000", kindUnknown}, // length past the end
		{"00 01 0000 deadbeef 000000000000000000000000", kindUnknown}, // no magic cookie
		{dtlsHello, kindDTLS},
		{"16 fefd 0000 0000 0000 0000 0010 01", kindUnknown}, // record length past the end
		{"16 0301 0000 0000 0000 0000 0001 01", kindUnknown}, // TLS, not DTLS
		{"10 00 0000 5a525450 00000000", kindZRTP},
		{"10 00 0000 00000000 00000000", kindUnknown}, // no ZRTP cookie
		{turnData, kindTURN},
		{"40 00 0010 deadbeef", kindUnknown}, // channel data past the end
		{snmpGet, kindUnknown},
		{syslogMsg, kindUnknown},
		{sipInvite, kindUnknown},
		{rtpPCMU, kindRTP},
		{"80 00 0001", kindUnknown},                                 // RTP shorter than its header
		{"80 e0 0001 00000000 11111111", kindRTP},                   // PT 96 with marker
		{"82 00 0001 00000000 11111111 00000001", kindUnknown},      // two CSRCs announced, one there
		{"82 00 0001 00000000 11111111 00000001 00000002", kindRTP}, // two CSRCs
		{"90 00 0001 00000000 11111111 bede 0001", kindUnknown},     // extension longer than the packet
		{"90 00 0001 00000000 11111111 bede 0001 10ff0000", kindRTP},
		{rtcpRR, kindRTCP},                            // 201
		{"80 c8 0001 22222222", kindRTCP},             // SR header, length 1 word
		{"80 c8 0006 22222222", kindUnknown},          // SR claiming 28 bytes in 8
		{"80 c8 00", kindUnknown},                     // too short for RTCP
		{"80 df 0001 22222222", kindRTCP},             // 223, last RTCP type
		{"80 e0 0000 22222222 00000000", kindRTP},     // 224 is RTP again
		{"c0 00 0001 00000000 11111111", kindUnknown}, // version 3
		{"7f", kindUnknown},
	}
	for _, tt := range tests {
		if got := classify(pkt(tt.data)); got != tt.want {
			t.Errorf("classify(%s) = %d, want %d", tt.data, got, tt.want)
		}
	}
}
