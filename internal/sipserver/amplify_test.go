package sipserver

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/store"
)

// The UDP amplification attacks of issue 10 (holes 2 and 3), mounted
// against the real server on loopback. A UDP source is forged by sending
// from the "victim's" own socket: what the server sends back there is what
// a victim would receive. The forged requests name 198.18.0.99 in Via and
// Contact, so the test runs in a network namespace with only loopback
// (reexecInNetns): whatever the server did with those addresses would go
// nowhere.

func TestUDPAmplification(t *testing.T) {
	if os.Getenv("Z5_AMPLIFY_NETNS") == "1" {
		t.Run("forged INVITE answered once", testForgedInviteAnsweredOnce)
		t.Run("global ceiling on unauthenticated responses", testUnauthUDPCeiling)
		t.Run("nonce bound to the source", testNonceBoundToSource)
		t.Run("Z5 device refused over UDP", testZ5DeviceUDPRegisterRefused)
		t.Run("UDP bindings per address capped", testUDPBindingsPerAddrCapped)
		t.Run("canceled UDP forks stop retransmitting", testCanceledForksStopRetransmitting)
		t.Run("answered call stops the other UDP forks", testAnsweredCallStopsSilentForks)
		return
	}
	reexecInNetns(t, "TestUDPAmplification", "Z5_AMPLIFY_NETNS", "")
}

// udpPeer is a raw UDP socket that records every datagram it receives.
type udpPeer struct {
	t    *testing.T
	c    *net.UDPConn
	addr netip.AddrPort

	mu   sync.Mutex // guards the following
	got  [][]byte
	sent int // bytes sent
	cseq int // of the REGISTERs registerUDP sends
}

func newUDPPeer(t *testing.T) *udpPeer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &udpPeer{t: t, c: c, addr: addrPort(c.LocalAddr())}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			p.mu.Lock()
			p.got = append(p.got, bytes.Clone(buf[:n]))
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return p
}

func (p *udpPeer) send(to netip.AddrPort, text string) {
	p.t.Helper()
	if _, err := p.c.WriteToUDPAddrPort([]byte(text), to); err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.sent += len(text)
	p.mu.Unlock()
}

// received returns what arrived so far: datagrams and their bytes.
func (p *udpPeer) received() (msgs [][]byte, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.got {
		n += len(b)
	}
	return append([][]byte(nil), p.got...), n
}

// next waits for the datagram number i (0-based) and parses it.
func (p *udpPeer) next(i int) sipmsg.Message {
	p.t.Helper()
	var b []byte
	waitFor(p.t, fmt.Sprintf("datagram %d at %s", i, p.addr), func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.got) > i {
			b = p.got[i]
			return true
		}
		return false
	})
	m, err := sipmsg.ParseMessage(b)
	if err != nil {
		p.t.Fatalf("unparseable datagram %q: %v", b, err)
	}
	return m
}

// count returns how many received datagrams start with prefix.
func (p *udpPeer) count(prefix string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, b := range p.got {
		if bytes.HasPrefix(b, []byte(prefix)) {
			n++
		}
	}
	return n
}

// forgedInvite is about the smallest INVITE that earns a challenge (the
// worst ratio of response to request), with a From of the given number.
func forgedInvite(from, to string) string {
	id := randomToken(8)
	return sipText(
		"INVITE sip:"+to+"@"+testDomain+" SIP/2.0",
		"Via: SIP/2.0/UDP 198.18.0.99:5060;branch=z9hG4bK"+id,
		"From: <sip:"+from+"@"+testDomain+">;tag="+id,
		"To: <sip:"+to+"@"+testDomain+">",
		"Call-ID: "+id,
		"CSeq: 1 INVITE",
		"Content-Length: 0",
	)
}

// Hole 2: a forged INVITE over UDP earns one 407, not one per Timer G
// firing: bytes out / bytes in stays at or under 3.
func testForgedInviteAnsweredOnce(t *testing.T) {
	e := newEnv(t, nil)
	// A Z5 device's number draws the largest challenge (every algorithm).
	e.provision("5552340001", store.DeviceZ5, "z5-alice", "secret-a")
	e.provision("5552340002", store.DeviceSIP, "bob", "secret-b")
	victim := newUDPPeer(t)
	const invites = 5
	for range invites {
		victim.send(e.addr, forgedInvite("5552340001", "5552340002"))
	}
	// The same for a foreign domain (403 Relaying Denied, before any
	// authentication).
	id := randomToken(8)
	victim.send(e.addr, sipText(
		"INVITE sip:5552340002@elsewhere.example SIP/2.0",
		"Via: SIP/2.0/UDP 198.18.0.99:5060;branch=z9hG4bK"+id,
		"From: <sip:x@elsewhere.example>;tag="+id,
		"To: <sip:5552340002@elsewhere.example>",
		"Call-ID: "+id,
		"CSeq: 1 INVITE",
		"Content-Length: 0",
	))
	for i := range invites + 1 {
		victim.next(i)
	}
	// Timer G would have resent each final response at 0.5 s, 1.5 s and
	// 3.5 s: wait past the third.
	time.Sleep(4 * time.Second)
	msgs, out := victim.received()
	codes := map[int]int{}
	for _, b := range msgs {
		m, err := sipmsg.ParseMessage(b)
		if err != nil {
			t.Fatalf("unparseable %q", b)
		}
		codes[status(m)]++
	}
	ratio := float64(out) / float64(victim.sent)
	t.Logf("forged INVITEs over UDP: %d bytes in, %d bytes out in %d datagrams (%v): %.2fx", victim.sent, out, len(msgs), codes, ratio)
	if len(msgs) != invites+1 || codes[407] != invites || codes[403] != 1 {
		t.Fatalf("got %d responses %v, want one 407 per INVITE and one 403", len(msgs), codes)
	}
	if ratio > 3 {
		t.Fatalf("amplification %.2fx, want at most 3x", ratio)
	}
}

// Hole 2: all responses to unauthenticated UDP requests share a global
// byte budget; once spent, nothing more goes out until it refills.
func testUnauthUDPCeiling(t *testing.T) {
	clock := newFakeClock() // frozen: the budget does not refill on its own
	e := newEnvWith(t, func(c *Config) { c.UDPUnauthBytesPerSec = 1500 }, func(d *Deps) { d.Now = clock.Now })
	e.provision("5552340002", store.DeviceSIP, "bob", "secret-b")
	victim := newUDPPeer(t)
	first := forgedInvite("5552340001", "5552340002")
	victim.send(e.addr, first)
	res := victim.next(0)
	if status(res) != 407 {
		t.Fatalf("first forged INVITE: %v", res)
	}
	_, size := victim.received()
	const flood = 20
	for range flood {
		victim.send(e.addr, forgedInvite("5552340001", "5552340002"))
	}
	// The budget held 1500 bytes: after the first response at most
	// (1500-size)/size more fit.
	allowed := 1 + (1500-size)/size
	waitFor(t, "every forged INVITE answered or dropped", func() bool {
		msgs, _ := victim.received()
		return float64(len(msgs))+metricValue(e, "z5_sip_udp_unauth_responses_dropped_total") >= flood+1
	})
	msgs, out := victim.received()
	t.Logf("ceiling 1500 B/s, frozen clock: %d forged INVITEs (%d bytes) drew %d responses (%d bytes); %v dropped",
		flood+1, victim.sent, len(msgs), out, metricValue(e, "z5_sip_udp_unauth_responses_dropped_total"))
	if len(msgs) != allowed || out > 1500 {
		t.Fatalf("%d responses, %d bytes past the ceiling; want %d within 1500 bytes", len(msgs), out, allowed)
	}
	// A second later the budget is back: the next forged INVITE is
	// answered (once).
	clock.Advance(time.Second)
	victim.send(e.addr, forgedInvite("5552340001", "5552340002"))
	if m := victim.next(allowed); status(m) != 407 {
		t.Fatalf("after refill: %v", m)
	}
}

// udpRegisterText is a REGISTER of number from the socket at from.
func udpRegisterText(number string, from netip.AddrPort, cseq int, auth string) string {
	id := randomToken(8)
	lines := []string{
		"REGISTER sip:" + testDomain + " SIP/2.0",
		"Via: SIP/2.0/UDP " + from.String() + ";branch=z9hG4bK" + id + ";rport",
		"Max-Forwards: 70",
		"From: <sip:" + number + "@" + testDomain + ">;tag=" + id,
		"To: <sip:" + number + "@" + testDomain + ">",
		"Call-ID: reg-" + number + "-" + from.String(),
		fmt.Sprintf("CSeq: %d REGISTER", cseq),
		"Contact: <sip:" + number + "@" + from.String() + ";transport=udp>",
		"Expires: 600",
	}
	if auth != "" {
		lines = append(lines, "Authorization: "+auth)
	}
	return sipText(append(lines, "Content-Length: 0")...)
}

// registerUDP registers number (user, pass) from peer over UDP with a
// hand-made digest and returns the final response.
func registerUDP(t *testing.T, e *env, p *udpPeer, number, user, pass string, extra ...string) *sipmsg.Response {
	t.Helper()
	base, _ := p.received()
	p.mu.Lock()
	p.cseq += 2
	cseq := p.cseq
	p.mu.Unlock()
	p.send(e.addr, udpRegisterText(number, p.addr, cseq-1, ""))
	ch := p.next(len(base)).(*sipmsg.Response)
	if ch.StatusCode != 401 {
		t.Fatalf("REGISTER without credentials: %d %s", ch.StatusCode, ch.Reason)
	}
	nonce, opaque, _ := challengeParams(ch)
	text := udpRegisterText(number, p.addr, cseq, digestHeader(user, pass, nonce, opaque, "sip:"+testDomain, "00000001"))
	if len(extra) > 0 {
		text = strings.Replace(text, "Content-Length: 0", strings.Join(extra, "\r\n")+"\r\nContent-Length: 0", 1)
	}
	p.send(e.addr, text)
	return p.next(len(base) + 1).(*sipmsg.Response)
}

// Hole 3: a REGISTER carrying a digest computed on a nonce that was
// issued to another source is refused, though the password is right.
func testNonceBoundToSource(t *testing.T) {
	e := newEnv(t, nil)
	e.provision("5552340001", store.DeviceSIP, "alice", "secret-a")
	owner, forged := newUDPPeer(t), newUDPPeer(t) // same IP, other port
	owner.send(e.addr, udpRegisterText("5552340001", owner.addr, 1, ""))
	nonce, opaque, _ := challengeParams(owner.next(0).(*sipmsg.Response))
	auth := digestHeader("alice", "secret-a", nonce, opaque, "sip:"+testDomain, "00000001")

	forged.send(e.addr, udpRegisterText("5552340001", forged.addr, 2, auth))
	res := forged.next(0).(*sipmsg.Response)
	if res.StatusCode != 401 || len(e.srv.reg.lookup("5552340001")) != 0 {
		t.Fatalf("digest on a nonce issued to %s, sent from %s: %d %s, %d bindings; want 401 and none",
			owner.addr, forged.addr, res.StatusCode, res.Reason, len(e.srv.reg.lookup("5552340001")))
	}
	// The same credentials from the address the nonce went to register.
	owner.send(e.addr, udpRegisterText("5552340001", owner.addr, 3, auth))
	if res := owner.next(1).(*sipmsg.Response); res.StatusCode != 200 {
		t.Fatalf("digest from the nonce's own address: %d %s", res.StatusCode, res.Reason)
	}
	t.Logf("nonce issued to %s: refused from %s (401), accepted from %s (200)", owner.addr, forged.addr, owner.addr)
}

// Hole 3: a Z5 device (one with a license) registers only over TCP/TLS.
func testZ5DeviceUDPRegisterRefused(t *testing.T) {
	e := newEnv(t, nil)
	dev := e.provision("5552340001", store.DeviceZ5, "z5-alice", "secret-a")
	p := newUDPPeer(t)
	res := registerUDP(t, e, p, "5552340001", "z5-alice", "secret-a", "X-Z5-License: "+e.license(dev))
	if res.StatusCode != 403 || !strings.Contains(res.Reason, "TCP Or TLS") || len(e.srv.reg.lookup("5552340001")) != 0 {
		t.Fatalf("Z5 device REGISTER over UDP: %d %s; want 403 naming TCP/TLS and no binding", res.StatusCode, res.Reason)
	}
	// The same device over TCP registers.
	tcp := newPhone(t, e, "5552340001", "z5-alice", "secret-a")
	tcp.license = e.license(dev)
	if res := tcp.register(600); res.StatusCode != 200 {
		t.Fatalf("over TCP: %d %s", res.StatusCode, res.Reason)
	}
}

// Hole 3: one ip:port collects at most MaxUDPBindingsPerAddr bindings
// across all numbers.
func testUDPBindingsPerAddrCapped(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxUDPBindingsPerAddr = 2 })
	p := newUDPPeer(t)
	for i, want := range []int{200, 200, 403} {
		number := fmt.Sprintf("555234000%d", i+1)
		user := fmt.Sprintf("user%d", i+1)
		e.provision(number, store.DeviceSIP, user, "pw")
		res := registerUDP(t, e, p, number, user, "pw")
		if res.StatusCode != want {
			t.Fatalf("registration %d from %s: %d %s, want %d", i+1, p.addr, res.StatusCode, res.Reason, want)
		}
	}
	// A refresh of a binding already there is no new binding.
	if res := registerUDP(t, e, p, "5552340001", "user1", "pw"); res.StatusCode != 200 {
		t.Fatalf("refresh at the cap: %d %s", res.StatusCode, res.Reason)
	}
}

// silentUDPForks registers n UDP bindings of bob with e: addresses a
// registration named, no phone behind them.
func silentUDPForks(t *testing.T, e *env, n int) []*udpPeer {
	t.Helper()
	var silent []*udpPeer
	for range n {
		p := newUDPPeer(t)
		if res := registerUDP(t, e, p, bob, "bob", "secret-b"); res.StatusCode != 200 {
			t.Fatalf("bob's binding at %s: %d %s", p.addr, res.StatusCode, res.Reason)
		}
		silent = append(silent, p)
	}
	return silent
}

// invitesFromNow returns the INVITEs each of silent has received so far,
// and how many more reach them all in the next 4 s: Timer A would resend
// at 0.5, 1.5 and 3.5 s after the first, so past the third.
func invitesFromNow(silent []*udpPeer) (before []int, after int) {
	before = make([]int, len(silent))
	for i, p := range silent {
		before[i] = p.count("INVITE ")
	}
	time.Sleep(4 * time.Second)
	for i, p := range silent {
		after += p.count("INVITE ") - before[i]
	}
	return before, after
}

// Hole 3: a callee with UDP bindings that never answer (addresses a
// registration named, no phone behind them); once the caller CANCELs, no
// INVITE reaches them again.
func testCanceledForksStopRetransmitting(t *testing.T) {
	e := newEnv(t, nil)
	e.provision(alice, store.DeviceSIP, "alice", "secret-a")
	e.provision(bob, store.DeviceSIP, "bob", "secret-b")
	caller := newPhone(t, e, alice, "alice", "secret-a")
	if res := caller.register(600); res.StatusCode != 200 {
		t.Fatal(res)
	}
	silent := silentUDPForks(t, e, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done := caller.inviteAsync(ctx, bob)
	for _, p := range silent {
		waitFor(t, "INVITE at "+p.addr.String(), func() bool { return p.count("INVITE ") > 0 })
	}
	cancel()
	if res := wait(t, done, "the caller's outcome"); res.err == nil {
		t.Fatal("canceled call was answered")
	}
	waitFor(t, "call ended", func() bool {
		return len(e.srv.calls.all()) == 0
	})
	before, after := invitesFromNow(silent)
	t.Logf("%d silent UDP forks: INVITEs received before CANCEL %v, after CANCEL %d in 4 s; %v retransmissions suppressed",
		len(silent), before, after, metricValue(e, "z5_sip_udp_fork_retransmissions_suppressed_total"))
	if after != 0 {
		t.Fatalf("%d INVITE retransmissions reached the forks after CANCEL, want 0", after)
	}
}

// Hole 3: when one branch answers, the other UDP branches, which never
// answered, get no more INVITEs either.
func testAnsweredCallStopsSilentForks(t *testing.T) {
	e := newEnv(t, nil)
	caller, callee := twoPhones(t, e) // bob's answering phone, over TCP
	silent := silentUDPForks(t, e, 2)
	done := caller.inviteAsync(context.Background(), bob)
	ic := callee.nextCall(5 * time.Second)
	for _, p := range silent {
		waitFor(t, "INVITE at "+p.addr.String(), func() bool { return p.count("INVITE ") > 0 })
	}
	go ic.dlg.RespondSDP(callee.sdp())
	if res := wait(t, done, "the answer"); res.err != nil {
		t.Fatal(res.err)
	}
	defer ic.finish()
	before, after := invitesFromNow(silent)
	t.Logf("call answered on TCP; %d silent UDP forks: INVITEs before the answer %v, after it %d in 4 s", len(silent), before, after)
	if after != 0 {
		t.Fatalf("%d INVITE retransmissions reached the silent forks after the answer, want 0", after)
	}
}
