package sipserver

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/store"
)

// An office behind one NAT address: every client connects from the same
// source, here 127.0.0.1 (not allowlisted: the tests run on the default
// limits).

// officeClient is one device's raw TCP connection.
type officeClient struct {
	*rawTCP
	number, user, pass string
	callID             string
	cseq               int
}

// dialOffice connects a device from src; it fails the test only when the
// connect itself fails.
func dialOffice(t *testing.T, src string, addr netip.AddrPort, number, user, pass string) *officeClient {
	t.Helper()
	return &officeClient{rawTCP: dialFrom(t, src, addr), number: number, user: user, pass: pass, callID: "office-" + randomToken(6)}
}

// officeRegisterText is a REGISTER over TCP for the client's number.
func (c *officeClient) registerText(auth string) string {
	c.cseq++
	lines := []string{
		"REGISTER sip:" + testDomain + " SIP/2.0",
		"Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK" + randomToken(6),
		"Max-Forwards: 70",
		"From: <sip:" + c.number + "@" + testDomain + ">;tag=" + randomToken(4),
		"To: <sip:" + c.number + "@" + testDomain + ">",
		"Call-ID: " + c.callID,
		fmt.Sprintf("CSeq: %d REGISTER", c.cseq),
		"Contact: <sip:" + c.number + "@127.0.0.1:9;transport=tcp>",
		"Expires: 600",
	}
	if auth != "" {
		lines = append(lines, "Authorization: "+auth)
	}
	return sipText(append(lines, "Content-Length: 0")...)
}

// register asks for a challenge and answers it; it returns the final
// status (0: no answer, the connection closed or went quiet).
func (c *officeClient) register(t *testing.T) int {
	if err := c.write(c.registerText("")); err != nil {
		return 0
	}
	m, err := c.read(10 * time.Second)
	if err != nil || status(m) != 401 {
		return status(m)
	}
	nonce, opaque, _ := challengeParams(m.(*sipmsg.Response))
	if err := c.write(c.registerText(digestHeader(c.user, c.pass, nonce, opaque, "sip:"+testDomain, "00000001"))); err != nil {
		return 0
	}
	m, err = c.read(10 * time.Second)
	if err != nil {
		return 0
	}
	return status(m)
}

// options sends an OPTIONS to the server over the client's connection
// and returns the status (0: none, closed).
func (c *officeClient) options(addr netip.AddrPort) int {
	if err := c.write(optionsText(addr, "TCP")); err != nil {
		return 0
	}
	m, err := c.read(5 * time.Second)
	if err != nil {
		return 0
	}
	return status(m)
}

// write sends s without failing the test (usable from goroutines).
func (r *rawTCP) write(s string) error {
	r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := io.WriteString(r.c, s)
	return err
}

// provisionOffice creates n devices of kind sip, numbers 555300xxxx.
func provisionOffice(e *env, n int, prefix string) []store.Device {
	devs := make([]store.Device, n)
	for i := range n {
		devs[i] = e.provision(fmt.Sprintf("5553%06d", len(prefix)*10000+i), store.DeviceSIP, fmt.Sprintf("%s%03d", prefix, i), "pw-"+prefix+fmt.Sprint(i))
	}
	return devs
}

// registerAll connects and registers every device at once from src and
// returns the clients and how many got 200.
func registerAll(t *testing.T, e *env, src string, devs []store.Device, pass func(i int) string) ([]*officeClient, int) {
	t.Helper()
	clients := make([]*officeClient, len(devs))
	codes := make([]int, len(devs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, d := range devs {
		clients[i] = dialOffice(t, src, e.addr, d.Number, d.SIPUser, pass(i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			codes[i] = clients[i].register(t)
		}()
	}
	close(start)
	wg.Wait()
	ok := 0
	hist := map[int]int{}
	for _, c := range codes {
		hist[c]++
		if c == 200 {
			ok++
		}
	}
	t.Logf("%d devices registering at once from %s: %d registered (answers %v)", len(devs), src, ok, hist)
	return clients, ok
}

// TestOfficeBehindOneAddress: 200 devices behind one address connect and
// register at once on the default limits, all of them; then 20 guesses at
// one account from that address are stopped after MaxAuthFailures, while
// the 200 stay registered and served.
func TestOfficeBehindOneAddress(t *testing.T) {
	e := newEnv(t, nil)
	const n = 200
	devs := provisionOffice(e, n, "office")
	clients, ok := registerAll(t, e, "127.0.0.1", devs, func(i int) string { return "pw-office" + fmt.Sprint(i) })
	if ok != n {
		t.Fatalf("%d of %d devices behind one address registered, want all", ok, n)
	}
	if u := e.srv.t.conns.unauthenticated(netip.MustParseAddr("127.0.0.1")); u != 0 {
		t.Errorf("%d registered connections still count against the source's cap", u)
	}
	for _, r := range []string{"rate_limited", "overloaded"} {
		if v := metricValue(e, "z5_sip_shed_total", "reason", r); v != 0 {
			t.Errorf("z5_sip_shed_total{reason=%s} = %v, want 0", r, v)
		}
	}

	// Password guessing at one account from the same address.
	victim := devs[0]
	g := dialOffice(t, "127.0.0.1", e.addr, victim.Number, victim.SIPUser, "")
	evaluated, refused, accepted := 0, 0, 0
	for i := range 20 {
		g.pass = fmt.Sprintf("guess-%d", i)
		if i == 19 {
			g.pass = "pw-office0" // the right one comes too late
		}
		switch code := g.register(t); code {
		case 401:
			evaluated++
		case 403:
			refused++
		case 200:
			accepted++
		default:
			t.Fatalf("guess %d: status %d", i, code)
		}
	}
	t.Logf("20 guesses at one account from the office's address: %d checked, %d refused 403, %d accepted", evaluated, refused, accepted)
	if accepted != 0 || evaluated > 5 || refused < 15 {
		t.Fatalf("guessing not stopped: %d checked, %d refused, %d accepted", evaluated, refused, accepted)
	}
	served := 0
	for _, c := range clients {
		if c.options(e.addr) == 200 {
			served++
		}
	}
	if served != n {
		t.Fatalf("after the guessing %d of %d registered devices served", served, n)
	}
	if b := metricValue(e, "z5_floodguard_bans_total", "reason", "auth_failure"); b != 0 {
		t.Fatalf("the office's address was banned (%v)", b)
	}
}

// TestStalePasswordsDoNotBanTheOffice: three phones keep trying a stale
// password from the office's address; the address is not banned and the
// 30 registered colleagues stay connected. Then credential stuffing from
// the same address (failures for 10 distinct users) earns a ban: the
// guesser is cut off and new connections refused, but the 30 registered
// connections stay open and working.
func TestStalePasswordsDoNotBanTheOffice(t *testing.T) {
	e := newEnv(t, nil)
	const src = "127.0.0.1"
	devs := provisionOffice(e, 33, "stale")
	colleagues, ok := registerAll(t, e, src, devs[:30], func(i int) string { return "pw-stale" + fmt.Sprint(i) })
	if ok != 30 {
		t.Fatalf("%d of 30 colleagues registered", ok)
	}
	failures := 0
	for round := range 10 {
		for i, d := range devs[30:] {
			p := dialOffice(t, src, e.addr, d.Number, d.SIPUser, "old-password")
			if code := p.register(t); code != 401 && code != 403 {
				t.Fatalf("stale phone %d, round %d: status %d", i, round, code)
			}
			failures++
			p.c.Close()
		}
	}
	open := 0
	for _, c := range colleagues {
		if c.options(e.addr) == 200 {
			open++
		}
	}
	t.Logf("after %d failures of 3 stale phones: %d of 30 colleagues served, bans %v", failures, open,
		metricValue(e, "z5_floodguard_bans_total", "reason", "auth_failure"))
	if open != 30 || metricValue(e, "z5_floodguard_bans_total", "reason", "auth_failure") != 0 {
		t.Fatalf("stale phones cut the office off: %d of 30 served", open)
	}

	// Credential stuffing from the same address: a different user each
	// time.
	stuffer := dialOffice(t, src, e.addr, devs[0].Number, "", "guess")
	closed := false
	for i := range 12 {
		stuffer.user = fmt.Sprintf("nobody%02d", i)
		if code := stuffer.register(t); code == 0 {
			closed = true
			break
		}
	}
	if !closed {
		t.Fatal("the credential stuffer's connection is still open")
	}
	if b := metricValue(e, "z5_floodguard_bans_total", "reason", "auth_failure"); b != 1 {
		t.Fatalf("bans %v after credential stuffing, want 1", b)
	}
	refusedAtAccept := dialOffice(t, src, e.addr, devs[0].Number, devs[0].SIPUser, "pw-stale0")
	if code := refusedAtAccept.register(t); code != 0 {
		t.Fatalf("a new connection from the banned address got %d", code)
	}
	open = 0
	for _, c := range colleagues {
		if c.options(e.addr) == 200 {
			open++
		}
	}
	t.Logf("source banned for credential stuffing: %d of 30 registered connections open and served", open)
	if open != 30 {
		t.Fatalf("the ban cut %d of 30 registered connections", 30-open)
	}
}

// TestAccountFailureLimit: guesses at one account spread over many
// addresses, each below the per-(source, user) limit, are stopped by the
// per-account limit; a device already registered over its connection
// still re-registers.
func TestAccountFailureLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxAuthFailuresPerAccount = 6 })
	d := e.provision(alice, store.DeviceSIP, "alice", "secret-a")
	owner := dialOffice(t, "127.0.0.70", e.addr, d.Number, "alice", "secret-a")
	if code := owner.register(t); code != 200 {
		t.Fatalf("owner: %d", code)
	}
	checked, refused := 0, 0
	for i := range 12 {
		g := dialOffice(t, fmt.Sprintf("127.0.0.%d", 71+i/2), e.addr, d.Number, "alice", "wrong")
		switch code := g.register(t); code {
		case 401:
			checked++
		case 403:
			refused++
		default:
			t.Fatalf("guess %d: %d", i, code)
		}
	}
	t.Logf("12 guesses at one account from 6 addresses: %d checked, %d refused", checked, refused)
	if checked != 6 || refused != 6 {
		t.Fatalf("want 6 checked, 6 refused")
	}
	// The right password from a new address is refused too while the
	// account is under attack...
	late := dialOffice(t, "127.0.0.90", e.addr, d.Number, "alice", "secret-a")
	if code := late.register(t); code != 403 {
		t.Fatalf("new connection during the attack: %d, want 403", code)
	}
	// ...but the registered device refreshes over its own connection.
	if code := owner.register(t); code != 200 {
		t.Fatalf("registered device re-registering: %d, want 200", code)
	}
}

// TestSlowlorisCostsOnlyItsConnections: 300 connections from one address
// each send half a message and stall (beyond the default cap of 256
// unauthenticated connections per source); another client from that
// address still connects and registers at once, the stalled connections
// beyond the cap having been closed to make room.
func TestSlowlorisCostsOnlyItsConnections(t *testing.T) {
	e := newEnv(t, nil)
	d := e.provision(alice, store.DeviceSIP, "alice", "secret-a")
	const src, slow = "127.0.0.1", 300
	text := optionsText(e.addr, "TCP")
	conns := make([]net.Conn, 0, slow)
	for range slow {
		c := dialFrom(t, src, e.addr)
		if err := c.write(text[:40]); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c.c)
	}
	limit := e.srv.cfg.MaxConnsPerIP
	waitFor(t, "slow connections accepted", func() bool {
		return metricValue(e, "z5_sip_connections_rejected_total") == slow-float64(limit)
	})
	c := dialOffice(t, src, e.addr, d.Number, "alice", "secret-a")
	code := c.register(t)
	// The newcomer took the place of the most stalled one.
	closed := 0
	deadline := time.Now().Add(2 * time.Second)
	for _, s := range conns {
		s.SetReadDeadline(deadline)
		if _, err := s.Read(make([]byte, 1)); err == io.EOF {
			closed++
		}
	}
	t.Logf("%d stalled connections from one address (cap %d): newcomer got %d; %d stalled ones closed to make room", slow, limit, code, closed)
	if code != 200 {
		t.Fatalf("a client behind %d stalled connections got %d, want 200", slow, code)
	}
	if closed != slow-limit+1 {
		t.Fatalf("%d stalled connections closed, want %d", closed, slow-limit+1)
	}
}
