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
// signals from 192.0.2.9 and answered 10.1.0.9:5000 (RTCP 5001).
func testStream(mux bool) *stream {
	s := &stream{media: "audio", enabled: true}
	s.legs[SideA] = leg{allowed: netip.MustParseAddr("198.51.100.7"), hasSDP: true, mux: mux, ep: [2]endpoint{
		{sdp: netip.MustParseAddrPort("10.0.0.5:4000")}, {sdp: netip.MustParseAddrPort("10.0.0.5:4001")}}}
	s.legs[SideB] = leg{allowed: netip.MustParseAddr("192.0.2.9"), hasSDP: true, mux: mux, ep: [2]endpoint{
		{sdp: netip.MustParseAddrPort("10.1.0.9:5000")}, {sdp: netip.MustParseAddrPort("10.1.0.9:5001")}}}
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
	rtcpRR    = "81 c9 0007 22222222 11111111 00000000 00000000 00000000 00000000 00000000" // RR, one block
	dtlsHello = "16 fefd 0000 0000 0000 0000 0010 01"
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
	}
	tests := []struct {
		name  string
		mux   bool
		steps []struct {
			in   in
			want want
		}
	}{
		{name: "latch then forward both ways; strangers and hijackers dropped", steps: []struct {
			in   in
			want want
		}{
			// Not the caller's signalling IP: never forwarded, never latched.
			{in{SideA, compRTP, rtpPCMU, "203.0.113.66:4000"}, want{verdict: verdictStranger}},
			// Garbage from the right IP does not latch.
			{in{SideA, compRTP, "00", "198.51.100.7:31000"}, want{verdict: verdictMalformed}},
			{in{SideA, compRTP, "ff 00 0001", "198.51.100.7:31000"}, want{verdict: verdictMalformed}},
			// First RTP from the caller's IP latches that exact ip:port and
			// goes to the callee's SDP address (the callee has not sent yet).
			{in{SideA, compRTP, rtpPCMU, "198.51.100.7:31000"}, want{verdictForward, "10.1.0.9:5000", compRTP, true}},
			// Same IP, other port: a hijack attempt.
			{in{SideA, compRTP, rtpPCMU2, "198.51.100.7:31002"}, want{verdict: verdictStranger}},
			{in{SideA, compRTP, rtpPCMU2, "198.51.100.7:31000"}, want{verdictForward, "10.1.0.9:5000", compRTP, false}},
			// The callee latches from behind its NAT; the caller gets it at
			// its latched address, not the private one in its SDP.
			{in{SideB, compRTP, rtpPCMU, "[::ffff:192.0.2.9]:40000"}, want{verdictForward, "198.51.100.7:31000", compRTP, true}},
			// Now the caller's media follows the callee's latched address.
			{in{SideA, compRTP, rtpPCMU, "198.51.100.7:31000"}, want{verdictForward, "192.0.2.9:40000", compRTP, false}},
			// RTCP on port+1 latches separately and goes to the other
			// side's RTCP address.
			{in{SideA, compRTCP, rtcpRR, "198.51.100.7:31001"}, want{verdictForward, "10.1.0.9:5001", compRTCP, true}},
			{in{SideB, compRTCP, rtcpRR, "192.0.2.9:40001"}, want{verdictForward, "198.51.100.7:31001", compRTCP, true}},
			{in{SideB, compRTCP, rtcpRR, "192.0.2.9:40009"}, want{verdict: verdictStranger}},
			// Without negotiated rtcp-mux, RTCP sent to the RTP port still
			// reaches the peer's RTCP port.
			{in{SideA, compRTP, rtcpRR, "198.51.100.7:31000"}, want{verdictForward, "192.0.2.9:40001", compRTCP, false}},
			// DTLS is forwarded as it is (keys are end to end).
			{in{SideB, compRTP, dtlsHello, "192.0.2.9:40000"}, want{verdictForward, "198.51.100.7:31000", compRTP, false}},
		}},
		{name: "rtcp-mux keeps RTCP on the RTP path", mux: true, steps: []struct {
			in   in
			want want
		}{
			{in{SideA, compRTCP, rtcpRR, "198.51.100.7:31000"}, want{verdictForward, "10.1.0.9:5000", compRTP, true}},
			{in{SideA, compRTP, rtcpRR, "198.51.100.7:31000"}, want{verdictForward, "10.1.0.9:5000", compRTP, true}},
			{in{SideA, compRTP, rtpPCMU, "198.51.100.7:31000"}, want{verdictForward, "10.1.0.9:5000", compRTP, false}},
			{in{SideB, compRTP, rtcpRR, "192.0.2.9:40000"}, want{verdictForward, "198.51.100.7:31000", compRTP, true}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testStream(tt.mux)
			now := time.Unix(1700000000, 0)
			for i, st := range tt.steps {
				d := s.decide(st.in.side, st.in.comp, pkt(st.in.data), netip.MustParseAddrPort(st.in.src), now)
				var dst netip.AddrPort
				if st.want.dst != "" {
					dst = netip.MustParseAddrPort(st.want.dst)
				}
				w := decision{verdict: st.want.verdict, dst: dst, out: st.want.out, latched: st.want.latched}
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
		{"00 01 0000 2112a442 000000000000000000000000", kindSTUN},
		{"00 01 0000 2112a442", kindUnknown},
		{dtlsHello, kindDTLS},
		{"10 00 0000 5a525450 00000000", kindZRTP},
		{"40 00 0004", kindTURN},
		{rtpPCMU, kindRTP},
		{"80 00 0001", kindUnknown},                   // RTP shorter than its header
		{"80 e0 0001 00000000 11111111", kindRTP},     // PT 96 with marker
		{rtcpRR, kindRTCP},                            // 201
		{"80 c8 0006 22222222", kindRTCP},             // SR header only
		{"80 c8 00", kindUnknown},                     // too short for RTCP
		{"80 df 0000 22222222", kindRTCP},             // 223, last RTCP type
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
