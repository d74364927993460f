package testenv

import (
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestServeDNS(t *testing.T) {
	ln, pc := ListenTCPUDP(t)
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeNameError)
		w.WriteMsg(m)
	})
	ServeDNS(t, &dns.Server{Listener: ln, Handler: h})
	ServeDNS(t, &dns.Server{PacketConn: pc, Handler: h})
	q := new(dns.Msg)
	q.SetQuestion("x.test.", dns.TypeA)
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: 5 * time.Second}
		r, _, err := c.Exchange(q, pc.LocalAddr().String())
		if err != nil || r.Rcode != dns.RcodeNameError {
			t.Errorf("%s: %v %v, want NXDOMAIN", network, r, err)
		}
	}
}

func TestSilentUDP(t *testing.T) {
	ap := SilentUDP(t)
	c, err := net.Dial("udp", ap.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("query")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := c.Read(make([]byte, 16)); err == nil {
		t.Errorf("answered %d bytes", n)
	}
}
