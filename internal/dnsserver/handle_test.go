package dnsserver

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/config"
)

// fakeHealth is MCS membership under the test's control.
type fakeHealth struct {
	mu   sync.Mutex
	down map[string]bool
}

func (h *fakeHealth) Healthy(node string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.down[node]
}

func (h *fakeHealth) set(node string, up bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down == nil {
		h.down = map[string]bool{}
	}
	h.down[node] = !up
}

func devConfig(t testing.TB) *config.Config {
	t.Helper()
	return config.Dev(t.TempDir())
}

func twoSitesConfig(t testing.TB) *config.Config {
	t.Helper()
	c, err := config.Load("../../deploy/two-sites.toml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// bigConfig has n MCS nodes on 127.0.1.x, so the SIP domain's A set does
// not fit a 512-byte response.
func bigConfig(t testing.TB, n int) *config.Config {
	t.Helper()
	var b strings.Builder
	b.WriteString(`
[names]
zdial = "zdial.z5.test"
lb_mcs = "lb.mcs.z5.test"
sip_domain = "mcs.z5.test"
[dns]
zones = ["z5.test"]
[[site]]
name = "big"
[[site.node]]
name = "ns"
roles = ["dns", "zdial"]
address = "127.0.0.1"
`)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "[[site.node]]\nname = \"mcs%d\"\nroles = [\"mcs\"]\naddress = \"127.0.1.%d\"\nhosts = [\"mcs%d.mcs.z5.test\"]\n", i, i, i)
	}
	c, err := config.Parse("big.toml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newServer(t testing.TB, cfg *config.Config, h Health) *Server {
	t.Helper()
	s, err := New(cfg, Deps{Health: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// query builds a question written "name TYPE" ("zdial.z5.test. A").
func query(t testing.TB, q string) *dns.Msg {
	t.Helper()
	name, typ, ok := strings.Cut(q, " ")
	qtype, known := dns.StringToType[typ]
	if !ok || !known {
		t.Fatalf("bad question %q", q)
	}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 4711
	return m
}

// records turns zone-file lines into their canonical text.
func records(t *testing.T, zone string, serial uint32) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(zone, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		line = strings.ReplaceAll(line, "SERIAL", strconv.FormatUint(uint64(serial), 10))
		rr, err := dns.NewRR(line)
		if err != nil {
			t.Fatalf("bad expected record %q: %v", line, err)
		}
		out = append(out, rr.String())
	}
	return out
}

func texts(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, rr.String())
	}
	return out
}

type handleCase struct {
	name   string
	q      string                // "name TYPE"
	edit   func(*dns.Msg)        // changes the query before it is asked
	health map[string]bool       // node -> up
	rcode  int                   // expected
	aa, tc bool                  // expected flags
	answer string                // expected answer section, zone-file lines
	ns     string                // authority
	extra  string                // additional, without the OPT
	opt    func(*dns.OPT) string // checks the OPT of the response; "" = fine
}

func runHandle(t *testing.T, cfg *config.Config, tests []handleCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &fakeHealth{}
			for n, up := range tt.health {
				h.set(n, up)
			}
			cfg.DNS.RateLimit = 0
			s := newServer(t, cfg, h)
			req := query(t, tt.q)
			if tt.edit != nil {
				tt.edit(req)
			}
			resp := s.Handle(req, netip.MustParseAddr("127.0.0.1"), false)
			if resp == nil {
				t.Fatal("no response")
			}
			// The serial of the zone the question falls in.
			var serial uint32
			if z := s.zd.zoneOf(lowerASCII(req.Question[0].Name)); z != nil {
				serial = z.soa.Serial
			}
			if resp.Rcode != tt.rcode {
				t.Errorf("rcode = %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tt.rcode])
			}
			if resp.Id != req.Id || !resp.Response {
				t.Errorf("id %d response %v, want id %d response", resp.Id, resp.Response, req.Id)
			}
			if resp.Authoritative != tt.aa || resp.Truncated != tt.tc || resp.RecursionAvailable {
				t.Errorf("flags aa=%v tc=%v ra=%v, want aa=%v tc=%v ra=false", resp.Authoritative, resp.Truncated, resp.RecursionAvailable, tt.aa, tt.tc)
			}
			if len(req.Question) == 1 && (len(resp.Question) != 1 || resp.Question[0] != req.Question[0]) {
				t.Errorf("question %v, want the query's %v", resp.Question, req.Question)
			}
			for _, sec := range []struct {
				name string
				got  []dns.RR
				want string
			}{{"answer", resp.Answer, tt.answer}, {"authority", resp.Ns, tt.ns}, {"additional", resp.Extra, tt.extra}} {
				if diff := cmp.Diff(records(t, sec.want, serial), texts(sec.got)); diff != "" {
					t.Errorf("%s section (-want +got):\n%s", sec.name, diff)
				}
			}
			opt := resp.IsEdns0()
			if req.IsEdns0() == nil && opt != nil {
				t.Errorf("OPT in the response to a query without one")
			}
			if tt.opt != nil {
				if opt == nil {
					t.Fatal("no OPT in the response")
				}
				if msg := tt.opt(opt); msg != "" {
					t.Error(msg)
				}
			}
			// Whatever Handle returns must pack.
			if _, err := resp.Pack(); err != nil {
				t.Errorf("pack: %v", err)
			}
		})
	}
}

func edns(size uint16, do bool) func(*dns.Msg) {
	return func(m *dns.Msg) { m.SetEdns0(size, do) }
}

func TestHandleDev(t *testing.T) {
	soa := "z5.test. 300 IN SOA ns1.z5.test. hostmaster.z5.test. SERIAL 3600 600 1209600 300"
	runHandle(t, devConfig(t), []handleCase{
		{name: "zdial", q: "zdial.z5.test. A", aa: true,
			answer: "zdial.z5.test. 300 IN A 127.0.0.1"},
		{name: "lb.mcs has the short ttl", q: "lb.mcs.z5.test. A", aa: true,
			answer: "lb.mcs.z5.test. 10 IN A 127.0.0.1"},
		{name: "lb.mcs without healthy node", q: "lb.mcs.z5.test. A", aa: true, health: map[string]bool{"dev": false},
			ns: "z5.test. 10 IN SOA ns1.z5.test. hostmaster.z5.test. SERIAL 3600 600 1209600 300"},
		{name: "sip domain", q: "mcs.z5.test. A", aa: true,
			answer: "mcs.z5.test. 10 IN A 127.0.0.1"},
		{name: "sip domain without healthy node", q: "mcs.z5.test. A", aa: true, health: map[string]bool{"dev": false},
			ns: "z5.test. 10 IN SOA ns1.z5.test. hostmaster.z5.test. SERIAL 3600 600 1209600 300"},
		{name: "mcs1 host", q: "mcs1.mcs.z5.test. A", aa: true,
			answer: "mcs1.mcs.z5.test. 300 IN A 127.0.0.1"},
		{name: "mcs2 host stays while unhealthy", q: "mcs2.mcs.z5.test. A", aa: true, health: map[string]bool{"dev": false},
			answer: "mcs2.mcs.z5.test. 300 IN A 127.0.0.1"},
		{name: "case preserved", q: "ZDial.Z5.TEST. A", aa: true,
			answer: "ZDial.Z5.TEST. 300 IN A 127.0.0.1"},
		{name: "srv tcp", q: "_sip._tcp.mcs.z5.test. SRV", aa: true,
			answer: "_sip._tcp.mcs.z5.test. 300 IN SRV 10 1 5060 mcs1.mcs.z5.test.",
			extra:  "mcs1.mcs.z5.test. 300 IN A 127.0.0.1"},
		{name: "srv udp", q: "_sip._udp.mcs.z5.test. SRV", aa: true,
			answer: "_sip._udp.mcs.z5.test. 300 IN SRV 10 1 5060 mcs1.mcs.z5.test.",
			extra:  "mcs1.mcs.z5.test. 300 IN A 127.0.0.1"},
		// The dev stack serves SIP over TLS (ports.sip_tls): NAPTR lists it first.
		{name: "srv tls", q: "_sips._tcp.mcs.z5.test. SRV", aa: true,
			answer: "_sips._tcp.mcs.z5.test. 300 IN SRV 10 1 5061 mcs1.mcs.z5.test.",
			extra:  "mcs1.mcs.z5.test. 300 IN A 127.0.0.1"},
		{name: "naptr", q: "mcs.z5.test. NAPTR", aa: true,
			answer: `mcs.z5.test. 300 IN NAPTR 10 10 "S" "SIPS+D2T" "" _sips._tcp.mcs.z5.test.
				mcs.z5.test. 300 IN NAPTR 20 10 "S" "SIP+D2T" "" _sip._tcp.mcs.z5.test.
				mcs.z5.test. 300 IN NAPTR 30 10 "S" "SIP+D2U" "" _sip._udp.mcs.z5.test.`,
			extra: `_sips._tcp.mcs.z5.test. 300 IN SRV 10 1 5061 mcs1.mcs.z5.test.
				_sip._tcp.mcs.z5.test. 300 IN SRV 10 1 5060 mcs1.mcs.z5.test.
				_sip._udp.mcs.z5.test. 300 IN SRV 10 1 5060 mcs1.mcs.z5.test.`},
		{name: "soa", q: "z5.test. SOA", aa: true, answer: soa},
		{name: "ns with glue", q: "z5.test. NS", aa: true,
			answer: "z5.test. 300 IN NS ns1.z5.test.",
			extra:  "ns1.z5.test. 300 IN A 127.0.0.1"},
		{name: "nameserver address", q: "ns1.z5.test. A", aa: true, answer: "ns1.z5.test. 300 IN A 127.0.0.1"},
		{name: "nxdomain", q: "nope.z5.test. A", aa: true, rcode: dns.RcodeNameError, ns: soa},
		{name: "nxdomain below a name", q: "x.zdial.z5.test. A", aa: true, rcode: dns.RcodeNameError, ns: soa},
		{name: "nodata other type", q: "zdial.z5.test. AAAA", aa: true, ns: soa},
		{name: "nodata txt", q: "mcs1.mcs.z5.test. TXT", aa: true, ns: soa},
		{name: "empty non-terminal", q: "_tcp.mcs.z5.test. A", aa: true, ns: soa},
		{name: "any is minimal", q: "zdial.z5.test. ANY", aa: true,
			answer: `zdial.z5.test. 300 IN HINFO "RFC8482" ""`},
		{name: "any at apex is minimal", q: "z5.test. ANY", aa: true,
			answer: `z5.test. 300 IN HINFO "RFC8482" ""`},
		{name: "any of nothing", q: "nope.z5.test. ANY", aa: true, rcode: dns.RcodeNameError, ns: soa},
		{name: "outside zones", q: "example.com. A", rcode: dns.RcodeRefused},
		{name: "root", q: ". NS", rcode: dns.RcodeRefused},
		{name: "suffix is not a zone", q: "notz5.test. A", rcode: dns.RcodeRefused},
		{name: "axfr", q: "z5.test. AXFR", rcode: dns.RcodeRefused},
		{name: "ixfr", q: "z5.test. IXFR", rcode: dns.RcodeRefused},
		{name: "chaos", q: "version.bind. TXT", edit: func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }, rcode: dns.RcodeRefused},
		{name: "class any", q: "zdial.z5.test. A", edit: func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassANY }, aa: true,
			answer: "zdial.z5.test. 300 IN A 127.0.0.1"},
		{name: "notify", q: "z5.test. SOA", edit: func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }, rcode: dns.RcodeNotImplemented},
		{name: "update", q: "z5.test. SOA", edit: func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }, rcode: dns.RcodeNotImplemented},
		{name: "two questions", q: "zdial.z5.test. A", edit: func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }, rcode: dns.RcodeFormatError},
		{name: "opt as question", q: ". OPT", rcode: dns.RcodeFormatError},
		{name: "edns echoed", q: "zdial.z5.test. A", edit: edns(4096, true), aa: true,
			answer: "zdial.z5.test. 300 IN A 127.0.0.1",
			opt: func(o *dns.OPT) string {
				if o.UDPSize() != 1232 || !o.Do() || o.Version() != 0 {
					return fmt.Sprintf("OPT size %d do %v version %d, want 1232 true 0", o.UDPSize(), o.Do(), o.Version())
				}
				return ""
			}},
		{name: "edns on refused", q: "example.com. A", edit: edns(1232, false), rcode: dns.RcodeRefused,
			opt: func(o *dns.OPT) string { return "" }},
		{name: "edns version 1", q: "zdial.z5.test. A", edit: func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) },
			rcode: dns.RcodeBadVers, opt: func(o *dns.OPT) string {
				if o.Version() != 0 {
					return "BADVERS must carry our version 0"
				}
				return ""
			}},
		{name: "two opts", q: "zdial.z5.test. A", edit: func(m *dns.Msg) { m.SetEdns0(1232, false); m.Extra = append(m.Extra, dns.Copy(m.Extra[0])) },
			rcode: dns.RcodeFormatError},
	})
}

func TestHandleTwoSites(t *testing.T) {
	var ns, glue []string
	for i, a := range []string{"208.94.16.61", "208.94.16.62", "208.94.16.90", "208.95.32.61", "208.95.32.62", "208.95.32.90"} {
		ns = append(ns, fmt.Sprintf("csdvrs.com. 300 IN NS ns%d.csdvrs.com.", i+1))
		glue = append(glue, fmt.Sprintf("ns%d.csdvrs.com. 300 IN A %s", i+1, a))
	}
	runHandle(t, twoSitesConfig(t), []handleCase{
		{name: "zdial both sites", q: "zdial.champvrs.com. A", aa: true,
			answer: "zdial.champvrs.com. 300 IN A 208.94.16.114\nzdial.champvrs.com. 300 IN A 208.95.32.114"},
		{name: "lb.mcs both up", q: "lb.mcs.csdvrs.com. A", aa: true,
			answer: "lb.mcs.csdvrs.com. 10 IN A 208.94.16.21\nlb.mcs.csdvrs.com. 10 IN A 208.95.32.21"},
		{name: "lb.mcs site b down", q: "lb.mcs.csdvrs.com. A", aa: true, health: map[string]bool{"b-mcs": false},
			answer: "lb.mcs.csdvrs.com. 10 IN A 208.94.16.21"},
		{name: "lb.mcs site a down", q: "lb.mcs.csdvrs.com. A", aa: true, health: map[string]bool{"a-mcs": false},
			answer: "lb.mcs.csdvrs.com. 10 IN A 208.95.32.21"},
		{name: "sip domain follows health", q: "mcs.csdvrs.com. A", aa: true, health: map[string]bool{"a-mcs": false},
			answer: "mcs.csdvrs.com. 10 IN A 208.95.32.21"},
		{name: "mcs1", q: "mcs1.mcs.csdvrs.com. A", aa: true, answer: "mcs1.mcs.csdvrs.com. 300 IN A 208.94.16.21"},
		{name: "mcs2", q: "mcs2.mcs.csdvrs.com. A", aa: true, answer: "mcs2.mcs.csdvrs.com. 300 IN A 208.95.32.21"},
		{name: "srv", q: "_sip._tcp.mcs.csdvrs.com. SRV", aa: true,
			answer: "_sip._tcp.mcs.csdvrs.com. 300 IN SRV 10 2 5060 mcs1.mcs.csdvrs.com.\n_sip._tcp.mcs.csdvrs.com. 300 IN SRV 10 1 5060 mcs2.mcs.csdvrs.com.",
			extra:  "mcs1.mcs.csdvrs.com. 300 IN A 208.94.16.21\nmcs2.mcs.csdvrs.com. 300 IN A 208.95.32.21"},
		{name: "ns six servers", q: "csdvrs.com. NS", aa: true, answer: strings.Join(ns, "\n"), extra: strings.Join(glue, "\n")},
		{name: "soa of the second zone", q: "csdvrs.com. SOA", aa: true,
			answer: "csdvrs.com. 300 IN SOA ns1.csdvrs.com. hostmaster.champvrs.com. SERIAL 3600 600 1209600 300"},
		{name: "zdial name is not in csdvrs", q: "zdial.csdvrs.com. A", aa: true, rcode: dns.RcodeNameError,
			ns: "csdvrs.com. 300 IN SOA ns1.csdvrs.com. hostmaster.champvrs.com. SERIAL 3600 600 1209600 300"},
		{name: "ns4 of champvrs", q: "ns4.champvrs.com. A", aa: true, answer: "ns4.champvrs.com. 300 IN A 208.95.32.61"},
	})
}

func TestHandleTLSAndIPv6(t *testing.T) {
	cfg := devConfig(t)
	cfg.Ports.SIPTLS = 5061
	cfg.Sites[0].Nodes = append(cfg.Sites[0].Nodes, config.Node{
		Name: "v6", Roles: []string{config.RoleMCS, config.RoleDNS}, Address: "::1", Hosts: []string{"mcs6.mcs.z5.test"}, Site: "dev",
	})
	runHandle(t, cfg, []handleCase{
		{name: "sips srv", q: "_sips._tcp.mcs.z5.test. SRV", aa: true,
			answer: "_sips._tcp.mcs.z5.test. 300 IN SRV 10 2 5061 mcs1.mcs.z5.test.\n_sips._tcp.mcs.z5.test. 300 IN SRV 10 1 5061 mcs6.mcs.z5.test.",
			extra:  "mcs1.mcs.z5.test. 300 IN A 127.0.0.1\nmcs6.mcs.z5.test. 300 IN AAAA ::1"},
		{name: "naptr prefers tls", q: "mcs.z5.test. NAPTR", aa: true, edit: edns(4096, false),
			answer: `mcs.z5.test. 300 IN NAPTR 10 10 "S" "SIPS+D2T" "" _sips._tcp.mcs.z5.test.
				mcs.z5.test. 300 IN NAPTR 20 10 "S" "SIP+D2T" "" _sip._tcp.mcs.z5.test.
				mcs.z5.test. 300 IN NAPTR 30 10 "S" "SIP+D2U" "" _sip._udp.mcs.z5.test.`,
			extra: `_sips._tcp.mcs.z5.test. 300 IN SRV 10 2 5061 mcs1.mcs.z5.test.
				_sips._tcp.mcs.z5.test. 300 IN SRV 10 1 5061 mcs6.mcs.z5.test.
				_sip._tcp.mcs.z5.test. 300 IN SRV 10 2 5060 mcs1.mcs.z5.test.
				_sip._tcp.mcs.z5.test. 300 IN SRV 10 1 5060 mcs6.mcs.z5.test.
				_sip._udp.mcs.z5.test. 300 IN SRV 10 2 5060 mcs1.mcs.z5.test.
				_sip._udp.mcs.z5.test. 300 IN SRV 10 1 5060 mcs6.mcs.z5.test.`,
			opt: func(*dns.OPT) string { return "" }},
		{name: "lb.mcs aaaa", q: "lb.mcs.z5.test. AAAA", aa: true, answer: "lb.mcs.z5.test. 10 IN AAAA ::1"},
		{name: "lb.mcs aaaa down", q: "lb.mcs.z5.test. AAAA", aa: true, health: map[string]bool{"v6": false},
			ns: "z5.test. 10 IN SOA ns1.z5.test. hostmaster.z5.test. SERIAL 3600 600 1209600 300"},
		{name: "ns2 glue is aaaa", q: "z5.test. NS", aa: true,
			answer: "z5.test. 300 IN NS ns1.z5.test.\nz5.test. 300 IN NS ns2.z5.test.",
			extra:  "ns1.z5.test. 300 IN A 127.0.0.1\nns2.z5.test. 300 IN AAAA ::1"},
	})
}

// TestTruncation checks UDP size limits with 40 MCS nodes: the SIP
// domain's A set needs about 700 bytes.
func TestTruncation(t *testing.T) {
	cfg := bigConfig(t, 40)
	cfg.DNS.RateLimit = 0
	s := newServer(t, cfg, nil)
	client := netip.MustParseAddr("127.0.0.1")
	tests := []struct {
		name      string
		q         string
		edns      uint16 // 0: no OPT
		tcp       bool
		tc        bool
		answers   int
		extras    int // without the OPT
		maxPacked int
	}{
		{name: "no edns", q: "mcs.z5.test. A", tc: true, maxPacked: 512},
		{name: "edns 512", q: "mcs.z5.test. A", edns: 512, tc: true, maxPacked: 512},
		{name: "edns below 512 counts as 512", q: "mcs.z5.test. A", edns: 100, tc: true, maxPacked: 512},
		{name: "edns 1232", q: "mcs.z5.test. A", edns: 1232, answers: 40, maxPacked: 1232},
		{name: "edns 4096", q: "mcs.z5.test. A", edns: 4096, answers: 40, maxPacked: 1232},
		// SRV targets are never compressed (RFC 2782): 40 of them need
		// about 1450 bytes, over udp_size whatever the client offers.
		{name: "edns 4096 capped at udp_size", q: "_sip._tcp.mcs.z5.test. SRV", edns: 4096, tc: true, maxPacked: 1232},
		{name: "tcp complete", q: "_sip._tcp.mcs.z5.test. SRV", tcp: true, answers: 40, extras: 40, maxPacked: 65535},
		{name: "tcp without edns", q: "mcs.z5.test. A", tcp: true, answers: 40, maxPacked: 65535},
		{name: "small answer fits", q: "zdial.z5.test. A", answers: 1, maxPacked: 512},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := query(t, tt.q)
			if tt.edns != 0 {
				req.SetEdns0(tt.edns, false)
			}
			resp := s.Handle(req, client, tt.tcp)
			if resp.Truncated != tt.tc || len(resp.Answer) != tt.answers || len(texts(resp.Extra)) != tt.extras {
				t.Errorf("tc=%v answers=%d extras=%d, want tc=%v answers=%d extras=%d",
					resp.Truncated, len(resp.Answer), len(texts(resp.Extra)), tt.tc, tt.answers, tt.extras)
			}
			if tt.edns != 0 && resp.IsEdns0() == nil {
				t.Error("OPT lost")
			}
			b, err := resp.Pack()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > tt.maxPacked {
				t.Errorf("packed %d bytes, limit %d", len(b), tt.maxPacked)
			}
		})
	}
}

// TestAdditionalDroppedFirst: 25 SRV records fit 1232 bytes only without
// their addresses; the answer goes out complete, without TC.
func TestAdditionalDroppedFirst(t *testing.T) {
	cfg := bigConfig(t, 25)
	cfg.DNS.RateLimit = 0
	s := newServer(t, cfg, nil)
	req := query(t, "_sip._tcp.mcs.z5.test. SRV")
	req.SetEdns0(1232, false)
	full := s.Handle(req, netip.MustParseAddr("127.0.0.1"), true)
	if n := len(texts(full.Extra)); n != 25 {
		t.Fatalf("tcp: %d additional records, want 25", n)
	}
	resp := s.Handle(req, netip.MustParseAddr("127.0.0.1"), false)
	if resp.Truncated || len(resp.Answer) != 25 || len(texts(resp.Extra)) != 0 || resp.IsEdns0() == nil {
		t.Errorf("udp: tc=%v answers=%d extras=%d opt=%v, want 25 answers, no extras, the OPT, no TC",
			resp.Truncated, len(resp.Answer), len(texts(resp.Extra)), resp.IsEdns0() != nil)
	}
}

// TestRateLimit drives the limiter with a fake clock.
func TestRateLimit(t *testing.T) {
	cfg := devConfig(t)
	cfg.DNS.RateLimit = 5
	s := newServer(t, cfg, nil)
	now := time.Unix(1_700_000_000, 0)
	s.now = func() time.Time { return now }

	ask := func(client string, tcp bool) string {
		resp := s.Handle(query(t, "zdial.z5.test. A"), netip.MustParseAddr(client), tcp)
		switch {
		case resp == nil:
			return "drop"
		case resp.Truncated && len(resp.Answer) == 0:
			return "slip"
		case len(resp.Answer) == 1:
			return "ok"
		}
		return "bad: " + resp.String()
	}
	burst := func(client string, n int, tcp bool) string {
		var out []string
		for range n {
			out = append(out, ask(client, tcp))
		}
		return strings.Join(out, " ")
	}
	steps := []struct {
		name    string
		advance time.Duration
		client  string
		n       int
		tcp     bool
		want    string
	}{
		{"burst allowed", 0, "192.0.2.1", 5, false, "ok ok ok ok ok"},
		{"then slip every second", 0, "192.0.2.1", 4, false, "drop slip drop slip"},
		{"same /24 shares the bucket", 0, "192.0.2.200", 2, false, "drop slip"},
		{"tcp is never limited", 0, "192.0.2.1", 3, true, "ok ok ok"},
		{"other /24 has its own", 0, "192.0.3.1", 1, false, "ok"},
		{"v4-mapped counts as v4", 0, "::ffff:192.0.2.7", 1, false, "drop"},
		{"refill at the rate", 400 * time.Millisecond, "192.0.2.1", 3, false, "ok ok slip"},
		{"burst caps the refill", 10 * time.Second, "192.0.2.1", 6, false, "ok ok ok ok ok drop"},
		{"ipv6 /56 shares", 0, "2001:db8:0:ff::1", 5, false, "ok ok ok ok ok"},
		{"ipv6 same /56", 0, "2001:db8:0:1::2", 2, false, "drop slip"},
		{"ipv6 other /56", 0, "2001:db8:0:100::1", 1, false, "ok"},
	}
	for _, st := range steps {
		now = now.Add(st.advance)
		if got := burst(st.client, st.n, st.tcp); got != st.want {
			t.Errorf("%s: got %q, want %q", st.name, got, st.want)
		}
	}
}

// TestRateLimitBounded checks the limiter forgets idle networks and never
// tracks more than its bound.
func TestRateLimitBounded(t *testing.T) {
	l := newLimiter(10, 4)
	now := time.Unix(1_700_000_000, 0)
	for i := range 4 {
		l.take(netip.AddrFrom4([4]byte{10, 0, byte(i), 1}), now)
	}
	if n := l.size(); n != 4 {
		t.Fatalf("size %d, want 4", n)
	}
	// Table full and nothing idle: a new network shares the overflow
	// bucket instead of growing the table.
	for i := range 20 {
		l.take(netip.AddrFrom4([4]byte{10, 1, byte(i), 1}), now)
	}
	if n := l.size(); n != 4 {
		t.Fatalf("size %d after overflow, want 4", n)
	}
	if got := l.take(netip.AddrFrom4([4]byte{10, 2, 0, 1}), now); got == rrlAllow {
		t.Errorf("overflow bucket should be spent after 20 responses, got allow")
	}
	// A second later the old buckets are full again, hence idle, and
	// make room.
	now = now.Add(2 * time.Second)
	if got := l.take(netip.AddrFrom4([4]byte{10, 3, 0, 1}), now); got != rrlAllow {
		t.Errorf("new network after idle sweep: %v, want allow", got)
	}
	if n := l.size(); n != 1 {
		t.Errorf("size %d after sweep, want 1", n)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(*config.Config)
		want string
	}{
		{"bad hostmaster", func(c *config.Config) { c.DNS.Hostmaster = "a b@@" }, "hostmaster"},
		{"name outside zones", func(c *config.Config) { c.Names.ZDial = "zdial.example.com" }, `"zdial.example.com" is in none of the served zones`},
		{"no zones", func(c *config.Config) { c.DNS.Zones = nil }, "no zones"},
		{"tiny udp size", func(c *config.Config) { c.DNS.UDPSize = 100 }, "udp_size"},
		{"negative rate", func(c *config.Config) { c.DNS.RateLimit = -2 }, "rate_limit"},
		{"zero ttl", func(c *config.Config) { c.DNS.LBTTL = 0 }, "dns.lb_ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := devConfig(t)
			tt.edit(c)
			_, err := New(c, Deps{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want it to mention %q", err, tt.want)
			}
		})
	}
	if _, err := New(nil, Deps{}); err == nil {
		t.Error("nil config accepted")
	}
	c := devConfig(t)
	c.DNS.RateLimit = -1 // dns.rate_limit = -1: no limit
	if s, err := New(c, Deps{}); err != nil {
		t.Errorf("rate_limit -1: %v", err)
	} else if s.rrl != nil {
		t.Error("rate_limit -1: the server limits responses, want no limit")
	}
}

func TestSerialStable(t *testing.T) {
	a := newServer(t, twoSitesConfig(t), nil)
	b := newServer(t, twoSitesConfig(t), nil)
	for i := range a.zd.zones {
		if a.zd.zones[i].soa.Serial != b.zd.zones[i].soa.Serial {
			t.Errorf("zone %s: serial %d then %d for the same config", a.zd.zones[i].origin, a.zd.zones[i].soa.Serial, b.zd.zones[i].soa.Serial)
		}
	}
	c := twoSitesConfig(t)
	c.Sites[1].Nodes[4].Address = "208.95.32.22"
	d := newServer(t, c, nil)
	if a.zd.zones[1].soa.Serial == d.zd.zones[1].soa.Serial {
		t.Errorf("zone %s: serial unchanged after an MCS moved", a.zd.zones[1].origin)
	}
}

func TestHostmasterMbox(t *testing.T) {
	for in, want := range map[string]string{
		"hostmaster@z5.test":  "hostmaster.z5.test.",
		"john.doe@csdvrs.com": `john\.doe.csdvrs.com.`,
		"hostmaster.z5.test.": "hostmaster.z5.test.",
		" noc@champvrs.com  ": "noc.champvrs.com.",
	} {
		got, err := hostmasterMbox(in)
		if err != nil || got != want {
			t.Errorf("hostmasterMbox(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestMetricsShared: a second server on the same registry (a restart in
// one process) reuses the counters instead of failing.
func TestMetricsShared(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := devConfig(t)
	cfg.DNS.RateLimit = 0
	for range 2 {
		s, err := New(cfg, Deps{Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		s.Handle(query(t, "zdial.z5.test. A"), netip.MustParseAddr("127.0.0.1"), false)
		s.Handle(query(t, "example.com. A"), netip.MustParseAddr("127.0.0.1"), false)
	}
	if c := counter(t, reg, "z5_dns_queries_total", "rcode", "NOERROR"); c != 2 {
		t.Errorf("NOERROR counted %v, want 2", c)
	}
	if c := counter(t, reg, "z5_dns_queries_total", "rcode", "REFUSED"); c != 2 {
		t.Errorf("REFUSED counted %v, want 2", c)
	}
}
