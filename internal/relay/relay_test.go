package relay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/testenv"
)

// client is one softphone on loopback: audio RTP and RTCP on separate
// sockets (RTCP announced with a=rtcp, or on port+1 when rtcpPlus1), video
// with rtcp-mux on one socket.
type client struct {
	audio, audioRTCP, video *udpPeer
	rtcpPlus1               bool
}

func newClient(t testing.TB, rtcpPlus1 bool) *client {
	t.Helper()
	c := &client{video: newPeer(t, "127.0.0.1"), rtcpPlus1: rtcpPlus1}
	if !rtcpPlus1 {
		c.audio, c.audioRTCP = newPeer(t, "127.0.0.1"), newPeer(t, "127.0.0.1")
		return c
	}
	// RTP on an even port and RTCP on the next: retry until both bind.
	for range 100 {
		rtp := newPeer(t, "127.0.0.1")
		if rtp.port()%2 != 0 {
			rtp.conn.Close()
			continue
		}
		rc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: rtp.port() + 1})
		if err != nil {
			rtp.conn.Close()
			continue
		}
		t.Cleanup(func() { rc.Close() })
		c.audio, c.audioRTCP = rtp, &udpPeer{t: t, conn: rc}
		return c
	}
	t.Fatal("no free even/odd port pair on loopback")
	return nil
}

func (c *client) sdp(version int) []byte { return c.describe(version, "") }

// describe is c's description. With crypto (a=crypto lines) both streams
// are SDES-keyed: audio RTP/SAVP, video RTP/SAVPF.
func (c *client) describe(version int, crypto string) []byte {
	rtcpLine := fmt.Sprintf("a=rtcp:%d", c.audioRTCP.port())
	if c.rtcpPlus1 {
		rtcpLine = "a=ptime:20"
	}
	audio, video := "RTP/AVP", "RTP/AVPF"
	if crypto != "" {
		audio, video, crypto = "RTP/SAVP", "RTP/SAVPF", "\n"+crypto
	}
	return sdpText(fmt.Sprintf(`
		v=0
		o=- 42 %d IN IP4 127.0.0.1
		s=-
		c=IN IP4 127.0.0.1
		t=0 0
		m=audio %d %s 0
		a=rtpmap:0 PCMU/8000
		%s%s
		m=video %d %s 96
		a=rtpmap:96 H264/90000
		a=rtcp-mux%[5]s`, version, c.audio.port(), audio, rtcpLine, crypto, c.video.port(), video))
}

// relayPorts reads the RTP ports of a rewritten description.
func relayPorts(t testing.TB, body []byte) (audio, video netip.AddrPort) {
	t.Helper()
	p, err := parseSDP(body)
	if err != nil {
		t.Fatalf("rewritten sdp does not parse: %v\n%s", err, body)
	}
	if len(p.streams) != 2 {
		t.Fatalf("rewritten sdp has %d m-lines", len(p.streams))
	}
	return p.streams[0].rtpPeer(), p.streams[1].rtpPeer()
}

func plus1(ap netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(ap.Addr(), ap.Port()+1) }

// callSetup is a call between two clients through the relay. relayA* are
// the relay's caller-facing addresses (where the caller sends), relayB*
// the callee-facing ones.
type callSetup struct {
	call                     *Call
	a, b                     *client
	relayAAudio, relayAVideo netip.AddrPort
	relayBAudio, relayBVideo netip.AddrPort
}

// audioBothWays sends fromA from the caller's audio socket and fromB, once
// fromA arrived, from the callee's: each must reach the other side from the
// relay port facing it.
func (cs *callSetup) audioBothWays(fromA, fromB []byte) {
	cs.a.audio.send(cs.relayAAudio, fromA)
	cs.b.audio.expect(fromA, cs.relayBAudio)
	cs.b.audio.send(cs.relayBAudio, fromB)
	cs.a.audio.expect(fromB, cs.relayAAudio)
}

func setupCall(t testing.TB, r *Relay, bPlus1 bool, onTimeout func()) *callSetup {
	t.Helper()
	cs := &callSetup{call: r.NewCall(t.Name(), onTimeout), a: newClient(t, false), b: newClient(t, bPlus1)}
	t.Cleanup(func() { cs.call.Close() })
	offer, err := cs.call.RewriteSDP(SideA, cs.a.sdp(1), loopback)
	if err != nil {
		t.Fatal(err)
	}
	cs.relayBAudio, cs.relayBVideo = relayPorts(t, offer)
	answer, err := cs.call.RewriteSDP(SideB, cs.b.sdp(1), loopback)
	if err != nil {
		t.Fatal(err)
	}
	cs.relayAAudio, cs.relayAVideo = relayPorts(t, answer)
	cs.call.Answered()
	return cs
}

func statsOf(c *Call, leg, media string) (s struct {
	Packets, Bytes, Dropped, RTCP uint64
	Lost                          int64
	Jitter                        float64
}) {
	for _, st := range c.Stats() {
		if st.Leg == leg && st.Media == media {
			s.Packets, s.Bytes, s.Dropped, s.RTCP, s.Lost, s.Jitter = st.Packets, st.Bytes, st.Dropped, st.RTCPCount, st.Lost, st.JitterMS
		}
	}
	return s
}

func receiverReport(ssrc, about uint32, lost uint32, jitter uint32) []byte {
	b, err := (&rtcp.ReceiverReport{SSRC: ssrc, Reports: []rtcp.ReceptionReport{
		{SSRC: about, TotalLost: lost, Jitter: jitter, LastSequenceNumber: 100},
	}}).Marshal()
	if err != nil {
		panic(err)
	}
	return b
}

func TestForwardAudioVideo(t *testing.T) {
	for _, tc := range []struct {
		bPlus1 bool
		io     ioMode
	}{{false, defaultIO}, {true, defaultIO}, {false, ioPerSocket}, {true, ioPerSocket}, {true, ioPerSocketBatch}} {
		bPlus1 := tc.bPlus1
		t.Run(fmt.Sprintf("callee RTCP on port+1 %v, I/O %v", tc.bPlus1, tc.io), func(t *testing.T) {
			reg := prometheus.NewRegistry()
			r, _ := newTestRelay(t, relayOpts{reg: reg})
			r.io = tc.io
			cs := setupCall(t, r, bPlus1, nil)
			a, b := cs.a, cs.b

			// Audio RTP both ways: the caller sends first and latches;
			// the callee gets it from the relay's callee-facing port.
			p1 := rtpPacket(0, 1, 160, 0xa0a0a0a0, "caller audio 1")
			cs.audioBothWays(p1, rtpPacket(0, 7, 160, 0xb0b0b0b0, "callee audio 1"))

			// RTCP on the RTCP ports (a=rtcp for the caller, port+1 or
			// a=rtcp for the callee).
			rr := receiverReport(0xa0a0a0a0, 0xb0b0b0b0, 3, 80)
			a.audioRTCP.send(plus1(cs.relayAAudio), rr)
			b.audioRTCP.expect(rr, plus1(cs.relayBAudio))
			rr2 := receiverReport(0xb0b0b0b0, 0xa0a0a0a0, 1, 16)
			b.audioRTCP.send(plus1(cs.relayBAudio), rr2)
			a.audioRTCP.expect(rr2, plus1(cs.relayAAudio))

			// Video with rtcp-mux: RTP and RTCP share the RTP port.
			v1 := rtpPacket(96, 100, 9000, 0xc0c0c0c0, strings.Repeat("v", 1100))
			a.video.send(cs.relayAVideo, v1)
			b.video.expect(v1, cs.relayBVideo)
			v2 := rtpPacket(96|0x80, 200, 9000, 0xd0d0d0d0, "callee video")
			b.video.send(cs.relayBVideo, v2)
			a.video.expect(v2, cs.relayAVideo)
			vrr := receiverReport(0xc0c0c0c0, 0xd0d0d0d0, 0, 900)
			a.video.send(cs.relayAVideo, vrr)
			b.video.expect(vrr, cs.relayBVideo)
			b.video.send(cs.relayBVideo, vrr)
			a.video.expect(vrr, cs.relayAVideo)

			ca, cb := statsOf(cs.call, "caller", "audio"), statsOf(cs.call, "callee", "audio")
			if ca.Packets != 2 || ca.Bytes != uint64(len(p1)+len(rr)) || ca.RTCP != 1 || ca.Dropped != 0 {
				t.Errorf("caller audio stats %+v", ca)
			}
			// The callee's RR says 1 packet of the caller's audio was lost
			// and jitter was 16 samples at 8 kHz = 2 ms.
			if ca.Lost != 1 || ca.Jitter != 2 {
				t.Errorf("caller audio loss/jitter from callee RTCP: %d / %v ms, want 1 / 2", ca.Lost, ca.Jitter)
			}
			if cb.Packets != 2 || cb.RTCP != 1 || cb.Lost != 3 || cb.Jitter != 10 {
				t.Errorf("callee audio stats %+v", cb)
			}
			cv := statsOf(cs.call, "caller", "video")
			if cv.Packets != 2 || cv.RTCP != 1 || cv.Jitter != 10 {
				t.Errorf("caller video stats %+v", cv)
			}
			if n := len(cs.call.Stats()); n != 4 {
				t.Errorf("%d stats entries, want 4", n)
			}
			// The counter is bumped after the write the peer has already
			// read, so give the forwarding goroutine a moment.
			got := testenv.Metric(t, reg, "z5_relay_packets_total", "")
			for deadline := time.Now().Add(2 * time.Second); got != 8 && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
				got = testenv.Metric(t, reg, "z5_relay_packets_total", "")
			}
			if got != 8 {
				t.Errorf("z5_relay_packets_total = %v, want 8", got)
			}
			if got := testenv.Metric(t, reg, "z5_relay_active_calls", ""); got != 1 {
				t.Errorf("z5_relay_active_calls = %v", got)
			}
			if got := testenv.Metric(t, reg, "z5_relay_allocated_ports", ""); got != 8 {
				t.Errorf("z5_relay_allocated_ports = %v, want 8", got)
			}
		})
	}
}

func TestStrangerAndHijack(t *testing.T) {
	for _, io := range []ioMode{defaultIO, ioPerSocket, ioPerSocketBatch} {
		t.Run(io.String(), func(t *testing.T) { testStrangerAndHijack(t, io) })
	}
}

func testStrangerAndHijack(t *testing.T, io ioMode) {
	reg := prometheus.NewRegistry()
	r, _ := newTestRelay(t, relayOpts{reg: reg})
	r.io = io
	cs := setupCall(t, r, false, nil)
	a := cs.a

	// Before anyone latched: another address (127.0.0.2 is loopback too,
	// but not the caller's signalling address) sends to the caller-facing
	// port. Nothing may reach the callee, and the drop is counted.
	if c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}); err == nil {
		stranger := &udpPeer{t: t, conn: c}
		t.Cleanup(func() { c.Close() })
		stranger.send(cs.relayAAudio, rtpPacket(0, 1, 0, 0x5555, "bleed me"))
		waitFor(t, "stranger drop", func() bool { return statsOf(cs.call, "caller", "audio").Dropped == 1 })
	} else {
		t.Logf("127.0.0.2 not bindable (%v); skipping the other-address stranger", err)
	}

	// The caller latches; the first thing the callee sees is the caller's
	// packet, not the stranger's (same socket, in order).
	cs.audioBothWays(rtpPacket(0, 1, 160, 0xa0a0a0a0, "caller"), rtpPacket(0, 1, 160, 0xb0b0b0b0, "callee"))

	// Hijack: the caller's IP but another port, to the latched port.
	dropped := statsOf(cs.call, "caller", "audio").Dropped
	hijacker := newPeer(t, "127.0.0.1")
	hijacker.send(cs.relayAAudio, rtpPacket(0, 2, 320, 0xa0a0a0a0, "hijack"))
	waitFor(t, "hijack drop", func() bool { return statsOf(cs.call, "caller", "audio").Dropped == dropped+1 })
	// The legitimate stream goes on; the callee never saw the hijacker,
	// and the callee's media still goes to the caller, not the hijacker.
	cs.audioBothWays(rtpPacket(0, 2, 320, 0xa0a0a0a0, "caller again"), rtpPacket(0, 2, 320, 0xb0b0b0b0, "callee again"))
	hijacker.expectNothing()

	// A stranger on the callee-facing side too.
	hijacker.send(cs.relayBAudio, rtpPacket(0, 3, 480, 0xb0b0b0b0, "inject"))
	waitFor(t, "callee-side drop", func() bool { return statsOf(cs.call, "callee", "audio").Dropped == 1 })
	a.audio.expectNothing()

	if got := testenv.Metric(t, reg, "z5_relay_dropped_packets_total", "reason=stranger"); got < 2 {
		t.Errorf("stranger drops metric = %v", got)
	}
}

// TestReinviteRelatch: a new media address in a re-INVITE (the client
// reopened its socket) lets the side latch afresh; the old one is then a
// stranger.
func TestReinviteRelatch(t *testing.T) {
	r, _ := newTestRelay(t, relayOpts{})
	cs := setupCall(t, r, false, nil)
	a, b := cs.a, cs.b
	p := rtpPacket(0, 1, 160, 1, "old socket")
	a.audio.send(cs.relayAAudio, p)
	b.audio.expect(p, cs.relayBAudio)

	old := a.audio
	a.audio = newPeer(t, "127.0.0.1")
	out, err := cs.call.RewriteSDP(SideA, a.sdp(2), loopback)
	if err != nil {
		t.Fatal(err)
	}
	if au, vi := relayPorts(t, out); au != cs.relayBAudio || vi != cs.relayBVideo {
		t.Fatalf("re-INVITE moved the relay ports: %s %s", au, vi)
	}
	p = rtpPacket(0, 2, 320, 1, "new socket")
	a.audio.send(cs.relayAAudio, p)
	b.audio.expect(p, cs.relayBAudio)
	old.send(cs.relayAAudio, rtpPacket(0, 3, 480, 1, "old again"))
	b.audio.expectNothing()
}

func TestPortExhaustion(t *testing.T) {
	reg := prometheus.NewRegistry()
	// 8 ports: 4 pairs, 2 streams.
	r, pr := newTestRelay(t, relayOpts{ports: 8, reg: reg})
	a := newClient(t, false)
	c1 := r.NewCall("first", nil)
	if _, err := c1.RewriteSDP(SideA, a.sdp(1), loopback); err != nil {
		t.Fatal(err)
	}
	if n := r.AllocatedPorts(); n != 8 {
		t.Fatalf("allocated %d ports, want 8 of %s", n, pr)
	}
	c2 := r.NewCall("second", nil)
	_, err := c2.RewriteSDP(SideA, a.sdp(1), loopback)
	if !errors.Is(err, ErrNoPorts) {
		t.Fatalf("second call: %v, want ErrNoPorts", err)
	}
	if r.ActiveCalls() != 2 {
		t.Errorf("active calls %d", r.ActiveCalls())
	}
	if got := testenv.Metric(t, reg, "z5_relay_port_exhaustion_total", ""); got != 1 {
		t.Errorf("exhaustion metric %v", got)
	}
	// A re-INVITE that adds a stream fails too, and changes nothing.
	three := sdpText(string(a.sdp(2)) + "m=text 5000 RTP/AVP 98\r\n")
	if _, err := c1.RewriteSDP(SideA, three, loopback); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("adding a stream: %v, want ErrNoPorts", err)
	}
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	if n := r.AllocatedPorts(); n != 0 {
		t.Fatalf("after close %d ports allocated", n)
	}
	if _, err := c2.RewriteSDP(SideA, a.sdp(1), loopback); err != nil {
		t.Fatalf("after the first call ended: %v", err)
	}
	c2.Close()
	if r.ActiveCalls() != 0 {
		t.Errorf("active calls %d after close", r.ActiveCalls())
	}
}

// TestPortInUse: a port another process holds is skipped, not fatal.
func TestPortInUse(t *testing.T) {
	r, pr := newTestRelay(t, relayOpts{ports: 10})
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: pr.Min + 1})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	c := r.NewCall("busy", nil)
	defer c.Close()
	out, err := c.RewriteSDP(SideA, newClient(t, false).sdp(1), loopback)
	if err != nil {
		t.Fatal(err)
	}
	au, _ := relayPorts(t, out)
	if int(au.Port()) == pr.Min {
		t.Errorf("relay used the pair whose RTCP port is busy")
	}
}

func TestNewValidates(t *testing.T) {
	good := filled(Config{Bind: loopback, Ports: freeRange(t, 8)})
	tests := []struct {
		name string
		mod  func(*Config)
		err  string
	}{
		{"no bind", func(c *Config) { c.Bind = netip.Addr{} }, "bind address required"},
		{"unspecified bind without advertise", func(c *Config) { c.Bind = netip.IPv4Unspecified() }, "advertise address is required"},
		{"bad range", func(c *Config) { c.Ports.Min, c.Ports.Max = 30000, 20000 }, "port range"},
		{"too many streams", func(c *Config) { c.MaxStreams = maxStreams + 1 }, "media streams per call"},
		{"tiny range", func(c *Config) { c.Ports.Max = c.Ports.Min + 2 }, "a stream needs 2"},
		{"no timeout", func(c *Config) { c.MediaTimeout = 0 }, "media timeout"},
		{"no streams", func(c *Config) { c.MaxStreams = 0 }, "media streams per call"},
		{"no probe rate", func(c *Config) { c.ProbeRate = 0 }, "probe rate"},
	}
	for _, tt := range tests {
		cfg := good
		tt.mod(&cfg)
		if _, err := New(cfg, Deps{}); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: %v, want error containing %q", tt.name, err, tt.err)
		}
	}
	reg := prometheus.NewRegistry()
	if _, err := New(good, Deps{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(good, Deps{Registerer: reg}); err == nil {
		t.Error("second relay on one registry: no error")
	}
}

// TestStatsWithoutRTCP: with no RTCP passing, loss and jitter come from
// the relay's own count of the RTP it received.
func TestStatsWithoutRTCP(t *testing.T) {
	r, _ := newTestRelay(t, relayOpts{})
	cs := setupCall(t, r, false, nil)
	for _, seq := range []uint16{1, 2, 4} {
		p := rtpPacket(0, seq, uint32(seq)*160, 7, "x")
		cs.a.audio.send(cs.relayAAudio, p)
		cs.b.audio.expect(p, cs.relayBAudio)
	}
	if st := statsOf(cs.call, "caller", "audio"); st.Packets != 3 || st.Lost != 1 {
		t.Errorf("caller audio %+v, want 3 packets, 1 lost", st)
	}
}

// TestIPv6 forwards over ::1, every way of reading sockets.
func TestIPv6(t *testing.T) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	c.Close()
	v6 := netip.IPv6Loopback()
	for _, io := range []ioMode{defaultIO, ioPerSocket, ioPerSocketBatch} {
		t.Run(io.String(), func(t *testing.T) {
			r, _ := newTestRelay(t, relayOpts{bind: v6})
			r.io = io
			call := r.NewCall("v6", nil)
			defer call.Close()
			a, b := newPeer(t, "::1"), newPeer(t, "::1")
			offer := sdpText(fmt.Sprintf("v=0\no=- 1 1 IN IP6 ::1\ns=-\nc=IN IP6 ::1\nt=0 0\nm=audio %d RTP/AVP 0\na=rtcp-mux", a.port()))
			answer := sdpText(fmt.Sprintf("v=0\no=- 2 2 IN IP6 ::1\ns=-\nc=IN IP6 ::1\nt=0 0\nm=audio %d RTP/AVP 0\na=rtcp-mux", b.port()))
			out, err := call.RewriteSDP(SideA, offer, v6)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), "c=IN IP6 ::1") {
				t.Errorf("offer not anchored on ::1:\n%s", out)
			}
			po, _ := parseSDP(out)
			toB := po.streams[0].rtpPeer()
			out, err = call.RewriteSDP(SideB, answer, v6)
			if err != nil {
				t.Fatal(err)
			}
			pa, _ := parseSDP(out)
			toA := pa.streams[0].rtpPeer()
			p := rtpPacket(0, 1, 0, 1, "six")
			a.send(toA, p)
			b.expect(p, toB)
			rr := receiverReport(2, 1, 0, 0)
			b.send(toB, rr)
			a.expect(rr, toA)
		})
	}
}
