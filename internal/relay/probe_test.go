package relay

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/wire/rtpprobe"
)

var probeKey = []byte("probe-session-key-32-bytes-long!")

// newProbeRelay is a relay on loopback over n free ports with the given
// probe rate, closed (and checked for leftovers) when the test ends.
func newProbeRelay(t *testing.T, n, probeRate int) (*Relay, config.PortRange) {
	t.Helper()
	pr := freeRange(t, n)
	r, err := New(filled(Config{Bind: loopback, Ports: pr, ProbeRate: probeRate}), Deps{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Close()
		checkNoProbeGoroutines(t)
		if n := r.AllocatedPorts(); n != 0 {
			t.Errorf("%d ports still allocated after close", n)
		}
	})
	return r, pr
}

func checkNoProbeGoroutines(t *testing.T) {
	t.Helper()
	var stacks string
	for range 100 {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "relay.(*probeSession)") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("probe goroutines alive after close:\n%s", stacks)
}

// prober is a client socket that sends probe datagrams to one relay port.
type prober struct {
	t    *testing.T
	conn *net.UDPConn
}

func newProber(t *testing.T, port int) *prober {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, uint16(port))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &prober{t: t, conn: c}
}

func (p *prober) send(b []byte) {
	p.t.Helper()
	if _, err := p.conn.Write(b); err != nil {
		p.t.Fatal(err)
	}
}

// recv returns the next datagram, or nil when none arrives within wait.
func (p *prober) recv(wait time.Duration) []byte {
	p.conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 2048)
	n, err := p.conn.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

func request(t *testing.T, seq uint32, size int, key []byte) []byte {
	t.Helper()
	b, err := rtpprobe.Request(seq, time.Now(), size, key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenProbeEcho(t *testing.T) {
	r, pr := newProbeRelay(t, 32, 0)
	ports, err := r.OpenProbe(Owner{}, probeKey, 4, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// 16 pairs, 4 samples: pairs 0, 5, 10, 15; the last on its odd port,
	// so both ends of the range are tested.
	want := []int{pr.Min, pr.Min + 10, pr.Min + 20, pr.Max}
	if d := cmp.Diff(want, ports); d != "" {
		t.Errorf("ports (-want +got):\n%s", d)
	}
	if n := r.AllocatedPorts(); n != 8 {
		t.Errorf("AllocatedPorts = %d, want 8 (4 pairs)", n)
	}
	if got := r.Advertise(); got != loopback {
		t.Errorf("Advertise = %s", got)
	}
	for _, port := range ports {
		p := newProber(t, port)
		for _, size := range []int{rtpprobe.Size, 172, rtpprobe.MaxSize} {
			req := request(t, 3, size, probeKey)
			p.send(req)
			rep := p.recv(2 * time.Second)
			if rep == nil {
				t.Fatalf("port %d: no echo for a %d-byte request", port, size)
			}
			if len(rep) > len(req) {
				t.Errorf("port %d: reply %d bytes > request %d", port, len(rep), len(req))
			}
			pk, err := rtpprobe.Parse(rep, probeKey, rtpprobe.KindReply)
			if err != nil || pk.Seq != 3 || pk.Received == 0 {
				t.Errorf("port %d: reply %+v, %v", port, pk, err)
			}
		}
	}
}

func TestOpenProbeDropsInvalid(t *testing.T) {
	r, _ := newProbeRelay(t, 8, 0)
	ports, err := r.OpenProbe(Owner{}, probeKey, 1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	p := newProber(t, ports[0])
	reply := make([]byte, rtpprobe.Size)
	rtpprobe.Packet{Kind: rtpprobe.KindReply, Seq: 1, Sent: 1, Received: 2}.MarshalTo(reply, probeKey)
	for name, b := range map[string][]byte{
		"garbage":   []byte("hello relay"),
		"rtp":       {0x80, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 1},
		"other key": request(t, 1, 172, []byte("some-other-key-of-32-bytes......")),
		"a reply":   reply,
		"oversized": append(request(t, 1, rtpprobe.MaxSize, probeKey), 0),
	} {
		p.send(b)
		if got := p.recv(150 * time.Millisecond); got != nil {
			t.Errorf("%s: answered %q", name, got)
		}
	}
	// The port still answers a valid probe afterwards.
	p.send(request(t, 2, 172, probeKey))
	if p.recv(2*time.Second) == nil {
		t.Error("no echo after the invalid datagrams")
	}
}

func TestOpenProbeRateLimit(t *testing.T) {
	const rate = 10
	r, _ := newProbeRelay(t, 8, rate)
	ports, err := r.OpenProbe(Owner{}, probeKey, 1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	p := newProber(t, ports[0])
	const sent = 40
	for i := range sent {
		p.send(request(t, uint32(i), rtpprobe.Size, probeKey))
	}
	got := 0
	for p.recv(300*time.Millisecond) != nil {
		got++
	}
	// The bucket holds rate tokens and refills rate per second: the
	// burst took well under a second, so a few more at most.
	if got < rate || got > rate+4 {
		t.Errorf("%d replies to %d probes at %d/s", got, sent, rate)
	}
}

func TestOpenProbeReleasesAfterTTL(t *testing.T) {
	r, _ := newProbeRelay(t, 8, 0)
	ports, err := r.OpenProbe(Owner{}, probeKey, 2, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.AllocatedPorts() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d ports still allocated long after the ttl", r.AllocatedPorts())
		}
		time.Sleep(10 * time.Millisecond)
	}
	p := newProber(t, ports[0])
	p.send(request(t, 1, 172, probeKey))
	if got := p.recv(150 * time.Millisecond); got != nil {
		t.Errorf("expired probe port answered %q", got)
	}
	// The ports are free for the next session.
	if _, err := r.OpenProbe(Owner{}, probeKey, 4, time.Second); err != nil {
		t.Errorf("reopen: %v", err)
	}
}

func TestOpenProbeSharesThePool(t *testing.T) {
	r, _ := newProbeRelay(t, 8, 0) // 4 pairs
	if _, err := r.OpenProbe(Owner{}, probeKey, 5, time.Second); !errors.Is(err, ErrNoPorts) {
		t.Errorf("5 pairs of 4: err = %v, want ErrNoPorts", err)
	}
	if _, err := r.OpenProbe(Owner{}, probeKey, 3, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// One pair left: a call's stream takes two pairs (one per side), so
	// it cannot have the probe's ports.
	c := r.NewCall("probe-and-call", nil)
	defer c.Close()
	offer := sdpText(`
		v=0
		o=- 1 1 IN IP4 127.0.0.1
		s=-
		c=IN IP4 127.0.0.1
		t=0 0
		m=audio 49170 RTP/AVP 0`)
	if _, err := c.RewriteSDP(SideA, offer, loopback); !errors.Is(err, ErrNoPorts) {
		t.Errorf("call with one pair left: err = %v, want ErrNoPorts", err)
	}
	if _, err := r.OpenProbe(Owner{}, probeKey, 2, time.Second); !errors.Is(err, ErrNoPorts) {
		t.Errorf("probe with one pair left: err = %v, want ErrNoPorts", err)
	}
}

func TestOpenProbeArgs(t *testing.T) {
	r, _ := newProbeRelay(t, 8, 0)
	for _, tc := range []struct {
		key []byte
		n   int
		ttl time.Duration
	}{
		{probeKey[:8], 1, time.Second},
		{make([]byte, 65), 1, time.Second},
		{probeKey, 0, time.Second},
		{probeKey, 17, time.Second},
		{probeKey, 1, 0},
		{probeKey, 1, 2 * time.Minute},
	} {
		if _, err := r.OpenProbe(Owner{}, tc.key, tc.n, tc.ttl); err == nil {
			t.Errorf("OpenProbe(%d-byte key, %d, %s): no error", len(tc.key), tc.n, tc.ttl)
		}
	}
	if r.AllocatedPorts() != 0 {
		t.Error("rejected calls allocated ports")
	}
	r.Close()
	if _, err := r.OpenProbe(Owner{}, probeKey, 1, time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: err = %v, want ErrClosed", err)
	}
}

func TestOpenProbeClosedWithRelay(t *testing.T) {
	r, _ := newProbeRelay(t, 8, 0)
	if _, err := r.OpenProbe(Owner{}, probeKey, 4, time.Minute); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if n := r.AllocatedPorts(); n != 0 {
		t.Errorf("%d ports allocated after Close", n)
	}
	checkNoProbeGoroutines(t)
}

func TestTakeSpread(t *testing.T) {
	for _, tc := range []struct {
		name  string
		taken []uint16 // by calls first
		n     int
		want  []uint16
	}{
		{"one", nil, 1, []uint16{10000}},
		{"ends", nil, 2, []uint16{10000, 10018}},
		{"four", nil, 4, []uint16{10000, 10006, 10012, 10018}},
		{"all", nil, 10, []uint16{10000, 10002, 10004, 10006, 10008, 10010, 10012, 10014, 10016, 10018}},
		{"nearest free", []uint16{10000, 10006}, 4, []uint16{10002, 10004, 10012, 10018}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPortPool(10000, 10019) // 10 pairs
			// Take every pair, then free those the case keeps free.
			for range 10 {
				p.get()
			}
			for port := uint16(10000); port < 10020; port += 2 {
				if !slices.Contains(tc.taken, port) {
					p.put(port)
				}
			}
			got, ok := p.takeSpread(tc.n, 10000)
			if !ok {
				t.Fatal("takeSpread failed")
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			// Everything left is still handed out once, and nothing twice.
			seen := map[uint16]bool{}
			for _, g := range append(append([]uint16(nil), got...), tc.taken...) {
				seen[g] = true
			}
			for {
				port, ok := p.get()
				if !ok {
					break
				}
				if seen[port] {
					t.Fatalf("pair %d handed out twice", port)
				}
				seen[port] = true
			}
			if len(seen) != 10 {
				t.Errorf("%d distinct pairs, want 10", len(seen))
			}
		})
	}
	p := newPortPool(10000, 10019)
	if _, ok := p.takeSpread(11, 10000); ok {
		t.Error("took 11 pairs of 10")
	}
	if p.allocated() != 0 {
		t.Error("a failed takeSpread allocated ports")
	}
}
