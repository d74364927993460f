package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/siptest"
)

// Slow, broken and hostile peers against the real z5d: each test runs a
// one-node stack on its own random 127.x address and plays several
// clients from other 127.x source addresses of the same /8.

// hardStack starts a stack with extra config appended (after [dns]).
func hardStack(t *testing.T, extra string) *stack {
	t.Helper()
	s := &stack{ip: loopbackIP(t), dir: t.TempDir()}
	s.cfg = stackConfig(t, s.dir, s.ip, extra)
	s.start(t)
	return s
}

// sibling returns another loopback address next to the stack's, last
// octet n, to act as a distinct client source.
func (s *stack) sibling(n int) string {
	if n <= 1 || n >= 100 {
		panic(fmt.Sprintf("sibling %d: want 2-99, below the stack's own last byte (loopbackIP)", n))
	}
	parts := strings.Split(s.ip, ".")
	return fmt.Sprintf("%s.%s.%s.%d", parts[0], parts[1], parts[2], n)
}

// sipDevice provisions a customer with number and a standard SIP device.
func (s *stack) sipDevice(t *testing.T, customer, number, user, pass string) {
	t.Helper()
	s.admin(t, "pw-"+customer+"-long\n", customerAdd(customer)...)
	s.admin(t, "", "number", "add", customer, number)
	s.admin(t, pass+"\n", "device", "add", number, "--kind", "sip", "--user", user, "--password-stdin")
}

// metric reads one sample from the node's /metrics: name{labels} value.
func (s *stack) metric(t *testing.T, series string) float64 {
	t.Helper()
	v, _ := metricAt(t, s.ip, series)
	return v
}

// metricAt reads one sample from the /metrics of the node at ip, and
// whether the node exports it.
func metricAt(t *testing.T, ip, series string) (float64, bool) {
	t.Helper()
	res, err := http.Get("http://" + ip + ":9090/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if ok && name == series {
			v, _ := strconv.ParseFloat(val, 64)
			return v, true
		}
	}
	return 0, false
}

// sipConn is a raw SIP-over-TCP client from a chosen source address.
type sipConn struct {
	t    *testing.T
	c    net.Conn
	par  *sipmsg.ParserStream
	got  []sipmsg.Message
	buf  []byte
	user string
}

func dialSIP(t *testing.T, src, dst string, opts ...func(*net.Dialer)) *sipConn {
	t.Helper()
	d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	for _, o := range opts {
		o(&d)
	}
	c, err := d.Dial("tcp", net.JoinHostPort(dst, "5060"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &sipConn{t: t, c: c, par: sipmsg.NewParser().NewSIPStream(), buf: make([]byte, 65536)}
}

func (c *sipConn) send(text string) error {
	c.c.SetWriteDeadline(time.Now().Add(3 * time.Second))
	_, err := io.WriteString(c.c, text)
	return err
}

// read returns the next message; nil with a timeout error, or the
// connection's end.
func (c *sipConn) read(timeout time.Duration) (sipmsg.Message, error) {
	deadline := time.Now().Add(timeout)
	for len(c.got) == 0 {
		c.c.SetReadDeadline(deadline)
		n, err := c.c.Read(c.buf)
		if n > 0 {
			if perr := c.par.ParseSIPStream(c.buf[:n], func(m sipmsg.Message) { c.got = append(c.got, m) }); perr != nil && !errors.Is(perr, sipmsg.ErrParseSipPartial) {
				return nil, perr
			}
		}
		if err != nil && len(c.got) == 0 {
			return nil, err
		}
	}
	m := c.got[0]
	c.got = c.got[1:]
	return m, nil
}

func (c *sipConn) response(timeout time.Duration) *sipmsg.Response {
	c.t.Helper()
	m, err := c.read(timeout)
	if err != nil {
		c.t.Fatalf("no response: %v", err)
	}
	r, ok := m.(*sipmsg.Response)
	if !ok {
		c.t.Fatalf("not a response: %v", m)
	}
	return r
}

// waitClosed reads until the server ends the connection and returns how
// long that took; it fails after max.
func (c *sipConn) waitClosed(max time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	c.c.SetReadDeadline(start.Add(max))
	for {
		if _, err := c.c.Read(c.buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatalf("connection still open after %s", max)
			}
			return time.Since(start)
		}
	}
}

// register is a REGISTER of number from a TCP client at src.
func register2(number, callID string, cseq int, src, auth string) string {
	lines := []string{
		"REGISTER sip:mcs.z5.test SIP/2.0",
		"Via: SIP/2.0/TCP " + src + ":5999;branch=z9hG4bK" + fmt.Sprintf("%d%d", time.Now().UnixNano(), cseq),
		"Max-Forwards: 70",
		"From: <sip:" + number + "@mcs.z5.test>;tag=t" + callID,
		"To: <sip:" + number + "@mcs.z5.test>",
		"Call-ID: " + callID,
		fmt.Sprintf("CSeq: %d REGISTER", cseq),
		"Contact: <sip:" + number + "@" + src + ":5999;transport=tcp>",
		"Expires: 300",
	}
	if auth != "" {
		lines = append(lines, "Authorization: "+auth)
	}
	return strings.Join(append(lines, "Content-Length: 0"), "\r\n") + "\r\n\r\n"
}

// registerOnce registers number with a fresh Call-ID over c and returns
// the final status and how long the exchange took.
func (c *sipConn) registerOnce(number, user, pass, src string) (int, time.Duration) {
	c.t.Helper()
	start := time.Now()
	callID := fmt.Sprintf("r%d", start.UnixNano())
	if err := c.send(register2(number, callID, 1, src, "")); err != nil {
		c.t.Fatal(err)
	}
	res := c.response(5 * time.Second)
	if res.StatusCode != 401 {
		return int(res.StatusCode), time.Since(start)
	}
	auth := siptest.Digest(res.GetHeader("WWW-Authenticate").Value(), user, pass, "REGISTER", "sip:mcs.z5.test", "c0ffee", 1)
	if err := c.send(register2(number, callID, 2, src, auth)); err != nil {
		c.t.Fatal(err)
	}
	res = c.response(5 * time.Second)
	return int(res.StatusCode), time.Since(start)
}

// TestSIPSlowAndBrokenPeers: a slowloris sender, a half-open connection
// and truncated messages are each closed by their timeout while a normal
// client registers without delay.
func TestSIPSlowAndBrokenPeers(t *testing.T) {
	s := hardStack(t, "\n[sip]\nmessage_timeout = \"2s\"\nidle_timeout = \"3s\"\n")
	s.sipDevice(t, "carol", "4155550101", "carol-desk", "carol-sip-pw")

	var wg sync.WaitGroup
	results := map[string]time.Duration{}
	var mu sync.Mutex
	note := func(k string, d time.Duration) { mu.Lock(); results[k] = d; mu.Unlock() }

	// Slowloris: one byte of a REGISTER a second.
	slow := dialSIP(t, s.sibling(11), s.ip)
	wg.Go(func() {
		msg := register2("4155550101", "slow", 1, s.sibling(11), "")
		start := time.Now()
		one := make([]byte, 1)
		for i := 0; i < len(msg); i++ {
			if slow.send(msg[i:i+1]) != nil {
				break
			}
			if i == 0 {
				start = time.Now() // time runs from the first byte
			}
			// Wait a second, noticing the server closing meanwhile.
			slow.c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := slow.c.Read(one); err != nil && !isTimeout(err) {
				break
			}
			if time.Since(start) > 10*time.Second {
				break
			}
		}
		note("slowloris", time.Since(start))
	})

	// Half-open: connects, never sends.
	half := dialSIP(t, s.sibling(12), s.ip)
	wg.Go(func() { note("half-open", half.waitClosed(10*time.Second)) })

	// Truncated: Content-Length beyond the body, then the sender closes.
	trunc := dialSIP(t, s.sibling(14), s.ip)
	trunc.send("OPTIONS sip:mcs.z5.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKtrunc\r\nMax-Forwards: 70\r\n" +
		"From: <sip:x@mcs.z5.test>;tag=1\r\nTo: <sip:mcs.z5.test>\r\nCall-ID: trunc\r\nCSeq: 1 OPTIONS\r\nContent-Length: 500\r\n\r\nonly ten b")
	trunc.c.(*net.TCPConn).CloseWrite()
	wg.Go(func() { note("truncated", trunc.waitClosed(10*time.Second)) })

	// Meanwhile a normal client registers, again and again.
	good := dialSIP(t, s.sibling(13), s.ip)
	var worst time.Duration
	for i := range 8 {
		code, d := good.registerOnce("4155550101", "carol-desk", "carol-sip-pw", s.sibling(13))
		if code != 200 {
			t.Fatalf("good client, register %d: %d", i, code)
		}
		worst = max(worst, d)
		time.Sleep(500 * time.Millisecond)
	}
	wg.Wait()
	t.Logf("closed after: slowloris %s, half-open %s, truncated %s; normal REGISTER worst %s",
		results["slowloris"].Round(time.Millisecond), results["half-open"].Round(time.Millisecond),
		results["truncated"].Round(time.Millisecond), worst.Round(time.Millisecond))
	if d := results["slowloris"]; d < 1500*time.Millisecond || d > 4*time.Second {
		t.Errorf("slowloris connection closed after %s, want about message_timeout (2s)", d)
	}
	if d := results["half-open"]; d < 2500*time.Millisecond || d > 5*time.Second {
		t.Errorf("half-open connection closed after %s, want about idle_timeout (3s)", d)
	}
	if d := results["truncated"]; d > 4*time.Second {
		t.Errorf("truncated message's connection closed after %s, want by message_timeout (2s)", d)
	}
	if worst > time.Second {
		t.Errorf("a normal REGISTER took %s during the slow peers", worst)
	}
	if n := s.metric(t, `z5_sip_messages_dropped_total{reason="slow-sender",transport="tcp"}`); n < 1 {
		t.Errorf("slow senders counted: %v", n)
	}
	// A truncated datagram is answered 400 (no stream to wait on).
	u, err := net.Dial("udp", net.JoinHostPort(s.ip, "5060"))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.Write([]byte("OPTIONS sip:mcs.z5.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKtr2\r\nMax-Forwards: 70\r\n" +
		"From: <sip:x@mcs.z5.test>;tag=1\r\nTo: <sip:mcs.z5.test>\r\nCall-ID: trunc2\r\nCSeq: 1 OPTIONS\r\nContent-Length: 500\r\n\r\nonly ten b"))
	u.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 4096)
	n, err := u.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "SIP/2.0 400 ") {
		t.Errorf("truncated datagram: %q %v, want a 400", buf[:n], err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestHTTPSSlowloris: on both HTTPS roles, a client that sends its
// request header a byte at a time, and one that never starts TLS, are
// closed by the read-header timeout (5s) while others are served.
func TestHTTPSSlowloris(t *testing.T) {
	s := startStack(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	closed := map[string]time.Duration{}
	for _, port := range []string{"8443", "9443"} {
		addr := net.JoinHostPort(s.ip, port)
		wg.Go(func() {
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Errorf("TLS to %s: %v", addr, err)
				return
			}
			defer c.Close()
			start := time.Now()
			header := "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 40)
			for i := 0; i < len(header); i++ {
				c.SetWriteDeadline(time.Now().Add(2 * time.Second))
				if _, err := c.Write([]byte{header[i]}); err != nil {
					break
				}
				c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				if _, err := c.Read(make([]byte, 512)); err != nil && !isTimeout(err) {
					break // the server answered (408) or closed
				}
			}
			mu.Lock()
			closed["slow header "+port] = time.Since(start)
			mu.Unlock()
		})
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", addr, 3*time.Second)
			if err != nil {
				t.Errorf("TCP to %s: %v", addr, err)
				return
			}
			defer c.Close()
			start := time.Now()
			c.SetReadDeadline(start.Add(15 * time.Second))
			_, err = c.Read(make([]byte, 64))
			mu.Lock()
			closed["no handshake "+port] = time.Since(start)
			if isTimeout(err) {
				closed["no handshake "+port] = -1
			}
			mu.Unlock()
		})
	}
	// Meanwhile the APIs answer.
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer hc.CloseIdleConnections()
	for range 4 {
		for _, port := range []string{"8443", "9443"} {
			start := time.Now()
			res, err := hc.Get("https://" + net.JoinHostPort(s.ip, port) + "/healthz")
			if err != nil {
				t.Fatalf("healthz on %s during slowloris: %v", port, err)
			}
			res.Body.Close()
			if d := time.Since(start); res.StatusCode != 200 || d > time.Second {
				t.Errorf("healthz on %s: %d in %s", port, res.StatusCode, d)
			}
		}
		time.Sleep(time.Second)
	}
	wg.Wait()
	t.Logf("closed after: %v", closed)
	for k, d := range closed {
		if d < 4*time.Second || d > 8*time.Second {
			t.Errorf("%s: closed after %s, want the 5s read-header timeout", k, d)
		}
	}
}

// TestStalledReaderIsDropped: a SIP client that sends requests and stops
// reading fills its window; its connection is dropped once a write has
// waited 10s, and nobody else waits meanwhile.
func TestStalledReaderIsDropped(t *testing.T) {
	s := startStack(t)
	s.sipDevice(t, "dave", "4155550102", "dave-desk", "dave-sip-pw")
	small := func(d *net.Dialer) {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
			return serr
		}
	}
	stalled := dialSIP(t, s.sibling(21), s.ip, small)
	// Each OPTIONS carries 100 Via values of ~300 bytes: its answer echoes
	// them, ~30 KB, so 150 answers are ~4.5 MB the client never reads.
	var vias strings.Builder
	for i := range 100 {
		fmt.Fprintf(&vias, "Via: SIP/2.0/TCP 10.%d.0.1:5060;branch=z9hG4bK%04d%s\r\n", i, i, strings.Repeat("x", 250))
	}
	sent := make(chan int, 1)
	go func() {
		n := 0
		for i := range 150 {
			msg := fmt.Sprintf("OPTIONS sip:%s:5060 SIP/2.0\r\nVia: SIP/2.0/TCP %s:5999;branch=z9hG4bKstall%d\r\n%sMax-Forwards: 70\r\n"+
				"From: <sip:x@mcs.z5.test>;tag=1\r\nTo: <sip:%s>\r\nCall-ID: stall-%d\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
				s.ip, s.sibling(21), i, vias.String(), s.ip, i)
			if stalled.send(msg) != nil {
				break
			}
			n++
		}
		sent <- n
	}()

	good := dialSIP(t, s.sibling(22), s.ip)
	var worst, droppedAt time.Duration
	start := time.Now()
	for time.Since(start) < 14*time.Second {
		code, d := good.registerOnce("4155550102", "dave-desk", "dave-sip-pw", s.sibling(22))
		if code != 200 {
			t.Fatalf("good client: %d", code)
		}
		worst = max(worst, d)
		// Two flows while the stalled one lives, then one.
		if droppedAt == 0 && s.metric(t, "z5_sip_connections") == 1 {
			droppedAt = time.Since(start)
		}
		time.Sleep(500 * time.Millisecond)
	}
	n := <-sent
	// The server closed the stalled connection: reading drains what the
	// kernel holds and then meets the end.
	d := stalled.waitClosed(10 * time.Second)
	t.Logf("stalled client sent %d requests; the server dropped it after %s (drained in %s); normal REGISTER worst %s",
		n, droppedAt.Round(100*time.Millisecond), d.Round(time.Millisecond), worst.Round(time.Millisecond))
	if droppedAt < 8*time.Second || droppedAt > 13*time.Second {
		t.Errorf("stalled connection dropped after %s, want after the 10s write timeout", droppedAt)
	}
	if worst > time.Second {
		t.Errorf("a normal REGISTER took %s while another client was stalled", worst)
	}
	if code, _ := good.registerOnce("4155550102", "dave-desk", "dave-sip-pw", s.sibling(22)); code != 200 {
		t.Fatalf("after the stall: %d", code)
	}
}

// TestAuthFloodBansSource: credential stuffing from one address gets it
// banned (the metric counts it); another address registers normally.
func TestAuthFloodBansSource(t *testing.T) {
	s := startStack(t)
	s.sipDevice(t, "erin", "4155550103", "erin-desk", "erin-sip-pw")
	attacker := s.sibling(31)
	c := dialSIP(t, attacker, s.ip)
	if err := c.send(register2("4155550103", "stuff", 1, attacker, "")); err != nil {
		t.Fatal(err)
	}
	challenge := c.response(3 * time.Second).GetHeader("WWW-Authenticate").Value()
	// 20 guesses, a different user name each time: digests failing for 10
	// distinct user names (ban_auth_failures' default) ban the source, which
	// closes this unregistered connection.
	var err error
	for i := range 20 {
		auth := siptest.Digest(challenge, fmt.Sprintf("user%02d", i), "password1", "REGISTER", "sip:mcs.z5.test", "c0ffee", 1)
		if err = c.send(register2("4155550103", "stuff", i+2, attacker, auth)); err != nil {
			break
		}
	}
	c.waitClosed(5 * time.Second)
	if n := s.metric(t, `z5_floodguard_bans_total{reason="auth_failure",service="sip"}`); n != 1 {
		t.Fatalf("z5_floodguard_bans_total{reason=auth_failure} = %v, want 1", n)
	}
	// A new connection from the banned address is closed at accept.
	again := dialSIP(t, attacker, s.ip)
	again.send(register2("4155550103", "again", 1, attacker, ""))
	if m, err := again.read(3 * time.Second); err == nil {
		t.Fatalf("banned source answered: %v", m)
	}
	if n := s.metric(t, `z5_sip_banned_dropped_total{transport="tcp"}`); n < 1 {
		t.Errorf("connections refused from the banned source: %v", n)
	}
	// A good client elsewhere registers.
	good := dialSIP(t, s.sibling(32), s.ip)
	if code, d := good.registerOnce("4155550103", "erin-desk", "erin-sip-pw", s.sibling(32)); code != 200 || d > time.Second {
		t.Fatalf("good client: %d in %s", code, d)
	}
}

// TestDNSFloodIsRateLimited: a bounded UDP flood from one address is
// mostly dropped or truncated by response rate limiting, while TCP still
// answers in full.
func TestDNSFloodIsRateLimited(t *testing.T) {
	s := startStack(t)
	u, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(s.sibling(41))}, &net.UDPAddr{IP: net.ParseIP(s.ip), Port: 5353})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	const queries = 1000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var full, truncated int
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			u.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := u.Read(buf)
			if err != nil {
				return
			}
			var m dns.Msg
			if m.Unpack(buf[:n]) != nil {
				continue
			}
			if m.Truncated {
				truncated++
			} else {
				full++
			}
			if ctx.Err() != nil && full+truncated >= queries {
				return
			}
		}
	}()
	start := time.Now()
	for i := range queries {
		q := new(dns.Msg)
		q.SetQuestion("zdial.z5.test.", dns.TypeA)
		q.Id = uint16(i)
		b, _ := q.Pack()
		u.Write(b)
		if i%100 == 99 {
			time.Sleep(10 * time.Millisecond) // bounded: 1000 queries in about 0.1-0.2 s
		}
	}
	sendTime := time.Since(start)
	// TCP answers in full during the flood.
	tc := &dns.Client{Net: "tcp", Timeout: 3 * time.Second}
	q := new(dns.Msg)
	q.SetQuestion("zdial.z5.test.", dns.TypeA)
	r, _, err := tc.Exchange(q, net.JoinHostPort(s.ip, "5353"))
	if err != nil || len(r.Answer) != 1 || r.Truncated {
		t.Fatalf("TCP during the flood: %v %v", r, err)
	}
	cancel()
	<-done
	dropped := queries - full - truncated
	t.Logf("%d queries sent in %s: %d answered, %d truncated (TC), %d dropped", queries, sendTime.Round(time.Millisecond), full, truncated, dropped)
	if full > queries/5 || dropped < queries/4 || truncated < queries/10 {
		t.Errorf("rate limiting: %d answered, %d truncated, %d dropped of %d", full, truncated, dropped, queries)
	}
	if n := s.metric(t, `z5_dns_rate_limited_total{action="drop"}`); n < float64(queries/4) {
		t.Errorf("z5_dns_rate_limited_total{action=drop} = %v", n)
	}
}
