package testenv

import (
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// ServeDNS runs s (its Listener or PacketConn set) until the test ends. It
// returns once s serves, so a test never shuts down a server that has not
// started; the cleanup shuts s down and waits for it.
func ServeDNS(t testing.TB, s *dns.Server) {
	t.Helper()
	started := make(chan struct{})
	s.NotifyStartedFunc = func() { close(started) }
	done := make(chan error, 1)
	go func() { done <- s.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("dns server: %v", err)
	}
	t.Cleanup(func() { s.Shutdown(); <-done })
}

// SilentUDP is a loopback UDP port that takes datagrams and never answers,
// until the test ends: a nameserver behind a firewall that drops them.
func SilentUDP(t testing.TB) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}
