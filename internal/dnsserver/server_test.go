package dnsserver

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/config"
)

// startServer runs a server on addr (port 0) until the test ends.
func startServer(t *testing.T, cfg *config.Config, deps Deps, addr string) *Server {
	t.Helper()
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(netip.MustParseAddrPort(addr)); err != nil {
		if strings.HasPrefix(addr, "[") {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		serveReturns(t, errc, "cancel")
	})
	return s
}

// digResult is what dig printed, reduced to what the tests look at.
type digResult struct {
	status string
	flags  []string
	answer []string // records, whitespace collapsed
	raw    string
}

var (
	digStatus = regexp.MustCompile(`status: ([A-Z]+)`)
	digFlags  = regexp.MustCompile(`;; flags: ([a-z ]*);`)
)

// dig runs dig against addr; sections are read from the last response
// printed (after a TCP retry dig prints two).
func dig(t *testing.T, addr netip.AddrPort, args ...string) digResult {
	t.Helper()
	path, err := exec.LookPath("dig")
	if err != nil {
		t.Skip("dig not installed (Debian package bind9-dnsutils)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	argv := append([]string{"@" + addr.Addr().String(), "-p", strconv.Itoa(int(addr.Port())),
		"+time=2", "+tries=1", "+norecurse", "+noall", "+comments", "+answer", "+authority"}, args...)
	out, err := exec.CommandContext(ctx, path, argv...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	r := digResult{raw: string(out)}
	for _, block := range strings.Split(r.raw, "->>HEADER<<-")[1:] {
		if m := digStatus.FindStringSubmatch(block); m != nil {
			r.status = m[1]
		}
		if m := digFlags.FindStringSubmatch(block); m != nil {
			r.flags = strings.Fields(m[1])
			r.answer = nil
			for _, line := range strings.Split(block, "\n")[1:] { // [0] is the rest of the header line
				if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, ";") {
					r.answer = append(r.answer, strings.Join(strings.Fields(line), " "))
				}
			}
		}
	}
	return r
}

func (r digResult) has(flag string) bool { return slices.Contains(r.flags, flag) }

// typed keeps the records of one type, written "name ttl IN TYPE data".
func (r digResult) typed(typ string) []string {
	var out []string
	for _, rr := range r.answer {
		if f := strings.Fields(rr); len(f) > 4 && f[3] == typ {
			out = append(out, rr)
		}
	}
	return out
}

func TestDigRoleNames(t *testing.T) {
	s := startServer(t, devConfig(t), Deps{}, "127.0.0.1:0")
	for _, name := range []string{"zdial.z5.test", "lb.mcs.z5.test", "mcs1.mcs.z5.test", "mcs2.mcs.z5.test", "mcs.z5.test"} {
		for _, transport := range []string{"+notcp", "+tcp"} {
			r := dig(t, s.Addr(), transport, name, "A")
			if r.status != "NOERROR" || !r.has("aa") || r.has("ra") {
				t.Errorf("%s %s: status %s flags %v, want NOERROR with aa, without ra\n%s", name, transport, r.status, r.flags, r.raw)
			}
			if a := r.typed("A"); len(a) != 1 || !strings.HasSuffix(a[0], " A 127.0.0.1") {
				t.Errorf("%s %s: answer %q, want one A 127.0.0.1", name, transport, r.answer)
			}
		}
	}

	r := dig(t, s.Addr(), "_sip._tcp.mcs.z5.test", "SRV")
	if srv := r.typed("SRV"); len(srv) != 1 || !strings.HasSuffix(srv[0], "SRV 10 1 5060 mcs1.mcs.z5.test.") {
		t.Errorf("SRV answer %q", r.answer)
	}
	if r := dig(t, s.Addr(), "example.com", "A"); r.status != "REFUSED" || r.has("aa") || len(r.answer) != 0 {
		t.Errorf("example.com: status %s flags %v answer %q, want REFUSED without aa", r.status, r.flags, r.answer)
	}
	if r := dig(t, s.Addr(), "nope.z5.test", "A"); r.status != "NXDOMAIN" || len(r.typed("SOA")) != 1 {
		t.Errorf("nope.z5.test: status %s records %q, want NXDOMAIN with the SOA", r.status, r.answer)
	}
	if r := dig(t, s.Addr(), "zdial.z5.test", "ANY"); len(r.answer) != 1 || !strings.Contains(r.answer[0], `HINFO "RFC8482"`) {
		t.Errorf("ANY answer %q, want one HINFO RFC8482", r.answer)
	}
}

func TestDigTruncationFallsBackToTCP(t *testing.T) {
	cfg := bigConfig(t, 40)
	s := startServer(t, cfg, Deps{}, "127.0.0.1:0")

	r := dig(t, s.Addr(), "+noedns", "+ignore", "mcs.z5.test", "A")
	if !r.has("tc") || len(r.answer) != 0 {
		t.Errorf("+noedns +ignore: flags %v, %d records; want tc and no records\n%s", r.flags, len(r.answer), r.raw)
	}
	r = dig(t, s.Addr(), "+noedns", "mcs.z5.test", "A")
	if r.has("tc") || len(r.typed("A")) != 40 || !strings.Contains(r.raw, "retrying in TCP mode") {
		t.Errorf("+noedns: flags %v, %d A records; want the TCP retry with all 40\n%s", r.flags, len(r.typed("A")), r.raw)
	}
	r = dig(t, s.Addr(), "mcs.z5.test", "A")
	if r.has("tc") || len(r.typed("A")) != 40 {
		t.Errorf("plain dig: flags %v, %d A records; want all 40", r.flags, len(r.typed("A")))
	}
	r = dig(t, s.Addr(), "_sip._tcp.mcs.z5.test", "SRV")
	if len(r.typed("SRV")) != 40 {
		t.Errorf("SRV: %d records, want 40 (over TCP after truncation)\n%s", len(r.typed("SRV")), r.raw)
	}
}

func TestDigHealth(t *testing.T) {
	h := &fakeHealth{}
	s := startServer(t, bigConfig(t, 2), Deps{Health: h}, "127.0.0.1:0")
	addrs := func() []string {
		r := dig(t, s.Addr(), "lb.mcs.z5.test", "A")
		if r.status != "NOERROR" {
			t.Fatalf("status %s\n%s", r.status, r.raw)
		}
		var out []string
		for _, rr := range r.typed("A") {
			f := strings.Fields(rr)
			out = append(out, f[1]+" "+f[4])
		}
		if len(out) == 0 && len(r.typed("SOA")) != 1 {
			t.Errorf("empty answer without the SOA\n%s", r.raw)
		}
		return out
	}
	steps := []struct {
		node string
		up   bool
		want []string // "ttl address"
	}{
		{"", true, []string{"10 127.0.1.1", "10 127.0.1.2"}},
		{"mcs1", false, []string{"10 127.0.1.2"}},
		{"mcs2", false, nil},
		{"mcs1", true, []string{"10 127.0.1.1"}},
		{"mcs2", true, []string{"10 127.0.1.1", "10 127.0.1.2"}},
	}
	for _, st := range steps {
		if st.node != "" {
			h.set(st.node, st.up)
		}
		if got := addrs(); !slices.Equal(got, st.want) {
			t.Errorf("after %s up=%v: lb.mcs %q, want %q", st.node, st.up, got, st.want)
		}
	}
}

// TestRateLimitOverUDP floods the server from one address: beyond the
// burst, responses are dropped or slipped, and TCP still answers.
func TestRateLimitOverUDP(t *testing.T) {
	const rate, sent = 20, 500
	cfg := devConfig(t)
	cfg.DNS.RateLimit = rate
	reg := prometheus.NewRegistry()
	s := startServer(t, cfg, Deps{Registerer: reg}, "127.0.0.1:0")

	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(s.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	type tally struct{ full, slipped, other int }
	done := make(chan tally)
	sendDone := make(chan struct{})
	go func() {
		var n tally
		buf := make([]byte, 1500)
		deadline := time.Now().Add(10 * time.Second)
		for {
			conn.SetReadDeadline(time.Now().Add(time.Second))
			k, err := conn.Read(buf)
			if err != nil {
				select {
				case <-sendDone:
					done <- n
					return
				default:
				}
				if time.Now().After(deadline) {
					done <- n
					return
				}
				continue
			}
			var m dns.Msg
			switch {
			case m.Unpack(buf[:k]) != nil:
				n.other++
			case m.Truncated && len(m.Answer) == 0:
				n.slipped++
			case len(m.Answer) == 1:
				n.full++
			default:
				n.other++
			}
		}
	}()
	q := query(t, "zdial.z5.test. A")
	start := time.Now()
	for i := range sent {
		q.Id = uint16(i)
		b, err := q.Pack()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	close(sendDone)
	n := <-done
	t.Logf("sent %d in %s: %d answered, %d slipped, %d dropped", sent, elapsed, n.full, n.slipped, sent-n.full-n.slipped-n.other)
	if limit := rate + int(rate*elapsed.Seconds()) + 2; n.full > limit || n.full == 0 {
		t.Errorf("%d full answers, want 1..%d", n.full, limit)
	}
	if n.slipped == 0 || n.full+n.slipped >= sent || n.other != 0 {
		t.Errorf("slipped %d, total %d of %d, other %d: want some slipped, some dropped, nothing else", n.slipped, n.full+n.slipped, sent, n.other)
	}
	if r := dig(t, s.Addr(), "+tcp", "zdial.z5.test", "A"); len(r.typed("A")) != 1 {
		t.Errorf("TCP answer during the limit: %q", r.answer)
	}
	if c := counter(t, reg, "z5_dns_rate_limited_total", "action", "drop"); c == 0 {
		t.Error("no drops counted")
	}
	if c := counter(t, reg, "z5_dns_queries_total", "qtype", "A"); c < float64(n.full) {
		t.Errorf("queries_total{qtype=A} = %v, want >= %d", c, n.full)
	}
}

// counter sums the samples of a counter whose label has the value.
func counter(t *testing.T, g prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

func TestMalformedPackets(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := startServer(t, devConfig(t), Deps{Registerer: reg}, "127.0.0.1:0")
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(s.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exchange := func(b []byte) *dns.Msg {
		t.Helper()
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 1500)
		n, err := conn.Read(buf)
		if err != nil {
			return nil
		}
		var m dns.Msg
		if err := m.Unpack(buf[:n]); err != nil {
			t.Fatalf("unparsable response: %v", err)
		}
		return &m
	}
	// A header claiming one question, then garbage.
	garbage := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xfe}
	if m := exchange(garbage); m == nil || m.Rcode != dns.RcodeFormatError || m.Id != 0x1234 || !m.Response {
		t.Errorf("garbage after a header: %v, want FORMERR id 0x1234", m)
	}
	if m := exchange([]byte{1, 2, 3}); m != nil {
		t.Errorf("short packet answered: %v", m)
	}
	resp := append([]byte(nil), garbage...)
	resp[2] |= 0x80 // QR: a response
	if m := exchange(resp); m != nil {
		t.Errorf("response packet answered: %v", m)
	}
	good, _ := query(t, "zdial.z5.test. A").Pack()
	if m := exchange(good); m == nil || len(m.Answer) != 1 {
		t.Errorf("valid query after garbage: %v", m)
	}
	if c := counter(t, reg, "z5_dns_queries_total", "rcode", "FORMERR"); c != 1 {
		t.Errorf("FORMERR counted %v times, want 1", c)
	}

	// TCP: a framed bad message gets FORMERR, a bad frame closes.
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	frame := binary.BigEndian.AppendUint16(nil, uint16(len(garbage)))
	if _, err := c.Write(append(frame, garbage...)); err != nil {
		t.Fatal(err)
	}
	var m dns.Msg
	if err := m.Unpack(readFrame(t, c)); err != nil || m.Rcode != dns.RcodeFormatError {
		t.Errorf("tcp garbage: %v %v, want FORMERR", &m, err)
	}
	if _, err := c.Write([]byte{0, 3, 1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	// Closed with the frame's body unread: EOF or a reset.
	if _, err := c.Read(make([]byte, 2)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("after a 3-byte frame: %v, want the connection closed", err)
	}
}

// TestTCPPipelining sends two queries in one write; both are answered in
// order on the same connection.
func TestTCPPipelining(t *testing.T) {
	s := startServer(t, devConfig(t), Deps{}, "127.0.0.1:0")
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var out []byte
	for i, q := range []string{"zdial.z5.test. A", "lb.mcs.z5.test. A"} {
		m := query(t, q)
		m.Id = uint16(100 + i)
		b, _ := m.Pack()
		out = binary.BigEndian.AppendUint16(out, uint16(len(b)))
		out = append(out, b...)
	}
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		var m dns.Msg
		if err := m.Unpack(readFrame(t, c)); err != nil || m.Id != uint16(100+i) || len(m.Answer) != 1 {
			t.Errorf("answer %d: %v %v", i, &m, err)
		}
	}
}

// TestWildcardBindAnswersFromQueriedAddress binds 0.0.0.0 and asks
// 127.0.0.2: the answer must come from 127.0.0.2, or a connected client
// socket (as resolvers use) never sees it.
func TestWildcardBindAnswersFromQueriedAddress(t *testing.T) {
	s := startServer(t, devConfig(t), Deps{}, "0.0.0.0:0")
	to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), s.Addr().Port())
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	m, _, err := c.Exchange(query(t, "zdial.z5.test. A"), to.String())
	if err != nil || len(m.Answer) != 1 {
		t.Fatalf("exchange with %s: %v %v", to, m, err)
	}
}

func TestIPv6Loopback(t *testing.T) {
	s := startServer(t, devConfig(t), Deps{}, "[::1]:0")
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: 2 * time.Second}
		m, _, err := c.Exchange(query(t, "lb.mcs.z5.test. A"), s.Addr().String())
		if err != nil || len(m.Answer) != 1 {
			t.Errorf("%s over [::1]: %v %v", network, m, err)
		}
	}
}

func TestLifecycle(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := New(devConfig(t), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(context.Background()); !errors.Is(err, errNotListening) {
		t.Errorf("serve before listen: %v", err)
	}
	if err := s.Listen(netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	if s.Addr().Port() == 0 {
		t.Fatal("no port bound")
	}
	if err := s.Listen(netip.MustParseAddrPort("127.0.0.1:0")); err == nil {
		t.Error("second listen succeeded")
	}
	// Same port for both protocols: TCP connects where UDP answers.
	if c, err := net.Dial("tcp", s.Addr().String()); err != nil {
		t.Errorf("tcp on the udp port: %v", err)
	} else {
		c.Close()
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(context.Background()) }()
	// An idle TCP connection must not hold Close up.
	idle, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	client := &dns.Client{Timeout: 2 * time.Second}
	if m, _, err := client.Exchange(query(t, "zdial.z5.test. A"), s.Addr().String()); err != nil || len(m.Answer) != 1 {
		t.Fatalf("exchange: %v %v", m, err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	serveReturns(t, errc, "close")
	if err := s.Listen(netip.MustParseAddrPort("127.0.0.1:0")); err == nil {
		t.Error("listen after close succeeded")
	}
	// Every goroutine of the server is gone.
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after close, %d before", n, before)
	}
}

func TestServeReturnsOnCancel(t *testing.T) {
	s, err := New(devConfig(t), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx) }()
	cancel()
	serveReturns(t, errc, "cancel")
	if err := s.Close(); err != nil {
		t.Errorf("close after serve: %v", err)
	}
}

// readFrame reads one length-prefixed DNS message from a TCP connection
// (RFC 1035 section 4.2.2).
func readFrame(t *testing.T, c net.Conn) []byte {
	t.Helper()
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, body); err != nil {
		t.Fatal(err)
	}
	return body
}

// serveReturns checks that Serve, whose result goes to errc, returns nil
// soon after the server is told to stop (by cancel or close).
func serveReturns(t *testing.T, errc <-chan error, after string) {
	t.Helper()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("serve after %s: %v", after, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("serve did not return after %s", after)
	}
}
