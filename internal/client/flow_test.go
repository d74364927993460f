package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/testenv"
)

func TestKeepalive(t *testing.T) {
	f := FlowOptions{PingInterval: 4 * time.Second, PongTimeout: 3 * time.Second}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	var never time.Time
	for _, tt := range []struct {
		name                              string
		now, pingSent, nextPing, lastData time.Time
		opts                              FlowOptions
		want                              kaAction
		next                              time.Time
	}{
		{"idle, ping not due", at(3), never, at(4), at(1), f, kaWait, at(4)},
		{"ping due", at(4), never, at(4), at(1), f, kaPing, at(7)},
		{"ping overdue", at(9), never, at(4), at(1), f, kaPing, at(12)},
		{"awaiting pong", at(5), at(4), at(8), at(1), f, kaWait, at(7)},
		{"pong arrived", at(4.01), at(4), at(8), at(4.01), f, kaPong, at(8)},
		{"a message counts as a pong", at(6), at(4), at(8), at(5.5), f, kaPong, at(8)},
		{"data before the ping is no pong", at(6.9), at(4), at(8), at(3.9), f, kaWait, at(7)},
		{"no pong in time: dead", at(7), at(4), at(8), at(3.9), f, kaDead, never},
		{"never any data: dead", at(7), at(4), at(8), never, f, kaDead, never},
		// One ping outstanding at a time: a wait longer than the interval
		// still ends in a verdict instead of being reset by the next ping.
		{"long wait, not yet", at(9), at(4), at(6), at(1), FlowOptions{PingInterval: 2 * time.Second, PongTimeout: 10 * time.Second}, kaWait, at(14)},
		{"long wait, dead", at(14), at(4), at(6), at(1), FlowOptions{PingInterval: 2 * time.Second, PongTimeout: 10 * time.Second}, kaDead, never},
	} {
		got, next := keepalive(tt.now, tt.pingSent, tt.nextPing, tt.lastData, tt.opts)
		if got != tt.want || !next.Equal(tt.next) {
			t.Errorf("%s: got %v, look again at %v; want %v at %v", tt.name, got, next.Sub(t0), tt.want, tt.next.Sub(t0))
		}
	}
}

func TestPingGap(t *testing.T) {
	for _, tt := range []struct {
		u    float64
		want time.Duration
	}{
		{0, 4 * time.Second},
		{0.5, 3600 * time.Millisecond},
		{0.75, 3400 * time.Millisecond},
	} {
		if got := pingGap(4*time.Second, tt.u); got != tt.want {
			t.Errorf("pingGap(4s, %v) = %v, want %v", tt.u, got, tt.want)
		}
	}
	// Never below 80% of the interval, for any u in [0, 1).
	if got := pingGap(4*time.Second, 0.9999999); got < 3200*time.Millisecond {
		t.Errorf("pingGap(4s, ~1) = %v, below 80%%", got)
	}
}

func TestFlowDefaults(t *testing.T) {
	d := FlowOptions{}.withDefaults()
	if d.PingInterval != DefaultPingInterval || d.PongTimeout != DefaultPongTimeout || d.AttemptTimeout != DefaultAttemptTimeout || d.HealthTimeout != DefaultHealthTimeout {
		t.Fatalf("defaults: %+v", d)
	}
	set := FlowOptions{PingInterval: time.Second, PongTimeout: 2 * time.Second, AttemptTimeout: 3 * time.Second, HealthTimeout: 4 * time.Second}
	if got := set.withDefaults(); got != set {
		t.Fatalf("set values replaced: %+v", got)
	}
	// The worst case the defaults promise for a hung node: detection plus
	// the health lookup, with a whole attempt to spare under 10 s.
	if worst := d.PingInterval + d.PongTimeout + d.HealthTimeout; worst > 10*time.Second-time.Second {
		t.Errorf("a hung node can take %s to detect and look past", worst)
	}
}

func TestFailoverOrder(t *testing.T) {
	a1, a2, a3 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	hosts := []string{"mcs1", "mcs2", "mcs3"}
	addrs := map[string][]netip.Addr{"mcs1": {a1}, "mcs2": {a2}, "mcs3": {a3}}
	str := func(ts []target) string {
		var s []string
		for _, t := range ts {
			s = append(s, t.host+"="+t.addr.String())
		}
		return strings.Join(s, " ")
	}
	for _, tt := range []struct {
		name    string
		addrs   map[string][]netip.Addr
		healthy []netip.Addr
		avoid   netip.Addr
		want    string
	}{
		{"no health, nothing failed: profile order", addrs, nil, netip.Addr{}, "mcs1=192.0.2.1 mcs2=192.0.2.2 mcs3=192.0.2.3"},
		{"healthy first", addrs, []netip.Addr{a3, a2}, netip.Addr{}, "mcs2=192.0.2.2 mcs3=192.0.2.3 mcs1=192.0.2.1"},
		{"failed node last though DNS still lists it", addrs, []netip.Addr{a1, a2, a3}, a1, "mcs2=192.0.2.2 mcs3=192.0.2.3 mcs1=192.0.2.1"},
		{"failed node last without DNS", addrs, nil, a1, "mcs2=192.0.2.2 mcs3=192.0.2.3 mcs1=192.0.2.1"},
		{"healthy, unlisted, failed", addrs, []netip.Addr{a3}, a1, "mcs3=192.0.2.3 mcs2=192.0.2.2 mcs1=192.0.2.1"},
		{"an address under two names once", map[string][]netip.Addr{"mcs1": {a1}, "mcs2": {a1, a2}}, nil, netip.Addr{}, "mcs1=192.0.2.1 mcs2=192.0.2.2"},
		{"unresolved host skipped", map[string][]netip.Addr{"mcs2": {a2}}, nil, a2, "mcs2=192.0.2.2"},
	} {
		if got := str(failoverOrder(hosts, tt.addrs, tt.healthy, tt.avoid)); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
}

// zoneDNS serves A records from a map (name without the trailing dot ->
// addresses), changeable while it runs, on 127.0.0.1 UDP and TCP.
type zoneDNS struct {
	mu sync.Mutex // guards a
	a  map[string][]netip.Addr
}

func (z *zoneDNS) set(name string, addrs ...netip.Addr) {
	z.mu.Lock()
	z.a[name] = addrs
	z.mu.Unlock()
}

func startZoneDNS(t *testing.T, z *zoneDNS) netip.AddrPort {
	t.Helper()
	return serveA(t, 1, func(name string) ([]netip.Addr, bool) {
		z.mu.Lock()
		defer z.mu.Unlock()
		return append([]netip.Addr(nil), z.a[name]...), true
	})
}

// fakeMCS is a SIP registrar as small as a phone needs: it answers
// OPTIONS and REGISTER with 200 and CRLFCRLF pings with a CRLF pong, until
// hang() makes it stop answering anything while its kernel still accepts
// connections and data (a node frozen with SIGSTOP).
type fakeMCS struct {
	t     *testing.T
	ln    net.Listener
	hung  atomic.Bool
	pings atomic.Int64
	// conns counts connections accepted; afterHang those accepted once hung.
	conns, afterHang atomic.Int64
	registers        atomic.Int64

	served  chan struct{} // closed when the accept loop ends
	release chan struct{} // closed at close: hung flows end
	wg      sync.WaitGroup

	mu   sync.Mutex // guards open
	open []net.Conn
}

// listenMCS starts a fake MCS on a fresh loopback address, on port when
// it is not 0.
func listenMCS(t *testing.T, port int) *fakeMCS {
	t.Helper()
	return listenMCSTLS(t, port, nil)
}

// listenMCSTLS is listenMCS speaking TLS with conf (nil: plain TCP).
func listenMCSTLS(t *testing.T, port int, conf *tls.Config) *fakeMCS {
	t.Helper()
	for range 50 {
		b := make([]byte, 3)
		rand.Read(b)
		ip := fmt.Sprintf("127.%d.%d.%d", 10+int(b[0])%200, b[1], 2+int(b[2])%250)
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			continue
		}
		if conf != nil {
			ln = tls.NewListener(ln, conf)
		}
		m := &fakeMCS{t: t, ln: ln, served: make(chan struct{}), release: make(chan struct{})}
		go m.serve()
		t.Cleanup(m.close)
		return m
	}
	t.Fatal("no free loopback address")
	return nil
}

func (m *fakeMCS) addr() netip.AddrPort { return netip.MustParseAddrPort(m.ln.Addr().String()) }

func (m *fakeMCS) hang() { m.hung.Store(true) }

func (m *fakeMCS) close() {
	m.ln.Close()
	<-m.served
	m.mu.Lock()
	for _, c := range m.open {
		c.Close()
	}
	m.mu.Unlock()
	close(m.release)
	m.wg.Wait()
}

func (m *fakeMCS) serve() {
	defer close(m.served)
	for {
		c, err := m.ln.Accept()
		if err != nil {
			return
		}
		m.conns.Add(1)
		if m.hung.Load() {
			m.afterHang.Add(1)
		}
		m.mu.Lock()
		m.open = append(m.open, c)
		m.mu.Unlock()
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.flow(c)
		}()
	}
}

// flow answers one connection. Once hung it reads nothing more, so the
// client's bytes pile up in the kernel's buffers, as with a stopped process.
func (m *fakeMCS) flow(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		if m.hung.Load() {
			<-m.release
			return
		}
		b, err := r.Peek(2)
		if err != nil {
			return
		}
		if string(b) == "\r\n" {
			if four, err := r.Peek(4); err == nil && string(four) == "\r\n\r\n" {
				r.Discard(4)
				m.pings.Add(1)
				if !m.hung.Load() {
					c.Write([]byte("\r\n"))
				}
				continue
			}
			r.Discard(2)
			continue
		}
		var head bytes.Buffer
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			if line == "\r\n" {
				break
			}
		}
		req, err := sipmsg.ParseMessage(head.Bytes())
		if err != nil {
			m.t.Errorf("fake MCS: %v\n%s", err, head.String())
			return
		}
		if cl := req.ContentLength(); cl != nil && *cl > 0 {
			io.CopyN(io.Discard, r, int64(*cl))
		}
		if m.hung.Load() {
			continue
		}
		rq, ok := req.(*sipmsg.Request)
		if !ok {
			continue
		}
		res := sipmsg.NewResponseFromRequest(rq, 200, "OK", nil)
		if rq.Method == sipmsg.REGISTER {
			m.registers.Add(1)
			if ct := rq.Contact(); ct != nil {
				res.AppendHeader(ct.Clone())
			}
			if e := rq.GetHeader("Expires"); e != nil {
				res.AppendHeader(sipmsg.NewHeader("Expires", e.Value()))
			}
		}
		c.Write([]byte(res.String()))
	}
}

// TestHungNodeFailover mounts the hung-node failure on a registered phone:
// its MCS stops answering but keeps the connection (and its kernel keeps
// accepting new ones). The keepalive must declare the flow dead and the
// phone register at the other MCS, without first trying the hung node
// again though DNS still lists it as healthy.
// Over TLS (the profile has a TLS port) the same holds, and the pings ride
// inside TLS.
func TestHungNodeFailover(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) { hungNodeFailover(t, useTLS) })
	}
}

func hungNodeFailover(t *testing.T, useTLS bool) {
	z := &zoneDNS{a: map[string][]netip.Addr{}}
	local := netip.MustParseAddr("127.0.0.1")
	for _, n := range []string{"zdial", "lb.mcs", "mcs1.mcs", "mcs2.mcs", "mcs"} {
		z.set(n+".z5.test", local)
	}
	// Steps 2 and 3 (HTTPS) on 127.0.0.1, then SIP on the two nodes.
	f := newFakeProvider(t, startZoneDNS(t, z))
	var conf1, conf2 *tls.Config
	if useTLS {
		conf1, conf2 = mcsServerTLS(t, f.ca, "mcs1.mcs.z5.test"), mcsServerTLS(t, f.ca, "mcs2.mcs.z5.test")
	}
	mcs1 := listenMCSTLS(t, 0, conf1)
	port := mcs1.addr().Port()
	mcs2 := listenMCSTLS(t, int(port), conf2)
	if useTLS {
		// The profile's TLS port wins over the plain port ZDial hands out.
		f.profile.Ports.SIPTLS = int(port)
	}

	logs := &testenv.SyncBuffer{}
	c := f.loginAlice(t, Options{Log: slog.New(slog.NewTextHandler(logs, nil))})
	ctx := context.Background()
	if useTLS {
		c.state.SIP.Port = 1 // nothing listens there
	} else {
		c.state.SIP.Port = int(port)
	}
	z.set("mcs1.mcs.z5.test", mcs1.addr().Addr())
	z.set("mcs2.mcs.z5.test", mcs2.addr().Addr())
	z.set("lb.mcs.z5.test", mcs1.addr().Addr(), mcs2.addr().Addr())
	c.FlushDNS()
	flow := FlowOptions{PingInterval: 100 * time.Millisecond, PongTimeout: 300 * time.Millisecond, AttemptTimeout: 2 * time.Second}
	ph, err := c.Connect(ctx, PhoneOptions{Flow: flow})
	if err != nil {
		t.Fatal(err)
	}
	defer ph.Close()
	if host, srv := ph.Server(); srv != mcs1.addr() {
		t.Fatalf("registered with %s (%s), want mcs1 %s", host, srv, mcs1.addr())
	}
	// Pings flow and are answered before anything fails.
	testenv.WaitFor(t, 10*time.Second, "two pings answered", func() bool { return mcs1.pings.Load() >= 2 })

	mcs1.hang()
	testenv.WaitFor(t, 30*time.Second, "re-registered with mcs2", func() bool {
		_, srv := ph.Server()
		return srv == mcs2.addr()
	})
	if !strings.Contains(logs.String(), "no keepalive pong from "+mcs1.addr().String()) {
		t.Errorf("failover not by the keepalive:\n%s", logs.String())
	}
	if n := mcs1.afterHang.Load(); n != 0 {
		t.Errorf("%d connections to the hung mcs1 (listed healthy) before mcs2", n)
	}
	if n := mcs2.registers.Load(); n == 0 {
		t.Error("mcs2 saw no REGISTER")
	}
	// The new flow is watched the same way.
	before := mcs2.pings.Load()
	testenv.WaitFor(t, 10*time.Second, "pings to mcs2", func() bool { return mcs2.pings.Load() >= before+2 })
}
