//go:build linux

package kfwd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

// newForwarder loads the program on loopback. Loading needs root (CI runs
// as root) and a kernel with TCX; without either the test is skipped,
// never passed.
func newForwarder(t *testing.T, bind netip.Addr) *Forwarder {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loading eBPF needs root")
	}
	f, err := New(bind, 64)
	if errors.Is(err, ErrNoKernelSupport) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func udp(t *testing.T, ip netip.Addr) (*net.UDPConn, netip.AddrPort) {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		if ip.Is6() {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func rtp(pt uint8, seq uint16, ts uint32, payload int) []byte {
	b := make([]byte, 12+payload)
	b[0] = 0x80
	b[1] = pt
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], 0x5eed)
	return b
}

// recv reads one datagram within a short time; ok false when none came.
func recv(t *testing.T, c *net.UDPConn) (b []byte, from netip.AddrPort, ok bool) {
	t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	n, src, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, netip.AddrPort{}, false
		}
		t.Fatal(err)
	}
	return buf[:n], netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), true
}

// TestForwardsInstalledFlow: RTP from the latched client to the relay's
// socket reaches the other side from the other relay socket, rewritten by
// the kernel, and is counted; RTCP, strangers and a removed flow reach the
// relay's own socket. Over IPv4 and IPv6 loopback.
func TestForwardsInstalledFlow(t *testing.T) {
	for _, ip := range []string{"127.0.0.1", "::1"} {
		t.Run(ip, func(t *testing.T) { testForwardsInstalledFlow(t, netip.MustParseAddr(ip)) })
	}
}

func testForwardsInstalledFlow(t *testing.T, ip netip.Addr) {
	client, clientAddr := udp(t, ip)
	relayA, relayAAddr := udp(t, ip)
	_, relayBAddr := udp(t, ip)
	peer, peerAddr := udp(t, ip)
	stranger, _ := udp(t, ip)
	f := newForwarder(t, ip)

	fl := Flow{From: clientAddr, At: relayAAddr}
	if err := f.Add(fl, Route{From: relayBAddr, To: peerAddr, PT: 96, Clock: 90000}); err != nil {
		t.Fatal(err)
	}
	// Sequence 10-19 without 15: one lost.
	sent := 0
	for seq := uint16(10); seq < 20; seq++ {
		if seq == 15 {
			continue
		}
		pkt := rtp(96, seq, uint32(seq)*3000, 100)
		if _, err := client.WriteToUDPAddrPort(pkt, relayAAddr); err != nil {
			t.Fatal(err)
		}
		sent++
		b, from, ok := recv(t, peer)
		if !ok {
			t.Fatalf("seq %d: nothing reached the peer", seq)
		}
		if from != relayBAddr || binary.BigEndian.Uint16(b[2:]) != seq || len(b) != len(pkt) {
			t.Fatalf("seq %d: got %d bytes seq %d from %s, want %d bytes from %s", seq, len(b), binary.BigEndian.Uint16(b[2:]), from, len(pkt), relayBAddr)
		}
	}
	if b, _, ok := recv(t, relayA); ok {
		t.Fatalf("the relay socket read %d bytes of a forwarded flow", len(b))
	}
	c, ok := f.Read(fl)
	if !ok || c.Packets != uint64(sent) || c.Bytes != uint64(sent*112) || c.Lost != 1 {
		t.Fatalf("counters %+v (%v), want %d packets, %d bytes, 1 lost", c, ok, sent, sent*112)
	}
	if age := time.Since(c.Last); age < 0 || age > 5*time.Second {
		t.Errorf("last packet %s ago", age)
	}

	for _, tc := range []struct {
		name string
		from *net.UDPConn
		pkt  []byte
	}{
		{"rtcp", client, append([]byte{0x80, 200, 0, 6}, make([]byte, 24)...)},
		{"not rtp", client, []byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"stranger", stranger, rtp(96, 30, 0, 20)},
		// RTP whose header does not fit (classifyRTP: malformed).
		{"csrc list past the end", client, append([]byte{0x8f}, rtp(96, 31, 0, 20)[1:]...)},
		{"extension past the end", client, append([]byte{0x90}, append(rtp(96, 32, 0, 0)[1:], 0xbe, 0xde, 0x00, 0x09, 1, 2, 3, 4)...)},
	} {
		if _, err := tc.from.WriteToUDPAddrPort(tc.pkt, relayAAddr); err != nil {
			t.Fatal(err)
		}
		if b, _, ok := recv(t, relayA); !ok || len(b) != len(tc.pkt) {
			t.Errorf("%s: the relay socket did not read it", tc.name)
		}
	}

	final, ok := f.Remove(fl)
	if !ok || final.Packets != uint64(sent) {
		t.Fatalf("removed counters %+v (%v)", final, ok)
	}
	if _, ok := f.Read(fl); ok {
		t.Fatal("flow still installed after Remove")
	}
	client.WriteToUDPAddrPort(rtp(96, 20, 0, 10), relayAAddr)
	if _, _, ok := recv(t, relayA); !ok {
		t.Fatal("after Remove the relay socket read nothing")
	}
	if _, _, ok := recv(t, peer); ok {
		t.Fatal("after Remove the kernel still forwarded")
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	f := newForwarder(t, netip.MustParseAddr("127.0.0.1"))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	_, a := udp(t, netip.MustParseAddr("127.0.0.1"))
	if err := f.Add(Flow{From: a, At: a}, Route{From: a, To: a}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Add after Close: %v", err)
	}
}

// TestRefuses: what the program cannot rewrite in place is refused.
func TestRefuses(t *testing.T) {
	if _, err := New(netip.MustParseAddr("0.0.0.0"), 16); !errors.Is(err, ErrUnsupported) {
		t.Errorf("New(0.0.0.0): %v", err)
	}
	ap := netip.MustParseAddrPort
	for _, fl := range []Flow{
		{From: ap("[::1]:5000"), At: ap("127.0.0.1:4000")},
		{From: ap("127.0.0.1:5000"), At: ap("[::1]:4000")},
		{From: ap("0.0.0.0:5000"), At: ap("127.0.0.1:4000")},
		{From: ap("127.0.0.1:0"), At: ap("127.0.0.1:4000")},
	} {
		if _, err := key(fl); !errors.Is(err, ErrUnsupported) {
			t.Errorf("key(%v): %v", fl, err)
		}
	}
	if k, err := key(Flow{From: ap("[::ffff:127.0.0.1]:5000"), At: ap("127.0.0.1:4000")}); err != nil || k.Saddr != k.Daddr {
		t.Errorf("a mapped IPv4 address is IPv4: %+v %v", k, err)
	}
}

// TestCounters reads the program's record the way Read does.
func TestCounters(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	for _, tc := range []struct {
		name string
		v    kfwdFlow
		want Counters
	}{
		{"nothing yet", kfwdFlow{Clock: 8000}, Counters{Clock: 8000}},
		{"no loss", kfwdFlow{Packets: 5, Bytes: 500, LastNs: 9e9, Started: 1, BaseSeq: 100, MaxSeq: 104, PtPackets: 5, RunStart: 0, Jitter: 160, Clock: 8000},
			Counters{Packets: 5, Bytes: 500, Last: now.Add(-time.Second), Jitter: 10, Clock: 8000}},
		{"two lost across a wrap", kfwdFlow{Packets: 8, Started: 1, BaseSeq: 65530, MaxSeq: 0x10000 + 3, PtPackets: 8},
			Counters{Packets: 8, Lost: 2}},
		{"restart keeps earlier loss", kfwdFlow{Packets: 20, Started: 1, BaseSeq: 1, MaxSeq: 10, PtPackets: 20, RunStart: 10, LostBefore: 3},
			Counters{Packets: 20, Lost: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := counters(&tc.v, now, 10*time.Second)
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestChecksumsOnLoopback: a datagram sent from a raw socket carries the
// UDP checksum its sender computed and nothing marks it as verified, so
// loopback delivers it only if the checksum is right (a control with a
// wrong one is dropped). Through the kernel path its rewritten checksum
// must still be right. Over IPv4 the client, the relay and the peer have
// addresses of their own, so addresses and ports are rewritten; IPv6
// loopback has one address, so only the ports change there.
func TestChecksumsOnLoopback(t *testing.T) {
	for _, tc := range []struct{ client, relay, peer string }{
		{"127.0.0.2", "127.0.0.1", "127.0.0.3"},
		{"::1", "::1", "::1"},
	} {
		t.Run(tc.relay, func(t *testing.T) {
			ip := netip.MustParseAddr(tc.relay)
			f := newForwarder(t, ip)
			client, clientAddr := udp(t, netip.MustParseAddr(tc.client)) // holds the port the raw datagrams claim
			defer client.Close()
			relayA, relayAAddr := udp(t, ip)
			_, relayBAddr := udp(t, ip)
			peer, peerAddr := udp(t, netip.MustParseAddr(tc.peer))
			network := "ip4:udp"
			if ip.Is6() {
				network = "ip6:udp"
			}
			raw, err := net.ListenPacket(network, tc.client)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			send := func(to netip.AddrPort, payload []byte, spoil bool) {
				t.Helper()
				b := udpDatagram(clientAddr, to, payload)
				if spoil {
					b[6] ^= 0x5a
				}
				if _, err := raw.WriteTo(b, &net.IPAddr{IP: to.Addr().AsSlice()}); err != nil {
					t.Fatal(err)
				}
			}

			// The control: a wrong checksum never reaches a socket.
			send(peerAddr, rtp(96, 1, 0, 40), true)
			if _, _, ok := recv(t, peer); ok {
				t.Skip("loopback delivered a datagram with a wrong checksum: this kernel does not check them here")
			}
			send(peerAddr, rtp(96, 1, 0, 40), false)
			if _, _, ok := recv(t, peer); !ok {
				t.Fatal("a raw datagram with a right checksum did not arrive")
			}

			if err := f.Add(Flow{From: clientAddr, At: relayAAddr}, Route{From: relayBAddr, To: peerAddr, PT: 96, Clock: 90000}); err != nil {
				t.Fatal(err)
			}
			for seq := uint16(2); seq < 6; seq++ {
				p := rtp(96, seq, 0, 40+int(seq))
				send(relayAAddr, p, false)
				b, from, ok := recv(t, peer)
				if !ok {
					t.Fatalf("seq %d: dropped after the rewrite (a wrong checksum)", seq)
				}
				if from != relayBAddr || !bytes.Equal(b, p) {
					t.Fatalf("seq %d: %d bytes from %s", seq, len(b), from)
				}
			}
			if _, _, ok := recv(t, relayA); ok {
				t.Fatal("the relay socket read a forwarded datagram")
			}
		})
	}
}

// udpDatagram is a UDP header and payload from src to dst with its
// checksum (RFC 768, RFC 8200 8.1: the pseudo-header of the family).
func udpDatagram(src, dst netip.AddrPort, payload []byte) []byte {
	b := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], src.Port())
	binary.BigEndian.PutUint16(b[2:], dst.Port())
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
	copy(b[8:], payload)
	var pseudo []byte
	s, d := src.Addr().Unmap(), dst.Addr().Unmap()
	pseudo = append(append(pseudo, s.AsSlice()...), d.AsSlice()...)
	if s.Is4() {
		pseudo = append(pseudo, 0, 17, byte(len(b)>>8), byte(len(b)))
	} else {
		pseudo = binary.BigEndian.AppendUint32(pseudo, uint32(len(b)))
		pseudo = append(pseudo, 0, 0, 0, 17)
	}
	var sum uint32
	for _, part := range [][]byte{pseudo, b} {
		for i := 0; i+1 < len(part); i += 2 {
			sum += uint32(part[i])<<8 | uint32(part[i+1])
		}
		if len(part)%2 == 1 {
			sum += uint32(part[len(part)-1]) << 8
		}
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	c := ^uint16(sum)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(b[6:], c)
	return b
}
