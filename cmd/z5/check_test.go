package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/egress"
	"github.com/z5vrs/z5/internal/license"
	"github.com/z5vrs/z5/internal/netcheck"
	"github.com/z5vrs/z5/internal/pki"
	"github.com/z5vrs/z5/internal/profile"
)

// TestCheckBlocked: nameservers that swallow UDP and refuse TCP make every
// DNS rule blocked; z5 check names each with the rule to add and exits 3,
// within a few probe timeouts.
func TestCheckBlocked(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.LoadOrCreateCA(dir, "Z5 test")
	if err != nil {
		t.Fatal(err)
	}
	_, lk, _ := ed25519.GenerateKey(rand.Reader)
	p := &profile.Profile{Version: 1, Provider: "Z5 test",
		Names: profile.Names{ZDial: "zdial.z5.test", MCS: []string{"mcs1.mcs.z5.test"}, SIPDomain: "mcs.z5.test"},
		Ports: profile.Ports{ZDialHTTPS: 443, MCSHTTPS: 443, SIP: 5060, RTP: "10000-65535"},
		CAPEM: string(ca.CertPEM()), LicenseKeys: []string{license.EncodePublicKey(lk.Public().(ed25519.PublicKey))}}
	for range 2 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		p.Nameservers = append(p.Nameservers, pc.LocalAddr().String())
	}
	path := filepath.Join(dir, "provider.json")
	if err := p.Save(path); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	start := time.Now()
	err = run(context.Background(), []string{"--home", filepath.Join(dir, "home"), "check", "--profile", path, "--timeout", "300ms"},
		strings.NewReader(""), &out, &errb)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("check took %s", d)
	}
	var ee exitError
	if !errors.As(err, &ee) || ee.Code != exitBlocked {
		t.Fatalf("err = %v, want exit status %d\n%s", err, exitBlocked, out.String())
	}
	got := out.String()
	t.Logf("output:\n%s", got)
	for _, ns := range p.Nameservers {
		ap := netip.MustParseAddrPort(ns)
		for _, proto := range []string{"udp", "tcp"} {
			rule := "outbound " + portOf(ap) + " " + proto + "  127.0.0.1"
			if !strings.Contains(got, "blocked  "+rule) || !strings.Contains(got, "add: "+rule+"\n") {
				t.Errorf("output does not block and add %q", rule)
			}
		}
	}
	for _, want := range []string{"skipped", "outbound 443 tcp  <zdial.z5.test: not resolved>", "SIP ALG: not checked", "quality: not measured (see the RTP rules)",
		"summary: 8 rules: 4 skipped, 4 blocked"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q", want)
		}
	}

	// --json prints the report; the exit status is the same.
	out.Reset()
	err = run(context.Background(), []string{"--home", filepath.Join(dir, "home"), "check", "--profile", path, "--timeout", "300ms", "--json"},
		strings.NewReader(""), &out, &errb)
	if !errors.As(err, &ee) || ee.Code != exitBlocked || !strings.Contains(out.String(), `"blocked": true`) {
		t.Errorf("--json: %v\n%s", err, out.String())
	}
}

func portOf(ap netip.AddrPort) string { return strconv.Itoa(int(ap.Port())) }

func TestCheckNoProfile(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"--home", t.TempDir(), "check"}, strings.NewReader(""), &out, &errb)
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--profile") {
		t.Errorf("err = %v", err)
	}
}

// TestPrintReport pins the human output for a report with every verdict.
func TestPrintReport(t *testing.T) {
	rule := func(step int, group, check, proto string, lo, hi int, dest, name string) netcheck.Rule {
		return netcheck.Rule{Step: step, Group: group, Check: check, Proto: proto, Ports: config.PortRange{Min: lo, Max: hi},
			Dest: netip.MustParseAddr(dest), Name: name, Required: true}
	}
	res := func(r netcheck.Rule, s netcheck.Status, ms float64, detail string) netcheck.Result {
		out := netcheck.Result{Rule: r, Line: r.String(), Status: s, Elapsed: netcheck.Millis(ms * float64(time.Millisecond)), Detail: detail}
		if s == netcheck.StatusBlocked {
			out.Add, out.AddNft = r.String(), r.Nft()
		}
		return out
	}
	dnsU := rule(1, egress.GroupNaming, netcheck.CheckDNS, "udp", 53, 53, "198.18.1.53", "198.18.1.53")
	dnsT := rule(1, egress.GroupNaming, netcheck.CheckDNS, "tcp", 53, 53, "198.18.1.53", "198.18.1.53")
	zd := rule(2, egress.GroupZDial, netcheck.CheckZDial, "tcp", 443, 443, "198.18.1.114", "zdial.z5.test")
	rtp := rule(5, egress.GroupRTP, netcheck.CheckRTP, "udp", 10000, 65535, "198.18.1.21", "mcs1.mcs.z5.test")
	rep := &netcheck.Report{
		Provider: "Z5 test",
		Elapsed:  netcheck.Millis(2100 * time.Millisecond),
		Results: []netcheck.Result{
			res(dnsU, netcheck.StatusOK, 2.1, "zdial.z5.test -> 198.18.1.114"),
			res(dnsT, netcheck.StatusBlocked, 2000, "DNS over TCP to 198.18.1.53:53: no answer within 2.00 s: a firewall drops these packets (or the path is down)"),
			res(zd, netcheck.StatusOK, 15, "TLS verified"),
			res(rtp, netcheck.StatusNeedsLogin, 0, "log in (z5 login) to test it"),
		},
		ALG:     netcheck.ALGReport{Status: netcheck.ALGDetected, Fix: "disable SIP ALG / SIP inspection on the firewall", Rewritten: []string{"mcs1.mcs.z5.test: Via: sent TCP/10.0.0.5:51000, the MCS received TCP/203.0.113.9:40000"}},
		Counts:  map[netcheck.Status]int{netcheck.StatusOK: 2, netcheck.StatusBlocked: 1, netcheck.StatusNeedsLogin: 1},
		Blocked: true,
	}
	var b bytes.Buffer
	printReport(&b, rep, "provider.json", false)
	want := `z5 check: Z5 test, 4 rules (profile provider.json)

ok           outbound 53 udp  198.18.1.53           DNS                   2.1 ms
blocked      outbound 53 tcp  198.18.1.53           DNS                   DNS over TCP to 198.18.1.53:53: no answer within 2.00 s: a firewall drops these packets (or the path is down)
ok           outbound 443 tcp  198.18.1.114         ZDial zdial.z5.test   15 ms
needs-login  outbound 10000-65535 udp  198.18.1.21  RTP mcs1.mcs.z5.test  log in (z5 login) to test it

add: outbound 53 tcp  198.18.1.53
     nft add rule inet z5_egress output ip daddr 198.18.1.53 tcp dport 53 accept comment "z5 step 1 Naming"

SIP ALG: detected: disable SIP ALG / SIP inspection on the firewall
         mcs1.mcs.z5.test: Via: sent TCP/10.0.0.5:51000, the MCS received TCP/203.0.113.9:40000
quality: not measured (the RTP probes need a login: z5 login)
summary: 4 rules: 2 ok, 1 needs-login, 1 blocked (2.10 s); the network blocks required rules: add the rules above
`
	if got := b.String(); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
	// On a terminal the verdicts are coloured, padded as before.
	b.Reset()
	printReport(&b, rep, "provider.json", true)
	for _, w := range []string{"\x1b[32mok         \x1b[0m  outbound 53 udp", "\x1b[31mblocked    \x1b[0m", "\x1b[33mneeds-login\x1b[0m"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("coloured output lacks %q:\n%q", w, b.String())
		}
	}
}
