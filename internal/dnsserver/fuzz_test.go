package dnsserver

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// FuzzHandle feeds arbitrary packets through unpack, Handle and pack, and
// through the socket path (handlePacket): nothing may panic, and whatever
// Handle returns must pack and fit the UDP limit.
func FuzzHandle(f *testing.F) {
	seed := func(m *dns.Msg) {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	for _, q := range []string{
		"zdial.z5.test. A", "LB.mcs.z5.test. A", "mcs.z5.test. NAPTR", "_sip._tcp.mcs.z5.test. SRV",
		"z5.test. NS", "z5.test. ANY", "z5.test. AXFR", "nope.z5.test. TXT", "example.com. A", ". OPT",
	} {
		m := query(f, q)
		seed(m)
		m.SetEdns0(4096, true)
		seed(m)
	}
	f.Add([]byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff}, false)
	f.Add([]byte{}, false)

	cfg := devConfig(f)
	cfg.Ports.SIPTLS = 5061
	s := newServer(f, cfg, nil)
	client := netip.MustParseAddr("192.0.2.1")
	f.Fuzz(func(t *testing.T, b []byte, tcp bool) {
		var req dns.Msg
		if req.Unpack(b) == nil {
			if resp := s.Handle(&req, client, tcp); resp != nil {
				out, err := resp.Pack()
				if err != nil {
					t.Fatalf("pack response to %v: %v", &req, err)
				}
				if !tcp && len(out) > s.udpSize {
					t.Fatalf("UDP response of %d bytes", len(out))
				}
			}
		}
		s.handlePacket(b, client, tcp, nil)
	})
}
