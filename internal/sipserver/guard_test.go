package sipserver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/store"
)

// dialFrom opens a raw TCP connection from a chosen loopback source, so a
// test can play several client addresses.
func dialFrom(t *testing.T, src string, addr netip.AddrPort) *rawTCP {
	t.Helper()
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawTCP{c: c, par: sipmsg.NewParser().NewSIPStream()}
}

// udpFrom sends one datagram from src (empty: the kernel's choice) and
// returns the answer, nil if none comes within timeout.
func udpFrom(t *testing.T, src string, addr netip.AddrPort, payload string, timeout time.Duration) sipmsg.Message {
	t.Helper()
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(payload)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	c.SetReadDeadline(time.Now().Add(timeout))
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	m, err := sipmsg.ParseMessage(buf[:n])
	if err != nil {
		t.Fatalf("unparseable answer %q: %v", buf[:n], err)
	}
	return m
}

// registerText is a REGISTER for number over TCP, with an Authorization
// value when auth is not empty.
func registerText(number, callID string, cseq int, auth string) string {
	lines := []string{
		"REGISTER sip:" + testDomain + " SIP/2.0",
		"Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK" + randomToken(6),
		"Max-Forwards: 70",
		"From: <sip:" + number + "@" + testDomain + ">;tag=" + randomToken(4),
		"To: <sip:" + number + "@" + testDomain + ">",
		"Call-ID: " + callID,
		fmt.Sprintf("CSeq: %d REGISTER", cseq),
		"Contact: <sip:" + number + "@127.0.0.1:9;transport=tcp>",
		"Expires: 600",
	}
	if auth != "" {
		lines = append(lines, "Authorization: "+auth)
	}
	return sipText(append(lines, "Content-Length: 0")...)
}

// readAll reads n messages (or until the connection ends or goes quiet).
func (r *rawTCP) readAll(t *testing.T, n int, timeout time.Duration) (msgs []sipmsg.Message, closed bool) {
	t.Helper()
	for len(msgs) < n {
		m, err := r.read(timeout)
		if err != nil {
			return msgs, true
		}
		if m == nil {
			return msgs, false
		}
		msgs = append(msgs, m)
	}
	return msgs, false
}

func TestRateLimitPerSource(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RateLimit, c.RateBurst = 5, 5 })
	greedy := dialFrom(t, "127.0.0.21", e.addr)
	var burst strings.Builder
	for range 15 {
		burst.WriteString(optionsText(e.addr, "TCP"))
	}
	greedy.send(t, burst.String())
	msgs, _ := greedy.readAll(t, 15, 2*time.Second)
	codes := map[int]int{}
	for _, m := range msgs {
		codes[status(m)]++
		if r := m.(*sipmsg.Response); r.StatusCode == 503 {
			if ra := r.GetHeader("Retry-After"); ra == nil || ra.Value() != "1" || r.Reason != "Service Unavailable (Rate Limited)" {
				t.Fatalf("503 without Retry-After: 1:\n%s", r)
			}
		}
	}
	// The burst of 5 passes (a sixth may, as the bucket refills while the
	// requests are read); the rest are told to come back.
	if len(msgs) != 15 || codes[200] < 5 || codes[200] > 6 || codes[503] != 15-codes[200] {
		t.Fatalf("answers to 15 OPTIONS at a limit of 5/s: %v (%d messages)", codes, len(msgs))
	}
	// Another source is not slowed.
	other := dialFrom(t, "127.0.0.22", e.addr)
	other.send(t, optionsText(e.addr, "TCP"))
	if m, _ := other.read(2 * time.Second); status(m) != 200 {
		t.Fatalf("a second source got %v", m)
	}
	// Over UDP a source beyond its rate is dropped, not answered: a 503
	// to a forged address would reflect a flood onto it.
	u, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.23")}, net.UDPAddrFromAddrPort(e.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for range 12 {
		u.Write([]byte(optionsText(e.addr, "UDP")))
	}
	answered := 0
	buf := make([]byte, 65536)
	for {
		u.SetReadDeadline(time.Now().Add(time.Second))
		n, err := u.Read(buf)
		if err != nil {
			break
		}
		if m, err := sipmsg.ParseMessage(buf[:n]); err != nil || status(m) != 200 {
			t.Fatalf("UDP answer %q", buf[:n])
		}
		answered++
	}
	if answered < 5 || answered > 6 {
		t.Fatalf("%d of 12 UDP requests answered at 5/s", answered)
	}
	if n := metricValue(e, "z5_sip_shed_total", "reason", "rate_limited"); n < 13 {
		t.Errorf("z5_sip_shed_total{reason=rate_limited} = %v", n)
	}
}

func TestFailedDigestsBanTheSource(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.BanAuthFailures, c.BanTime = 3, time.Hour })
	e.provision(alice, store.DeviceSIP, "alice", "secret-a")
	const attacker = "127.0.0.31"
	c := dialFrom(t, attacker, e.addr)
	c.send(t, registerText(alice, "stuff-1", 1, ""))
	m, _ := c.read(2 * time.Second)
	if status(m) != 401 {
		t.Fatalf("first REGISTER: %v", m)
	}
	nonce, opaque, _ := challengeParams(m.(*sipmsg.Response))
	// Credential stuffing: a different user each time, all wrong.
	for i, user := range []string{"alice", "bob", "carol"} {
		c.send(t, registerText(alice, "stuff-1", i+2, digestHeader(user, "guess", nonce, opaque, "sip:"+testDomain, "00000001")))
	}
	msgs, closed := c.readAll(t, 10, 3*time.Second)
	if !closed {
		t.Fatalf("connection open after the ban; got %d answers", len(msgs))
	}
	if n := metricValue(e, "z5_floodguard_bans_total", "reason", "auth_failure", "service", "sip"); n != 1 {
		t.Fatalf("z5_floodguard_bans_total{reason=auth_failure} = %v, want 1", n)
	}
	// A new connection is closed at accept, before a byte is read.
	again := dialFrom(t, attacker, e.addr)
	again.send(t, optionsText(e.addr, "TCP"))
	if m, err := again.read(2 * time.Second); err == nil {
		t.Fatalf("banned source answered: %v", m)
	}
	// Its datagrams are dropped unread.
	if m := udpFrom(t, attacker, e.addr, optionsText(e.addr, "UDP"), 500*time.Millisecond); m != nil {
		t.Fatalf("banned source answered over UDP: %v", m)
	}
	if n := metricValue(e, "z5_sip_banned_dropped_total", "transport", "tcp"); n < 1 {
		t.Errorf("banned tcp connections counted %v", n)
	}
	if n := metricValue(e, "z5_sip_banned_dropped_total", "transport", "udp"); n != 1 {
		t.Errorf("banned datagrams counted %v", n)
	}
	if !regexp.MustCompile(`msg="source banned" .*source=127.0.0.31/32 reason=auth_failure`).MatchString(e.logs.String()) {
		t.Errorf("no ban log line:\n%s", e.logs.String())
	}
	// A good client from another address registers.
	p := newPhone(t, e, alice, "alice", "secret-a")
	if res := p.register(600); res.StatusCode != 200 {
		t.Fatalf("good client: %d %s", res.StatusCode, res.Reason)
	}
}

// TestUDPFailuresDoNotBan: a UDP source can be forged, so its failures
// earn 403 for the user but never a ban of the address.
func TestUDPFailuresDoNotBan(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.BanAuthFailures = 2 })
	e.provision(alice, store.DeviceSIP, "alice", "secret-a")
	const src = "127.0.0.41"
	udpReg := func(cseq int, auth string) sipmsg.Message {
		return udpFrom(t, src, e.addr, strings.Replace(registerText(alice, "udp-1", cseq, auth), "SIP/2.0/TCP", "SIP/2.0/UDP", 1), time.Second)
	}
	m := udpReg(1, "")
	nonce, opaque, _ := challengeParams(m.(*sipmsg.Response))
	for i := range 4 {
		udpReg(i+2, digestHeader("alice", "guess", nonce, opaque, "sip:"+testDomain, fmt.Sprintf("%08x", i+1)))
	}
	if m := udpFrom(t, src, e.addr, optionsText(e.addr, "UDP"), time.Second); status(m) != 200 {
		t.Fatalf("after UDP failures the source got %v", m)
	}
	if n := metricValue(e, "z5_floodguard_bans_total", "reason", "auth_failure"); n != 0 {
		t.Fatalf("bans %v", n)
	}
}

// slowStore makes the device lookup of one SIP user wait for a gate, to
// hold a request in flight.
type slowStore struct {
	Store
	user    string
	entered chan struct{}
	gate    chan struct{}
	once    sync.Once
}

func (s *slowStore) DeviceBySIPUser(ctx context.Context, user string) (store.Device, error) {
	if user == s.user {
		s.once.Do(func() { close(s.entered) })
		select {
		case <-s.gate:
		case <-ctx.Done():
		}
	}
	return s.Store.DeviceBySIPUser(ctx, user)
}

func TestOverloadSheds(t *testing.T) {
	slow := &slowStore{user: "slow", entered: make(chan struct{}), gate: make(chan struct{})}
	e := newEnvWith(t, func(c *Config) { c.MaxInFlight, c.MaxInFlightPerSource = 1, 1 }, func(d *Deps) {
		slow.Store = d.Store
		d.Store = slow
	})
	e.provision(alice, store.DeviceSIP, "alice", "secret-a")
	e.provision(bob, store.DeviceSIP, "bob", "secret-b")
	e.provision("5552340003", store.DeviceSIP, "slow", "secret-s")
	opened := false
	t.Cleanup(func() {
		if !opened {
			close(slow.gate)
		}
	})

	// A REGISTER holds the one slot.
	busy := dialFrom(t, "127.0.0.51", e.addr)
	busy.send(t, registerText("slow", "hold-1", 1, ""))
	select {
	case <-slow.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the first REGISTER never reached the store")
	}

	c := dialFrom(t, "127.0.0.52", e.addr)
	tests := []struct {
		name, text string
		want       int
		reason     string
	}{
		{"REGISTER, refused before parsing", registerText(alice, "reg-2", 1, ""), 503, "Service Unavailable (Overloaded)"},
		{"OPTIONS, refused after parsing", optionsText(e.addr, "TCP"), 503, "Service Unavailable (Overloaded)"},
	}
	for _, tt := range tests {
		c.send(t, tt.text)
		m, _ := c.read(2 * time.Second)
		r, ok := m.(*sipmsg.Response)
		if !ok || r.StatusCode != tt.want || r.Reason != tt.reason || r.GetHeader("Retry-After") == nil {
			t.Fatalf("%s: got %v, want %d %s with Retry-After", tt.name, m, tt.want, tt.reason)
		}
	}
	// A call is never shed by the in-flight limit: its INVITE is handled
	// (here: challenged, as the connection is not registered).
	inv := sipText(
		"INVITE sip:"+bob+"@"+testDomain+" SIP/2.0",
		"Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKinv"+randomToken(4),
		"Max-Forwards: 70",
		"From: <sip:"+alice+"@"+testDomain+">;tag=a1",
		"To: <sip:"+bob+"@"+testDomain+">",
		"Call-ID: inv-"+randomToken(4),
		"CSeq: 1 INVITE",
		"Contact: <sip:"+alice+"@127.0.0.1:9;transport=tcp>",
		"Content-Length: 0",
	)
	c.send(t, inv)
	if m, _ := c.read(2 * time.Second); status(m) != 407 {
		t.Fatalf("INVITE under overload: %v, want 407", m)
	}
	if n := metricValue(e, "z5_sip_shed_total", "reason", "overloaded"); n != 2 {
		t.Errorf("z5_sip_shed_total{reason=overloaded} = %v, want 2", n)
	}
	if n := metricValue(e, "z5_sip_requests_in_flight"); n != 1 {
		t.Errorf("in flight %v, want 1", n)
	}
	close(slow.gate)
	opened = true
	if m, _ := busy.read(2 * time.Second); status(m) != 401 {
		t.Fatalf("the held REGISTER: %v", m)
	}
	waitFor(t, "the slot freed", func() bool { return metricValue(e, "z5_sip_requests_in_flight") == 0 })
	c.send(t, registerText(alice, "reg-3", 1, ""))
	if m, _ := c.read(2 * time.Second); status(m) != 401 {
		t.Fatalf("REGISTER after the load: %v", m)
	}
}

// busyBob is where the calls-per-number cap tests start: a node capping
// calls per number at 1 (tune may set more), alice's call ringing at bob,
// and carol registered to call too. hangUp ends alice's call and waits
// for its end.
func busyBob(t *testing.T, tune func(*Config)) (e *env, a, b, carol *phone, hangUp func()) {
	t.Helper()
	e = newEnv(t, func(c *Config) {
		c.MaxCallsPerNumber = 1
		if tune != nil {
			tune(c)
		}
	})
	a, b = twoPhones(t, e)
	e.provision("5552340003", store.DeviceSIP, "carol", "secret-c")
	carol = newPhone(t, e, "5552340003", "carol", "secret-c")
	carol.register(600)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done, ic := ring(ctx, a, b)
	ic.dlg.Respond(180, "Ringing", nil)
	t.Cleanup(ic.finish)
	return e, a, b, carol, func() {
		cancel()
		wait(t, done, "the first call's end")
	}
}

func TestCallsPerNumberCap(t *testing.T) {
	e, a, _, c, hangUp := busyBob(t, nil)

	// Bob is in one call: another caller hears busy.
	if _, err := c.invite(context.Background(), bob); statusOf(err) != 486 {
		t.Fatalf("call to a number at its cap: %v, want 486", err)
	}
	// Alice is in one call: she may not place another.
	if _, err := a.invite(context.Background(), "5552340003"); statusOf(err) != 403 {
		t.Fatalf("second call from a number at its cap: %v, want 403", err)
	}
	if n := metricValue(e, "z5_sip_shed_total", "reason", "calls_per_number"); n != 2 {
		t.Errorf("z5_sip_shed_total{reason=calls_per_number} = %v", n)
	}
	hangUp()
}

// TestCallsPerNumberCapSparesAllowlisted: calls from an allowlisted
// source (another node, sip.ban_allow) are not capped.
func TestCallsPerNumberCapSparesAllowlisted(t *testing.T) {
	e, _, b, c, hangUp := busyBob(t, func(c *Config) {
		c.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})

	second := c.inviteAsync(context.Background(), bob)
	ic2 := b.nextCall(5 * time.Second)
	go ic2.dlg.RespondSDP(b.sdp())
	if r := wait(t, second, "the second call to bob"); r.err != nil {
		t.Fatalf("second call to a number at its cap from an allowlisted source: %v, want answered", r.err)
	} else {
		r.sess.Close()
	}
	if n := metricValue(e, "z5_sip_shed_total", "reason", "calls_per_number"); n != 0 {
		t.Errorf("z5_sip_shed_total{reason=calls_per_number} = %v, want 0", n)
	}
	hangUp()
}

func TestRegistrationsPerNumberCap(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxRegistrationsPerNumber = 1 })
	e.provision(alice, store.DeviceSIP, "alice", "secret-a")
	e.provision(alice, store.DeviceSIP, "alice2", "secret-a2")
	p1 := newPhone(t, e, alice, "alice", "secret-a")
	if res := p1.register(600); res.StatusCode != 200 {
		t.Fatalf("first device: %d", res.StatusCode)
	}
	p2 := newPhone(t, e, alice, "alice2", "secret-a2")
	if res := p2.register(600); res.StatusCode != 403 || res.Reason != "Forbidden (Too Many Registrations)" {
		t.Fatalf("second device: %d %s", res.StatusCode, res.Reason)
	}
	// A refresh of the one binding is not a new registration.
	if res := p1.register(600); res.StatusCode != 200 {
		t.Fatalf("refresh: %d", res.StatusCode)
	}
}

// FuzzRefuse: the 503 built from raw bytes is a parseable response or
// nothing, whatever the request.
func FuzzRefuse(f *testing.F) {
	f.Add([]byte(registerText(alice, "c", 1, "")))
	f.Add([]byte("OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nCSeq: 1 OPTIONS\r\n\r\n"))
	f.Add([]byte("INVITE sip:x SIP/2.0\r\nVia: \x00\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out := refuse(b, 503, "Service Unavailable (Rate Limited)", 1)
		if out == nil {
			return
		}
		m, err := sipmsg.ParseMessage(out)
		if err != nil {
			t.Fatalf("unparseable refusal %q: %v", out, err)
		}
		if r, ok := m.(*sipmsg.Response); !ok || r.StatusCode != 503 || r.GetHeader("Retry-After") == nil {
			t.Fatalf("refusal %q", out)
		}
	})
}

// TestOneSourceCannotTakeEverySlot: a source gets its share of the
// in-flight slots, so a client that sends and stops reading cannot shut
// the others out.
func TestOneSourceCannotTakeEverySlot(t *testing.T) {
	slow := &slowStore{user: "slow", entered: make(chan struct{}), gate: make(chan struct{})}
	e := newEnvWith(t, func(c *Config) { c.MaxInFlight, c.MaxInFlightPerSource = 16, 2 }, func(d *Deps) {
		slow.Store = d.Store
		d.Store = slow
	})
	defer close(slow.gate)
	e.provision(alice, store.DeviceSIP, "alice", "secret-a")
	e.provision("5552340003", store.DeviceSIP, "slow", "secret-s")
	hog := dialFrom(t, "127.0.0.61", e.addr)
	hog.send(t, registerText("slow", "hog-1", 1, "")+registerText("slow", "hog-2", 1, ""))
	waitFor(t, "two requests held", func() bool { return metricValue(e, "z5_sip_requests_in_flight") == 2 })
	hog.send(t, registerText("slow", "hog-3", 1, ""))
	if m, _ := hog.read(2 * time.Second); status(m) != 503 {
		t.Fatalf("third request of the source: %v, want 503", m)
	}
	other := dialFrom(t, "127.0.0.62", e.addr)
	other.send(t, registerText(alice, "fair-1", 1, ""))
	if m, _ := other.read(2 * time.Second); status(m) != 401 {
		t.Fatalf("another source: %v, want 401", m)
	}
}

// TestRegisteredFlowRateLimit: a registered flow has its own allowance,
// except from an allowlisted source, which is never rate limited.
func TestRegisteredFlowRateLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.RateLimit, c.RateBurst = 5, 5
		c.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.32/32")}
	})
	msg := []byte(optionsText(e.addr, "TCP"))
	for _, tc := range []struct {
		src  string
		want int // requests admitted of 15
	}{
		{"127.0.0.31:5060", 5},
		{"127.0.0.32:5060", 15},
	} {
		c := &flowConn{raddr: netip.MustParseAddrPort(tc.src)}
		c.boundUntil.Store(time.Now().Add(time.Hour).UnixNano())
		admitted := 0
		for range 15 {
			if _, ok := e.srv.shield.admitFlow(c, msg); ok {
				admitted++
			}
		}
		// A sixth may pass as the bucket refills while the loop runs.
		if admitted != tc.want && !(tc.want == 5 && admitted == 6) {
			t.Errorf("registered flow from %s: %d of 15 requests admitted, want %d", tc.src, admitted, tc.want)
		}
	}
}
