package relay

import (
	"net/netip"
	"slices"
	"testing"
)

func TestDstPolicy(t *testing.T) {
	prod := &dstPolicy{
		customer: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")},
		provider: []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24"), netip.MustParsePrefix("10.20.9.0/24")},
		self:     []netip.Addr{netip.MustParseAddr("203.0.113.5")},
	}
	dev := &dstPolicy{loopback: true, self: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}
	tests := []struct {
		pol  *dstPolicy
		dst  string
		want bool
	}{
		{prod, "198.51.100.7:4000", true},      // a customer on the internet
		{prod, "[2001:4860::8888]:4000", true}, // and over IPv6
		{prod, "[::ffff:198.51.100.7]:4000", true},
		{prod, "198.51.100.7:0", false}, // no port
		{prod, "0.0.0.0:4000", false},
		{prod, "224.0.0.1:4000", false},       // multicast
		{prod, "255.255.255.255:4000", false}, // broadcast
		{prod, "127.0.0.1:5060", false},       // the relay host itself
		{prod, "[::1]:5060", false},
		{prod, "[::ffff:127.0.0.1]:5060", false},
		{prod, "203.0.113.5:5060", false}, // the relay's own address
		{prod, "198.18.1.114:443", false}, // a provider node
		{prod, "10.20.9.4:5060", false},   // provider inside customer space
		{prod, "10.20.3.4:4000", true},    // customer space on a private WAN
		{prod, "10.30.3.4:161", false},    // other private ranges
		{prod, "172.16.0.1:514", false},
		{prod, "192.168.1.1:5060", false},
		{prod, "169.254.169.254:80", false}, // link-local (cloud metadata)
		{prod, "100.64.0.1:4000", false},    // carrier-grade NAT inside
		{prod, "[fd00::1]:4000", false},     // unique local
		{prod, "[fe80::1]:4000", false},     // link-local
		{prod, "[fe80::1%eth0]:4000", false},
		{prod, "[64:ff9b::a00:1]:4000", false}, // NAT64 of 10.0.0.1
		{dev, "127.0.0.1:4000", true},          // the dev stack: loopback clients
		{dev, "127.0.0.3:4000", true},
		{dev, "10.0.0.1:4000", false},
	}
	for _, tt := range tests {
		if got := tt.pol.allows(netip.MustParseAddrPort(tt.dst)); got != tt.want {
			t.Errorf("allows(%s) with loopback=%v = %v, want %v", tt.dst, tt.pol.loopback, got, tt.want)
		}
	}
}

func TestLegDestAndProof(t *testing.T) {
	pol := &dstPolicy{}
	sig := netip.MustParseAddr("198.51.100.7")
	ap := netip.MustParseAddrPort
	rtp := pkt(rtpPCMU) // SSRC 11111111
	tests := []struct {
		name     string
		leg      leg
		src      string
		proves   bool
		wantDest string // RTP destination before latching
	}{
		{"NAT, no ssrc: first packet from the signalling IP", leg{allowed: sig, ep: [2]endpoint{{sdp: ap("10.0.0.5:4000")}, {}}}, "198.51.100.7:31000", true, ""},
		{"SDP names a third party: never a destination", leg{allowed: sig, ep: [2]endpoint{{sdp: ap("192.0.2.80:5060")}, {}}}, "198.51.100.7:31000", true, ""},
		{"SDP names the signalling IP: its port proves", leg{allowed: sig, ep: [2]endpoint{{sdp: ap("198.51.100.7:4000")}, {sdp: ap("198.51.100.7:4001")}}}, "198.51.100.7:4000", true, "198.51.100.7:4000"},
		{"and its RTCP port", leg{allowed: sig, ep: [2]endpoint{{sdp: ap("198.51.100.7:4000")}, {sdp: ap("198.51.100.7:4001")}}}, "198.51.100.7:4001", true, "198.51.100.7:4000"},
		{"another port of that IP does not", leg{allowed: sig, ep: [2]endpoint{{sdp: ap("198.51.100.7:4000")}, {sdp: ap("198.51.100.7:4001")}}}, "198.51.100.7:4002", false, "198.51.100.7:4000"},
		{"announced SSRC matches", leg{allowed: sig, ssrcs: []uint32{0x11111111}}, "198.51.100.7:31000", true, ""},
		{"announced SSRC differs", leg{allowed: sig, ssrcs: []uint32{0x22222222}}, "198.51.100.7:31000", false, ""},
		{"a signalling IP the policy refuses", leg{allowed: netip.MustParseAddr("10.0.0.5")}, "10.0.0.5:4000", false, ""},
		{"signalling IP the policy refuses is no destination either", leg{allowed: netip.MustParseAddr("10.0.0.5"), ep: [2]endpoint{{sdp: ap("10.0.0.5:4000")}, {}}}, "10.0.0.5:4000", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.leg.proves(kindRTP, rtp, ap(tt.src), pol); got != tt.proves {
				t.Errorf("proves(%s) = %v, want %v", tt.src, got, tt.proves)
			}
			var want netip.AddrPort
			if tt.wantDest != "" {
				want = ap(tt.wantDest)
			}
			if got := tt.leg.dest(compRTP, pol); got != want {
				t.Errorf("dest = %v, want %v", got, want)
			}
		})
	}
}

func TestQuota(t *testing.T) {
	a := Owner{Customer: "1", Source: netip.MustParseAddr("198.51.100.7")}
	a2 := Owner{Customer: "1", Source: netip.MustParseAddr("198.51.100.8")}
	b := Owner{Customer: "2", Source: netip.MustParseAddr("198.51.100.7")} // same source as a
	v6 := Owner{Customer: "3", Source: netip.MustParseAddr("2001:db8:1:2::1")}
	v6b := Owner{Customer: "4", Source: netip.MustParseAddr("2001:db8:1:2:ffff::9")} // same /64
	none := Owner{}
	q := &quota{perCustomer: 8, perSource: 12}
	steps := []struct {
		take bool // else give
		o    Owner
		n    int
		ok   bool
	}{
		{true, a, 4, true},
		{true, a, 4, true},
		{true, a2, 4, false}, // customer 1 at 8 from any source
		{true, b, 4, true},   // source at 12
		{true, b, 4, false},  // source full, customer 2 has room
		{false, a, 4, true},
		{true, b, 4, true},
		{true, v6, 8, true},
		{true, v6b, 8, false}, // IPv6 counts by /64
		{true, none, 100, true},
	}
	for i, st := range steps {
		if !st.take {
			q.give(st.o, st.n)
			continue
		}
		if got := q.take(st.o, st.n); got != st.ok {
			t.Errorf("step %d: take(%+v, %d) = %v, want %v", i, st.o, st.n, got, st.ok)
		}
	}
	for _, o := range []Owner{a, b, v6} {
		c, s := q.held(o)
		q.give(o, c)
		_ = s
	}
	if len(q.customers) != 0 || len(q.sources) != 0 {
		t.Errorf("after giving everything back: %v %v", q.customers, q.sources)
	}
}

// TestParseLatchProofs: what the SDP says that latching and forwarding use.
func TestParseLatchProofs(t *testing.T) {
	p, err := parseSDP(sdpText(`
		v=0
		o=- 1 1 IN IP4 198.51.100.7
		s=-
		c=IN IP4 198.51.100.7
		t=0 0
		a=fingerprint:sha-256 D2:FA:0E:C3
		m=audio 4000 UDP/TLS/RTP/SAVPF 111
		a=ssrc:2694881440 cname:z5
		a=ssrc:2694881440 msid:a b
		a=ssrc:12 cname:z5
		a=ssrc:notanumber cname:z5
		m=video 4002 RTP/AVP 96
		a=zrtp-hash:1.10 abcd
		m=audio 4004 RTP/SAVP 0`))
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		ssrcs      []uint32
		dtls, zrtp bool
	}
	want := []got{{[]uint32{2694881440, 12}, true, false}, {nil, false, true}, {nil, false, false}}
	for i, st := range p.streams {
		g := got{st.ssrcs, st.dtls, st.zrtp}
		if !slices.Equal(g.ssrcs, want[i].ssrcs) || g.dtls != want[i].dtls || g.zrtp != want[i].zrtp {
			t.Errorf("m-line %d: %+v, want %+v", i+1, g, want[i])
		}
	}
}

// TestAllowLocal: a socket the gateway registers on the relay's own
// address is allowed, exactly that port and only until released.
func TestAllowLocal(t *testing.T) {
	r := &Relay{dst: dstPolicy{
		provider: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
		self:     []netip.Addr{netip.MustParseAddr("203.0.113.5")},
	}}
	gw := netip.MustParseAddrPort("203.0.113.5:21000")
	if r.dst.allows(gw) {
		t.Fatal("own address allowed before AllowLocal")
	}
	release := r.AllowLocal(netip.MustParseAddrPort("[::ffff:203.0.113.5]:21000"))
	for _, tt := range []struct {
		dst  string
		want bool
	}{
		{"203.0.113.5:21000", true},
		{"[::ffff:203.0.113.5]:21000", true},
		{"203.0.113.5:21001", false}, // another port of the node
		{"203.0.113.6:21000", false}, // another provider address
		{"127.0.0.1:21000", false},
	} {
		if got := r.dst.allows(netip.MustParseAddrPort(tt.dst)); got != tt.want {
			t.Errorf("allows(%s) = %v, want %v", tt.dst, got, tt.want)
		}
	}
	release()
	if r.dst.allows(gw) {
		t.Error("own address still allowed after release")
	}
}
