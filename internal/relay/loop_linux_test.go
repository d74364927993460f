package relay

import (
	"net"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSendRecvRaw sends with sendTo and reads with recvmmsg across the
// socket families a loop meets: IPv4, IPv6, and a dual-stack wildcard
// socket (what Go binds for "0.0.0.0") sending to an IPv4 peer.
func TestSendRecvRaw(t *testing.T) {
	for _, tc := range []struct {
		name       string
		from, to   string
		wantSrc    string // the source recvmmsg reports, unmapped
		skipIfNoV6 bool
	}{
		{"ipv4", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1", false},
		{"ipv6", "[::1]:0", "[::1]:0", "::1", true},
		{"wildcard to ipv4", "0.0.0.0:0", "127.0.0.1:0", "127.0.0.1", false},
		{"ipv4 to wildcard", "127.0.0.1:0", "0.0.0.0:0", "127.0.0.1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(tc.from)))
			if err != nil {
				if tc.skipIfNoV6 {
					t.Skipf("no IPv6 loopback: %v", err)
				}
				t.Fatal(err)
			}
			b, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(tc.to)))
			if err != nil {
				t.Fatal(err)
			}
			bPort := b.LocalAddr().(*net.UDPAddr).AddrPort().Port()
			dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), bPort)
			if tc.skipIfNoV6 {
				dst = netip.AddrPortFrom(netip.IPv6Loopback(), bPort)
			}
			afd, av6, err := detach(a)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(afd)
			bfd, _, err := detach(b)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(bfd)
			if err := sendTo(afd, av6, []byte("hello"), dst); err != nil {
				t.Fatalf("sendTo %v: %v", dst, err)
			}
			m := newMmsgIO()
			var n int
			for range 1000 { // non-blocking: the datagram is there at once on loopback
				if n, err = m.recv(bfd); err == nil {
					break
				}
			}
			if err != nil || n != 1 {
				t.Fatalf("recv: %d datagrams, %v", n, err)
			}
			got, src := m.datagram(0), m.source(0)
			if string(got) != "hello" || src.Addr().Unmap().String() != tc.wantSrc || src.Port() == 0 {
				t.Errorf("got %q from %v, want %q from %s", got, src, "hello", tc.wantSrc)
			}
		})
	}
}
