package webphone

import (
	"testing"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/google/go-cmp/cmp"
	"github.com/pion/rtcp"
)

// TestSeqGap: padding before the stream starts costs nothing, padding
// inside it is closed up (also across the 16-bit wrap), a real gap stays.
func TestSeqGap(t *testing.T) {
	type pkt struct {
		seq     uint16
		padding bool
	}
	in := []pkt{{10, true}, {11, false}, {12, false}, {13, true}, {14, true}, {15, false}, {17, false},
		{65535, false}, {0, true}, {1, false}}
	want := []int{-1, 11, 12, -1, -1, 13, 15, 65533, -1, 65534}
	var g seqGap
	var got []int
	for _, p := range in {
		seq, ok := g.next(p.seq, p.padding)
		if !ok {
			got = append(got, -1)
			continue
		}
		got = append(got, int(seq))
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("forwarded sequence numbers (-want +got):\n%s", d)
	}
}

// TestRTCPDemux: RTCP is told from RTP on a muxed port (RFC 5761), and
// only PLI and FIR ask the page for a keyframe.
func TestRTCPDemux(t *testing.T) {
	raw := func(p ...rtcp.Packet) []byte {
		b, err := rtcp.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rtpPkt := []byte{0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1}
	for _, tt := range []struct {
		name      string
		b         []byte
		rtcp, key bool
	}{
		{"rtp", rtpPkt, false, false},
		{"rtp pt 0 marker", []byte{0x80, 0x80, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1}, false, false},
		{"pli", raw(&rtcp.PictureLossIndication{MediaSSRC: 1}), true, true},
		{"fir", raw(&rtcp.FullIntraRequest{MediaSSRC: 1, FIR: []rtcp.FIREntry{{SSRC: 1}}}), true, true},
		{"receiver report", raw(&rtcp.ReceiverReport{SSRC: 1}), true, false},
		{"nack", raw(&rtcp.TransportLayerNack{MediaSSRC: 1, Nacks: []rtcp.NackPair{{PacketID: 3}}}), true, false},
		{"rr then pli", raw(&rtcp.ReceiverReport{SSRC: 1}, &rtcp.PictureLossIndication{MediaSSRC: 1}), true, true},
		{"short", []byte{0x80}, false, false},
	} {
		if got := isRTCP(tt.b); got != tt.rtcp {
			t.Errorf("%s: isRTCP = %v", tt.name, got)
		}
		if tt.rtcp {
			if got := wantsKeyframe(tt.b); got != tt.key {
				t.Errorf("%s: wantsKeyframe = %v", tt.name, got)
			}
		}
	}
}

// TestRelayOffer: the X-Z5-* headers of an offer to a station, and whom
// the hearing leg calls for each direction.
func TestRelayOffer(t *testing.T) {
	req := sipmsg.NewRequest(sipmsg.INVITE, sipmsg.Uri{Scheme: "sip", User: "ca-1001", Host: "mcs.z5.test"})
	if relayOfferOf(req) != nil {
		t.Error("an ordinary INVITE read as a relay offer")
	}
	for name, v := range map[string]string{"X-Z5-Relay-Call": "abc@x", "X-Z5-Direction": "emergency", "X-Z5-Dialed": "911",
		"X-Z5-User": "2025550102", "X-Z5-Caller": "2025550102", "X-Z5-Location": "1 Main St, Springfield, IL 62701",
		"X-Z5-Callback": "2025550102"} {
		req.AppendHeader(sipmsg.NewHeader(name, v))
	}
	got := relayOfferOf(req)
	want := &relayOffer{RelayCall: "abc@x", Direction: "emergency", Dialed: "911", User: "2025550102", Caller: "2025550102",
		Location: "1 Main St, Springfield, IL 62701", Callback: "2025550102"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("offer (-want +got):\n%s", d)
	}
	for _, tt := range []struct {
		o    relayOffer
		want string
	}{
		{relayOffer{Direction: "outbound", Dialed: "2125550123", User: "2025550102"}, "2125550123"},
		{relayOffer{Direction: "emergency", Dialed: "911", User: "2025550102"}, "911"},
		{relayOffer{Direction: "inbound", Dialed: "2025550102", User: "2025550102", Caller: "2125550123"}, "2025550102"},
	} {
		if got := tt.o.hearingTarget(); got != tt.want {
			t.Errorf("%s: hearing leg to %q, want %q", tt.o.Direction, got, tt.want)
		}
	}
}
