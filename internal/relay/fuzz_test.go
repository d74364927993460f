package relay

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// FuzzRewriteSDP: any body either fails with ErrBadSDP or rewrites into a
// description that parses again, with the same m-lines on the relay's ports.
func FuzzRewriteSDP(f *testing.F) {
	for _, s := range []string{offerAV, answerAV, offerAVOut, `
		v=0
		o=- 1 1 IN IP4 10.0.0.5
		s=-
		c=IN IP4 0.0.0.0
		t=0 0
		m=audio 49170 RTP/AVP 0
		a=sendonly
		m=video 0 RTP/AVP 96
		m=message 2855 TCP/MSRP *`, `
		v=0
		o=- 1 1 IN IP6 ::1
		s=-
		t=0 0
		m=audio 9 UDP/TLS/RTP/SAVPF 111
		c=IN IP6 ::
		a=rtcp:9 IN IP6 ::
		a=candidate:1 1 udp 1 ::1 5000 typ host
		a=rtpmap:111 opus/48000/2`,
		"v=0\r\nc=IN IP4 224.0.0.1/2/3\r\n", "hello", ""} {
		f.Add([]byte(sdpText(s)))
	}
	adv := netip.MustParseAddr("203.0.113.5")
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := parseSDP(body)
		if err != nil {
			if !errors.Is(err, ErrBadSDP) {
				t.Fatalf("error does not wrap ErrBadSDP: %v", err)
			}
			return
		}
		ports := make([]int, len(p.streams))
		for i, st := range p.streams {
			if st.enabled() {
				ports[i] = 20000 + 4*i
			}
			// What RewriteSDP records must not panic either.
			s := &stream{}
			s.apply(SideA, &st, loopback)
			s.apply(SideB, &st, loopback)
		}
		out, err := p.rewrite(ports, adv, 7)
		if err != nil {
			if !errors.Is(err, ErrBadSDP) {
				t.Fatalf("rewrite error does not wrap ErrBadSDP: %v", err)
			}
			return
		}
		q, err := parseSDP(out)
		if err != nil {
			t.Fatalf("rewritten SDP does not parse: %v\n%q\nfrom\n%q", err, out, body)
		}
		if len(q.streams) != len(ports) {
			t.Fatalf("rewritten SDP has %d m-lines, want %d", len(q.streams), len(ports))
		}
		for i, st := range q.streams {
			if st.port != ports[i] {
				t.Fatalf("m-line %d port %d, want %d\n%s", i, st.port, ports[i], out)
			}
			if st.enabled() && st.addr.IsValid() && st.addr != adv {
				t.Fatalf("m-line %d still points at %s\n%s", i, st.addr, out)
			}
		}
	})
}

// FuzzPacket feeds arbitrary datagrams from a choice of sources into the
// forwarding decision: nothing panics, a stranger is never forwarded,
// once a side latched nothing from another address gets through, only RTP
// and RTCP cross, and only to addresses the policy allows.
func FuzzPacket(f *testing.F) {
	for _, h := range []string{rtpPCMU, rtpPCMU2, rtcpRR, dtlsHello, "", "80", "80 c8 0006 22222222",
		"81 c8 000c 22222222 00000000 00000000 00000000 00000000 00000000 11111111 00000000 00000000 00000000 00000000 00000000",
		"00 01 0000 2112a442 000000000000000000000000"} {
		for sel := range uint8(8) {
			f.Add(pkt(h), sel, true)
		}
	}
	sources := []netip.AddrPort{
		netip.MustParseAddrPort("198.51.100.7:31000"), // caller
		netip.MustParseAddrPort("198.51.100.7:31001"), // caller RTCP
		netip.MustParseAddrPort("198.51.100.7:31002"), // same IP, other port
		netip.MustParseAddrPort("192.0.2.9:40000"),    // callee
		netip.MustParseAddrPort("[::ffff:192.0.2.9]:40001"),
		netip.MustParseAddrPort("203.0.113.66:4000"), // stranger
		netip.MustParseAddrPort("[2001:db8::1]:4000"),
		netip.MustParseAddrPort("0.0.0.0:0"),
	}
	f.Fuzz(func(t *testing.T, data []byte, sel uint8, mux bool) {
		s := testStream(mux)
		now := time.Unix(1700000000, 0)
		// Latch the caller's RTP from 31000 first, then the fuzzed packet.
		s.decide(SideA, compRTP, pkt(rtpPCMU), sources[0], now)
		side := Side(sel >> 7)
		comp := component((sel >> 6) & 1)
		src := sources[int(sel)%len(sources)]
		for i := range 3 { // the same packet again: a latch must hold
			d := s.decide(side, comp, data, src, now.Add(time.Duration(i)*time.Millisecond))
			if d.verdict != verdictForward {
				continue
			}
			if !d.dst.IsValid() || !s.policy.allows(d.dst) {
				t.Fatalf("forward to a destination the policy refuses: %+v", d)
			}
			if k := classify(data); k != kindRTP && k != kindRTCP {
				t.Fatalf("forwarded a datagram of kind %d the call did not negotiate", k)
			}
			if src.Addr().Unmap() != s.legs[side].allowed {
				t.Fatalf("forwarded from %s, which may not latch side %d", src, side)
			}
			if l := s.legs[side].ep[comp].latched; l != netip.AddrPortFrom(src.Addr().Unmap(), src.Port()) {
				t.Fatalf("forwarded from %s, but side %d %s is latched to %s", src, side, comp, l)
			}
		}
		for _, l := range s.legs {
			_, _ = l.rx.lost(), l.rx.jitterMS()
			_, _ = l.reported.lost(), l.reported.jitterMS(8000)
		}
	})
}
