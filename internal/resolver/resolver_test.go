package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/z5vrs/z5/internal/testenv"
)

// fakeNS is a tiny authoritative server for tests: name -> A records, with
// optional truncation of UDP answers and a query counter.
type fakeNS struct {
	addr     netip.AddrPort
	queries  atomic.Int64
	truncate bool
}

func startNS(t *testing.T, records map[string][]string, truncate, udp, tcp bool) *fakeNS {
	t.Helper()
	f := &fakeNS{truncate: truncate}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		f.queries.Add(1)
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		name := q.Question[0].Name
		ips, ok := records[name]
		if !ok {
			m.Rcode = dns.RcodeNameError
			soa, _ := dns.NewRR("z5.test. 60 IN SOA ns1.z5.test. h.z5.test. 1 60 60 60 5")
			m.Ns = append(m.Ns, soa)
		}
		if q.Question[0].Qtype == dns.TypeA {
			for _, ip := range ips {
				rr, _ := dns.NewRR(fmt.Sprintf("%s 2 IN A %s", name, ip))
				m.Answer = append(m.Answer, rr)
			}
		}
		if f.truncate && w.LocalAddr().Network() == "udp" {
			m.Truncated, m.Answer = true, nil
		}
		w.WriteMsg(m)
	})
	tl, pc := testenv.ListenTCPUDP(t) // one port for both
	f.addr = netip.MustParseAddrPort(tl.Addr().String())
	if udp {
		testenv.ServeDNS(t, &dns.Server{PacketConn: pc, Handler: h})
	} else {
		pc.Close()
	}
	if tcp {
		testenv.ServeDNS(t, &dns.Server{Listener: tl, Handler: h})
	} else {
		tl.Close()
	}
	return f
}

func deadAddr(t *testing.T) netip.AddrPort {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddrPort(l.Addr().String())
	l.Close()
	return a
}

var zone = map[string][]string{
	"zdial.z5.test.":  {"127.0.0.1"},
	"lb.mcs.z5.test.": {"127.0.0.1", "127.0.0.2"},
}

func TestLookup(t *testing.T) {
	tests := []struct {
		name       string
		servers    func(t *testing.T) []netip.AddrPort
		host       string
		want       int
		wantErr    error
		wantServer int // index of the server that answered
	}{
		{"first answers", func(t *testing.T) []netip.AddrPort {
			return []netip.AddrPort{startNS(t, zone, false, true, true).addr}
		}, "lb.mcs.z5.test", 2, nil, 0},
		{"first dead, second answers", func(t *testing.T) []netip.AddrPort {
			return []netip.AddrPort{deadAddr(t), startNS(t, zone, false, true, true).addr}
		}, "zdial.z5.test", 1, nil, 1},
		{"truncated udp falls back to tcp", func(t *testing.T) []netip.AddrPort {
			return []netip.AddrPort{startNS(t, zone, true, true, true).addr}
		}, "zdial.z5.test", 1, nil, 0},
		{"udp blocked, tcp open", func(t *testing.T) []netip.AddrPort {
			return []netip.AddrPort{startNS(t, zone, false, false, true).addr}
		}, "zdial.z5.test", 1, nil, 0},
		{"nxdomain", func(t *testing.T) []netip.AddrPort {
			return []netip.AddrPort{startNS(t, zone, false, true, true).addr}
		}, "nope.z5.test", 0, ErrNoAnswer, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			servers := tt.servers(t)
			r := New(servers, 300*time.Millisecond)
			res, err := r.LookupHost(context.Background(), tt.host)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Addrs) != tt.want {
				t.Fatalf("addrs = %v, want %d", res.Addrs, tt.want)
			}
			last := res.Attempts[len(res.Attempts)-1]
			if last.Err != nil || last.Server != servers[tt.wantServer] {
				t.Errorf("answered by %v (%v), want %v; attempts %+v", last.Server, last.Err, servers[tt.wantServer], res.Attempts)
			}
		})
	}
}

func TestCacheHonoursTTL(t *testing.T) {
	ns := startNS(t, zone, false, true, true)
	r := New([]netip.AddrPort{ns.addr}, time.Second)
	now := time.Now()
	r.now = func() time.Time { return now }
	for range 3 {
		if _, err := r.LookupHost(context.Background(), "zdial.z5.test"); err != nil {
			t.Fatal(err)
		}
	}
	if q := ns.queries.Load(); q != 2 { // A and AAAA once each
		t.Fatalf("queries = %d, want 2 (cached)", q)
	}
	now = now.Add(3 * time.Second) // TTL is 2s
	res, err := r.LookupHost(context.Background(), "zdial.z5.test")
	if err != nil || res.Cached {
		t.Fatalf("after TTL: cached=%v err=%v", res.Cached, err)
	}
	if q := ns.queries.Load(); q != 3 { // A refetched; the negative AAAA (SOA min 5s) still cached
		t.Fatalf("queries = %d, want 3", q)
	}
}

func TestAllServersDown(t *testing.T) {
	r := New([]netip.AddrPort{deadAddr(t), deadAddr(t)}, 200*time.Millisecond)
	_, err := r.LookupHost(context.Background(), "zdial.z5.test")
	if err == nil {
		t.Fatal("no error")
	}
	t.Log(err)
}

func TestSilentServerCostsOnce(t *testing.T) {
	silent := testenv.SilentUDP(t)
	good := startNS(t, zone, false, true, true)
	r := New([]netip.AddrPort{silent, good.addr}, 200*time.Millisecond)
	if _, err := r.LookupHost(context.Background(), "zdial.z5.test"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := r.LookupHost(context.Background(), "lb.mcs.z5.test")
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 150*time.Millisecond {
		t.Errorf("second name took %s: the silent server was asked again first", d)
	}
	if res.Attempts[0].Server != good.addr {
		t.Errorf("first attempt went to %v, want the answering server", res.Attempts[0].Server)
	}
}

// TestCallerDeadlineSparesTheNextServer: a lookup whose deadline runs out
// on a silent first server marks that one failed, not the next one it never
// had time to ask, so the next lookup goes straight to the answering server.
func TestCallerDeadlineSparesTheNextServer(t *testing.T) {
	silent := testenv.SilentUDP(t)
	good := startNS(t, zone, false, true, true)
	r := New([]netip.AddrPort{silent, good.addr}, 2*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := r.LookupHost(ctx, "zdial.z5.test"); err == nil {
		t.Fatal("answered within a deadline spent on the silent server")
	}
	if n := good.queries.Load(); n != 0 {
		t.Fatalf("the answering server was asked %d times after the deadline", n)
	}
	res, err := r.LookupHost(context.Background(), "lb.mcs.z5.test")
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempts[0].Server != good.addr {
		t.Errorf("next lookup asked %v first, want the answering server %v (attempts %+v)", res.Attempts[0].Server, good.addr, res.Attempts)
	}
}
