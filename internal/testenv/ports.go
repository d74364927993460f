// Package testenv holds helpers that tests of several packages share:
// free loopback port ranges, metric values, HTTP round trips, output
// buffers goroutines write, fakes' writes held in flight, polling for a
// condition, a test run again in a network namespace of its own. Only
// tests import it; accounts in a store are in its teststore package.
package testenv

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/z5vrs/z5/internal/config"
)

// FreeUDPRange finds n consecutive UDP ports (n even, starting even) that
// bind on ip right now. It searches above the kernel's ephemeral range,
// where port-0 sockets of concurrently running tests never land.
func FreeUDPRange(t testing.TB, ip netip.Addr, n int) config.PortRange {
	t.Helper()
	for range 200 {
		base := 61000 + 2*rand.IntN((65534-61000-n)/2)
		if bindAll(ip, base, n) {
			return config.PortRange{Min: base, Max: base + n - 1}
		}
	}
	t.Fatalf("no %d free consecutive ports above 61000 on %s", n, ip)
	return config.PortRange{}
}

// bindAll reports whether ports base..base+n-1 all bind on ip, releasing
// them again.
func bindAll(ip netip.Addr, base, n int) bool {
	var conns []*net.UDPConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for p := base; p < base+n; p++ {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(p))))
		if err != nil {
			return false
		}
		conns = append(conns, c)
	}
	return true
}

// ListenTCPUDP listens on one free loopback port over both TCP and UDP, as
// a nameserver does: TCP first, then UDP on the same port, another port
// where that one's UDP twin is taken.
func ListenTCPUDP(t testing.TB) (net.Listener, net.PacketConn) {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err != nil {
			ln.Close()
			continue
		}
		return ln, pc
	}
	t.Fatal("no loopback port free on both TCP and UDP")
	return nil, nil
}
