package sipserver

import (
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

func TestOversizeUDP(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxMessageSize = 2000 })
	text := optionsText(e.addr, "UDP")
	big := strings.Replace(text, "Content-Length: 0", "X-Pad: "+strings.Repeat("x", 2500)+"\r\nContent-Length: 0", 1)
	m := udpExchange(t, e.addr, []byte(big), 2*time.Second)
	checkAnswer(t, m, 513, "Message Too Large", "")
}

func TestOversizeTCPClosesWithoutAnswer(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxMessageSize = 2000 })
	c := dialTCP(t, e.addr)
	text := optionsText(e.addr, "TCP")
	c.send(t, strings.Replace(text, "Content-Length: 0", "X-Pad: "+strings.Repeat("x", 2500)+"\r\nContent-Length: 0", 1))
	m, err := c.read(2 * time.Second)
	if m != nil || err != io.EOF {
		t.Fatalf("got %v, %v; want the connection closed without an answer", m, err)
	}
}

func TestBodyBeyondLimitClosesTCP(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxMessageSize = 2000 })
	c := dialTCP(t, e.addr)
	c.send(t, strings.Replace(optionsText(e.addr, "TCP"), "Content-Length: 0", "Content-Length: 99999", 1))
	if m, err := c.read(2 * time.Second); m != nil || err != io.EOF {
		t.Fatalf("got %v, %v; want close", m, err)
	}
}

func TestTooManyHeaders(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxHeaders = 20 })
	text := optionsText(e.addr, "UDP")
	many := strings.Replace(text, "Content-Length: 0", strings.Repeat("X-A: 1\r\n", 30)+"Content-Length: 0", 1)
	checkAnswer(t, udpExchange(t, e.addr, []byte(many), 2*time.Second), 400, "Too Many Headers", "")
}

func TestConflictingContentLengthClosesTCP(t *testing.T) {
	e := newEnv(t, nil)
	c := dialTCP(t, e.addr)
	c.send(t, strings.Replace(optionsText(e.addr, "TCP"), "Content-Length: 0", "Content-Length: 0\r\nl: 5", 1))
	m, _ := c.read(2 * time.Second)
	checkAnswer(t, m, 400, "Conflicting Content-Length", "")
	if m, err := c.read(2 * time.Second); err != io.EOF {
		t.Fatalf("after the answer got %v, %v; want close", m, err)
	}
}

func TestKeepalivePingPong(t *testing.T) {
	e := newEnv(t, nil)
	c := dialTCP(t, e.addr)
	c.send(t, "\r\n\r\n")
	b, err := c.readRaw(2 * time.Second)
	if err != nil || string(b) != "\r\n" {
		t.Fatalf("pong = %q, %v; want CRLF", b, err)
	}
	// A ping split across segments, then a message right behind a ping.
	c.send(t, "\r\n")
	time.Sleep(50 * time.Millisecond)
	c.send(t, "\r\n")
	if b, err := c.readRaw(2 * time.Second); err != nil || string(b) != "\r\n" {
		t.Fatalf("pong to a split ping = %q, %v", b, err)
	}
	c.send(t, "\r\n\r\n"+optionsText(e.addr, "TCP"))
	if b, err := c.readRaw(2 * time.Second); err != nil || !strings.HasPrefix(string(b), "\r\n") {
		t.Fatalf("pong before the answer = %q, %v", b, err)
	}
}

// TestPerIPConnectionCap: at its cap of unauthenticated connections a
// source's connection that made no progress for the longest is closed for
// the newcomer, which is served.
func TestPerIPConnectionCap(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxConnsPerIP = 2 })
	a, b := dialTCP(t, e.addr), dialTCP(t, e.addr)
	for _, c := range []*rawTCP{a, b} {
		c.send(t, optionsText(e.addr, "TCP"))
		if m, err := c.read(2 * time.Second); status(m) != 200 {
			t.Fatalf("connection within the cap: %v %v", m, err)
		}
	}
	third := dialTCP(t, e.addr)
	third.send(t, optionsText(e.addr, "TCP"))
	if m, err := third.read(2 * time.Second); status(m) != 200 {
		t.Fatalf("third connection: %v %v, want served", m, err)
	}
	if _, err := a.readRaw(2 * time.Second); err != io.EOF {
		t.Fatalf("stalest connection: %v, want it closed", err)
	}
	b.send(t, optionsText(e.addr, "TCP"))
	if m, err := b.read(2 * time.Second); status(m) != 200 {
		t.Fatalf("the other connection: %v %v, want served", m, err)
	}
	if n := metricValue(e, "z5_sip_connections_rejected_total"); n != 1 {
		t.Errorf("z5_sip_connections_rejected_total = %v, want 1", n)
	}
}

func TestIdleTimeout(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.IdleTimeout = 300 * time.Millisecond })
	c := dialTCP(t, e.addr)
	start := time.Now()
	if _, err := c.readRaw(3 * time.Second); err != io.EOF {
		t.Fatalf("idle connection: %v, want closed", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("closed after %s, want about 300ms", d)
	}
}

func TestSlowSenderIsCut(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MessageTimeout = 300 * time.Millisecond })
	c := dialTCP(t, e.addr)
	text := optionsText(e.addr, "TCP")
	c.send(t, text[:40])
	start := time.Now()
	for i := 0; i < 10; i++ {
		time.Sleep(100 * time.Millisecond)
		if _, err := c.c.Write([]byte(text[40+i : 41+i])); err != nil {
			break // closed: good
		}
	}
	if _, err := c.readRaw(3 * time.Second); err != io.EOF {
		t.Fatalf("slow sender: %v, want closed", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cut after %s", d)
	}
}

func TestListenSamePortForTCPAndUDP(t *testing.T) {
	e := newEnv(t, nil)
	u, err := net.ListenPacket("udp", e.addr.String())
	if err == nil {
		u.Close()
		t.Fatalf("UDP port %d is free; want the server on it", e.addr.Port())
	}
	if m := udpExchange(t, e.addr, []byte(optionsText(e.addr, "UDP")), 2*time.Second); status(m) != 200 {
		t.Fatalf("UDP OPTIONS: %v", m)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestTLS(t *testing.T) {
	e := newEnv(t, nil)
	srv, ca := e.tlsServer(t, nil)
	conn, err := tls.Dial("tcp", srv.TLSAddr().String(), &tls.Config{RootCAs: ca.Pool(), ServerName: "mcs1.mcs.z5.test"})
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	defer conn.Close()
	c := &rawTCP{c: conn, par: sipmsg.NewParser().NewSIPStream()}
	c.send(t, optionsText(srv.TLSAddr(), "TLS"))
	m, err := c.read(2 * time.Second)
	if err != nil || status(m) != 200 {
		t.Fatalf("OPTIONS over TLS: %v %v", m, err)
	}
	c.send(t, "\r\n\r\n")
	if b, err := c.readRaw(2 * time.Second); err != nil || string(b) != "\r\n" {
		t.Fatalf("pong over TLS: %q %v", b, err)
	}
}

// TestTCPMessagesAcrossIdleWaits: a plain TCP flow gives its read buffer
// back while it waits with nothing buffered, and keeps it while a message
// is incomplete: messages split across waits, a message larger than the
// buffer, and two flows' halves interleaved all arrive whole.
func TestTCPMessagesAcrossIdleWaits(t *testing.T) {
	e := newEnv(t, nil)
	a, b := dialTCP(t, e.addr), dialTCP(t, e.addr)
	pieces := func(c *rawTCP, text string, n int) {
		for i := range n {
			c.send(t, text[i*len(text)/n:(i+1)*len(text)/n])
			time.Sleep(30 * time.Millisecond)
		}
	}
	answered := func(c *rawTCP, what string) {
		t.Helper()
		if m, err := c.read(2 * time.Second); status(m) != 200 {
			t.Fatalf("%s: %v %v", what, m, err)
		}
	}
	pieces(a, optionsText(e.addr, "TCP"), 3)
	answered(a, "a message in three pieces")
	a.send(t, optionsText(e.addr, "TCP"))
	answered(a, "a message after an idle wait")
	big := strings.Replace(optionsText(e.addr, "TCP"), "Content-Length: 0", "X-Pad: "+strings.Repeat("x", 9000)+"\r\nContent-Length: 0", 1)
	pieces(a, big, 4)
	answered(a, "a message larger than the read buffer")

	// a's first half waits buffered while b's whole message comes and goes.
	text := optionsText(e.addr, "TCP")
	a.send(t, text[:len(text)/2])
	time.Sleep(30 * time.Millisecond)
	b.send(t, optionsText(e.addr, "TCP"))
	answered(b, "the other flow's message")
	a.send(t, text[len(text)/2:])
	answered(a, "the message completed after the other flow's")
	a.send(t, "\r\n\r\n")
	if p, err := a.readRaw(2 * time.Second); err != nil || string(p) != "\r\n" {
		t.Fatalf("pong after idle = %q, %v", p, err)
	}
}
