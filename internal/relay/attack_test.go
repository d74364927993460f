package relay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/testenv"
)

// The tests in this file mount the attacks of the open-internet review
// against a real relay on loopback sockets. Every address an SDP names is
// on 127.0.0.0/8, so a relay that failed a defence would still send only
// to loopback.

// peerOn binds a loopback socket on ip, skipping the test where the host
// does not route all of 127/8 to lo.
func peerOn(t *testing.T, ip string) *udpPeer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Skipf("%s not bindable: %v", ip, err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpPeer{t: t, conn: c}
}

// oneStream is an offer or answer with one audio m-line at addr:port;
// extra lines go at the end.
func oneStream(addr string, port int, extra ...string) []byte {
	return sdpText(fmt.Sprintf(`
		v=0
		o=- 7 1 IN IP4 %s
		s=-
		c=IN IP4 %s
		t=0 0
		m=audio %d RTP/AVP 0
		a=rtpmap:0 PCMU/8000
		%s`, addr, addr, port, strings.Join(extra, "\n")))
}

// relayPort has c rewrite body from side, signalled from src, and returns
// the relay address the other side sends the first stream's RTP to.
func relayPort(t *testing.T, c *Call, side Side, body []byte, src netip.Addr) netip.AddrPort {
	t.Helper()
	out, err := c.RewriteSDP(side, body, src)
	if err != nil {
		t.Fatal(err)
	}
	return streamPorts(t, out)[0]
}

// streamPorts is the RTP address of each m-line of a rewritten body.
func streamPorts(t *testing.T, body []byte) []netip.AddrPort {
	t.Helper()
	p, err := parseSDP(body)
	if err != nil {
		t.Fatalf("rewritten sdp: %v\n%s", err, body)
	}
	var out []netip.AddrPort
	for _, st := range p.streams {
		out = append(out, st.rtpPeer())
	}
	return out
}

// countArrivals reads until the socket has been quiet for a while and
// returns how many datagrams arrived.
func countArrivals(p *udpPeer) int {
	n := 0
	for {
		if _, _, ok := p.recv(300 * time.Millisecond); !ok {
			return n
		}
		n++
	}
}

func totalDropped(c *Call) uint64 {
	var n uint64
	for _, st := range c.Stats() {
		n += st.Dropped
	}
	return n
}

// TestAttackReflection (hole 1): a caller names a third party (the victim)
// in its offer, then makes the relay carry the callee's media and its own
// payloads of other protocols. The victim must get nothing.
func TestAttackReflection(t *testing.T) {
	reg := prometheus.NewRegistry()
	r, _ := newTestRelay(t, relayOpts{reg: reg})
	victim := peerOn(t, "127.0.0.1")
	attacker := peerOn(t, "127.0.0.2") // the caller's media socket
	callee := peerOn(t, "127.0.0.3")
	const n = 202

	// The offer, signalled from 127.0.0.2, names the victim's address for
	// RTP and for RTCP.
	c := r.NewCall("reflect", nil)
	defer c.Close()
	relayB := relayPort(t, c, SideA, oneStream("127.0.0.1", victim.port(), fmt.Sprintf("a=rtcp:%d", victim.port())), netip.MustParseAddr("127.0.0.2"))
	relayA := relayPort(t, c, SideB, oneStream("127.0.0.3", callee.port()), netip.MustParseAddr("127.0.0.3"))

	// The callee talks (RTP and RTCP) before the attacker ever sends.
	for i := range n {
		if i%2 == 0 {
			callee.send(relayB, rtpPacket(0, uint16(i), uint32(160*i), 0xc0c0c0c0, "callee media"))
		} else {
			callee.send(plus1(relayB), receiverReport(0xc0c0c0c0, 0xa0a0a0a0, 0, 0))
		}
	}
	if got := countArrivals(victim); got != 0 {
		t.Fatalf("%d of %d callee datagrams reached the victim named in the offer", got, n)
	}
	t.Logf("callee datagrams reaching the victim named in the offer: 0 of %d", n)

	// The attacker latches its own side, then sends payloads of other
	// protocols through the relay to the callee's (latched) address: none
	// may cross. RTP between the same sockets does, which shows the path
	// is open.
	attacker.send(relayA, rtpPacket(0, 1, 0, 0xa0a0a0a0, "latch"))
	callee.expect(rtpPacket(0, 1, 0, 0xa0a0a0a0, "latch"), relayB)
	payloads := []string{sipInvite, snmpGet, syslogMsg, stunBind, turnData, dtlsHello}
	for range n / len(payloads) {
		for _, p := range payloads {
			attacker.send(relayA, pkt(p))
		}
	}
	attacker.send(relayA, rtpPacket(0, 2, 160, 0xa0a0a0a0, "marker"))
	callee.expect(rtpPacket(0, 2, 160, 0xa0a0a0a0, "marker"), relayB)
	callee.expectNothing()
	if got := testenv.Metric(t, reg, "z5_relay_dropped_packets_total", "reason=malformed"); got != float64(n/len(payloads)*len(payloads)) {
		t.Errorf("malformed drops = %v, want %d", got, n/len(payloads)*len(payloads))
	}
	t.Logf("non-RTP payloads (SIP, SNMP, syslog, STUN, TURN, DTLS) forwarded: 0 of %d", n/len(payloads)*len(payloads))

	// The attacker answers a call of its own and names the victim: the
	// answer comes from 127.0.0.3's signalling, the victim is elsewhere.
	c2 := r.NewCall("reflect-answer", nil)
	defer c2.Close()
	caller2 := peerOn(t, "127.0.0.2")
	relayB2 := relayPort(t, c2, SideA, oneStream("127.0.0.2", caller2.port()), netip.MustParseAddr("127.0.0.2"))
	relayA2 := relayPort(t, c2, SideB, oneStream("127.0.0.1", victim.port()), netip.MustParseAddr("127.0.0.3"))
	for i := range n {
		caller2.send(relayA2, rtpPacket(0, uint16(i), uint32(160*i), 0xa1a1a1a1, "to the victim?"))
	}
	if got := countArrivals(victim); got != 0 {
		t.Fatalf("%d of %d datagrams reached the victim named in the answer", got, n)
	}
	_ = relayB2
	t.Logf("caller datagrams reaching the victim named in the answer: 0 of %d", n)
}

// TestAttackPortQuota (hole 5): one customer opens calls with many streams
// and probe sessions until refused; it holds no more than its quota, and
// another customer's call still gets its ports. Too many m-lines are
// refused as a bad description (488), not as exhaustion.
func TestAttackPortQuota(t *testing.T) {
	reg := prometheus.NewRegistry()
	const rangePorts, quota = 64, 16
	r, _ := newTestRelay(t, relayOpts{ports: rangePorts, reg: reg, perCustomer: quota, perSource: 2 * quota})
	evil := Owner{Customer: "1", Source: netip.MustParseAddr("127.0.0.2")}
	a := newClient(t, false)

	// Five m-lines: over the cap of four, refused before any port is bound.
	five := sdpText(string(oneStream("127.0.0.2", 4000)) + strings.Repeat("m=audio 4002 RTP/AVP 0\r\n", 4))
	c := r.NewCallFor(evil, "five", nil)
	if _, err := c.RewriteSDP(SideA, five, evil.Source); !errors.Is(err, ErrBadSDP) || errors.Is(err, ErrNoPorts) {
		t.Fatalf("five m-lines: %v, want ErrBadSDP", err)
	}
	c.Close()

	// Calls of two streams (8 ports) and probes of 2 pairs (4 ports), until
	// the relay says no.
	var refused error
	attempts := 0
	for i := 0; refused == nil && i < rangePorts; i++ {
		attempts++
		if i%2 == 0 {
			c := r.NewCallFor(evil, fmt.Sprintf("evil-%d", i), nil)
			t.Cleanup(func() { c.Close() })
			_, refused = c.RewriteSDP(SideA, a.sdp(1), evil.Source)
		} else {
			_, refused = r.OpenProbe(evil, probeKey, 2, time.Minute)
		}
	}
	if !errors.Is(refused, ErrQuota) {
		t.Fatalf("after %d attempts: %v, want ErrQuota", attempts, refused)
	}
	cust, _ := r.quota.held(evil)
	if cust > quota || r.AllocatedPorts() > quota {
		t.Fatalf("one customer holds %d ports (%d allocated), quota %d", cust, r.AllocatedPorts(), quota)
	}
	// The metric counts probe ports with call ports.
	if got := testenv.Metric(t, reg, "z5_relay_allocated_ports", ""); got != float64(r.AllocatedPorts()) {
		t.Errorf("z5_relay_allocated_ports = %v, allocated %d", got, r.AllocatedPorts())
	}
	// Other accounts from the same source stop at the per-source quota.
	for i := 2; ; i++ {
		o := Owner{Customer: fmt.Sprint(i), Source: evil.Source}
		c := r.NewCallFor(o, fmt.Sprintf("sock-%d", i), nil)
		t.Cleanup(func() { c.Close() })
		if _, err := c.RewriteSDP(SideA, a.sdp(1), evil.Source); err != nil {
			if !errors.Is(err, ErrQuota) {
				t.Fatalf("account %d: %v, want ErrQuota", i, err)
			}
			break
		}
	}
	_, src := r.quota.held(evil)
	if src > 2*quota {
		t.Fatalf("one source holds %d ports, quota %d", src, 2*quota)
	}

	// Another customer, elsewhere, still gets a video call.
	good := Owner{Customer: "99", Source: netip.MustParseAddr("127.0.0.3")}
	gc := r.NewCallFor(good, "good", nil)
	defer gc.Close()
	if _, err := gc.RewriteSDP(SideA, newClient(t, false).sdp(1), good.Source); err != nil {
		t.Fatalf("another customer's call: %v", err)
	}
	if got := testenv.Metric(t, reg, "z5_relay_quota_refusals_total", ""); got < 2 {
		t.Errorf("quota refusals metric = %v", got)
	}
	t.Logf("range %d ports: one customer holds %d (quota %d), one source %d (quota %d); another customer's call got its ports",
		rangePorts, cust, quota, src, 2*quota)
}

// TestAttackHijackBeforeLatch (hole 6): a host behind the caller's
// address, with no account, sprays every port of the range before the
// caller's first packet, then the callee talks. It must get none of it.
func TestAttackHijackBeforeLatch(t *testing.T) {
	const n = 100
	for _, tc := range []struct {
		name string
		// The caller's SDP address and extra lines: its signalling IP
		// (proof by port), or another address as behind NAT with a=ssrc
		// (proof by SSRC).
		sdpAddr string
		extra   []string
		ssrc    uint32
	}{
		{"sdp names the signalling address", "127.0.0.1", nil, 0xa0a0a0a0},
		{"behind NAT, a=ssrc", "127.0.0.9", []string{"a=ssrc:2694881440 cname:z5"}, 0xa0a0a0a0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, pr := newTestRelay(t, relayOpts{ports: 64})
			caller := peerOn(t, "127.0.0.1")
			callee := peerOn(t, "127.0.0.3")
			hijacker := peerOn(t, "127.0.0.1") // same address as the caller
			sig := netip.MustParseAddr("127.0.0.1")

			c := r.NewCall("hijack", nil)
			defer c.Close()
			relayB := relayPort(t, c, SideA, oneStream(tc.sdpAddr, caller.port(), tc.extra...), sig)
			relayA := relayPort(t, c, SideB, oneStream("127.0.0.3", callee.port()), netip.MustParseAddr("127.0.0.3"))

			// The spray: every port of the range, RTP with a guessed SSRC.
			for p := pr.Min; p <= pr.Max; p++ {
				hijacker.send(netip.AddrPortFrom(loopback, uint16(p)), rtpPacket(0, 1, 0, 0x5a5a5a5a, "hijack"))
			}
			// All four ports of the stream saw it and dropped it.
			waitFor(t, "spray dropped", func() bool { return totalDropped(c) >= 4 })

			for i := range n {
				callee.send(relayB, rtpPacket(0, uint16(i), uint32(160*i), 0xb0b0b0b0, "callee"))
			}
			// The caller's own first packet latches; media flows to it.
			caller.send(relayA, rtpPacket(0, 1, 0, tc.ssrc, "caller"))
			callee.expect(rtpPacket(0, 1, 0, tc.ssrc, "caller"), relayB)
			callee.send(relayB, rtpPacket(0, n, 160*n, 0xb0b0b0b0, "after latch"))

			if got := countArrivals(hijacker); got != 0 {
				t.Fatalf("hijacker got %d of %d callee packets", got, n+1)
			}
			got := countArrivals(caller)
			if got == 0 {
				t.Fatal("the caller got nothing after it latched")
			}
			t.Logf("hijacker got 0 of %d callee packets; the caller got %d", n+1, got)
		})
	}
}

// TestPortsAreUnpredictable: consecutive allocations do not walk the
// range, so seeing one call's ports does not give the next call's.
func TestPortsAreUnpredictable(t *testing.T) {
	p := newPortPool(20000, 20511) // 256 pairs
	prev, _ := p.get()
	next := 0
	const draws = 40
	for range draws {
		port, ok := p.get()
		if !ok {
			t.Fatal("pool ran dry")
		}
		if port == prev+2 {
			next++
		}
		prev = port
	}
	// A FIFO pool gives prev+2 every time.
	if next == draws {
		t.Fatalf("%d of %d allocations were the next pair", next, draws)
	}
	t.Logf("%d of %d allocations were the pair after the previous one", next, draws)
}
