package netcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// verdicts renders a report as "status line label" rows, the way an admin
// reads it.
func verdicts(rep *Report) string {
	var b strings.Builder
	b.WriteString("\n")
	for _, r := range rep.Results {
		fmt.Fprintf(&b, "%s %s %s\n", r.Status, r.Line, r.Rule.Label())
	}
	return b.String()
}

func run(t *testing.T, o Options) *Report {
	t.Helper()
	start := time.Now()
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run took %s", d)
	}
	// Every probe goroutine has ended by the time Run returns. A goroutine
	// that has run its deferred wg.Done may take a moment more to exit, so
	// look for a short while before calling it a leak.
	buf := make([]byte, 1<<20)
	var stacks string
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		stacks = string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "netcheck.(*checker)") || time.Now().After(deadline) {
			break
		}
	}
	if strings.Contains(stacks, "netcheck.(*checker)") {
		t.Errorf("probe goroutines outlive Run:\n%s", stacks)
	}
	if testing.Verbose() {
		b, _ := json.MarshalIndent(rep, "", "  ")
		t.Logf("report:\n%s", b)
	}
	return rep
}

func resultOf(t *testing.T, rep *Report, check, proto string) Result {
	t.Helper()
	for _, r := range rep.Results {
		if r.Rule.Check == check && r.Rule.Proto == proto {
			return r
		}
	}
	t.Fatalf("no %s/%s result", check, proto)
	return Result{}
}

func TestRunUDPBlockedNameserver(t *testing.T) {
	p := newProvider(t, providerOpts{udpDrop: 1})
	rep := run(t, p.options(p.token))
	ns0, ns1, sip, rtp := portOf(p.ns[0]), portOf(p.ns[1]), portOf(p.sip), p.rtp.String()
	want := `
blocked outbound ` + ns0 + ` udp  127.0.0.1 DNS
ok outbound ` + ns1 + ` udp  127.0.0.1 DNS
ok outbound ` + ns0 + ` tcp  127.0.0.1 DNS
ok outbound ` + ns1 + ` tcp  127.0.0.1 DNS
ok outbound ` + portOf(p.zdial) + ` tcp  127.0.0.1 ZDial zdial.z5.test
ok outbound ` + portOf(p.mcs) + ` tcp  127.0.0.1 MCS HTTPS mcs1.mcs.z5.test
ok outbound ` + sip + ` tcp  127.0.0.1 SIP mcs1.mcs.z5.test
ok outbound ` + rtp + ` udp  127.0.0.1 RTP mcs1.mcs.z5.test
`
	if d := cmp.Diff(want, verdicts(rep)); d != "" {
		t.Errorf("verdicts (-want +got):\n%s", d)
	}
	blocked := rep.Results[0]
	if blocked.Add != "outbound "+ns0+" udp  127.0.0.1" {
		t.Errorf("add = %q", blocked.Add)
	}
	if want := `nft add rule inet z5_egress output ip daddr 127.0.0.1 udp dport ` + ns0 + ` accept comment "z5 step 1 Naming"`; blocked.AddNft != want {
		t.Errorf("add nft = %q, want %q", blocked.AddNft, want)
	}
	if !strings.Contains(blocked.Detail, "no answer within") {
		t.Errorf("detail = %q", blocked.Detail)
	}
	if !rep.Blocked {
		t.Error("report not Blocked")
	}
	if rep.ALG.Status != ALGNotDetected {
		t.Errorf("ALG = %+v", rep.ALG)
	}
	st := resultOf(t, rep, CheckRTP, "udp").RTP
	if st == nil || st.Received == 0 || st.Loss > 0.5 || len(st.Ports) != 6 {
		t.Fatalf("rtp stats = %+v", st)
	}
	if st.Ports[0].Port != p.rtp.Min || st.Ports[5].Port != p.rtp.Max {
		t.Errorf("probed ports %+v do not span %s", st.Ports, p.rtp)
	}
	if len(rep.Quality) != 1 || rep.Quality[0].MOS < 4 {
		t.Errorf("quality = %+v", rep.Quality)
	}
	for _, n := range rep.Names {
		if n.Error != "" || len(n.Addrs) != 1 {
			t.Errorf("name %+v", n)
		}
	}
}

func TestRunWithoutLogin(t *testing.T) {
	p := newProvider(t, providerOpts{sip: sipNoEcho})
	rep := run(t, p.options(""))
	if rep.Blocked {
		t.Errorf("blocked:%s", verdicts(rep))
	}
	if r := resultOf(t, rep, CheckRTP, "udp"); r.Status != StatusNeedsLogin || r.Add != "" {
		t.Errorf("rtp = %+v", r)
	}
	if rep.ALG.Status != ALGNotVerified {
		t.Errorf("ALG = %+v", rep.ALG)
	}
	// A token the MCS does not know is "needs login" too.
	rep = run(t, p.options("expired-token"))
	if r := resultOf(t, rep, CheckRTP, "udp"); r.Status != StatusNeedsLogin || !strings.Contains(r.Detail, "z5 login") {
		t.Errorf("rtp with a stale token = %+v", r)
	}
}

func TestRunTLSIntercepted(t *testing.T) {
	p := newProvider(t, providerOpts{zdialBadCA: true})
	rep := run(t, p.options(p.token))
	r := resultOf(t, rep, CheckZDial, "tcp")
	if r.Status != StatusBlocked || !strings.Contains(r.Detail, "not signed by the provider's CA") ||
		!strings.Contains(r.Fix, "TLS inspection") || r.Line != "outbound "+portOf(p.zdial)+" tcp  127.0.0.1" {
		t.Errorf("zdial = %+v", r)
	}
	if !rep.Blocked {
		t.Error("report not Blocked")
	}
}

func TestRunHTTPSRefused(t *testing.T) {
	p := newProvider(t, providerOpts{zdialClosed: true})
	rep := run(t, p.options(p.token))
	r := resultOf(t, rep, CheckZDial, "tcp")
	if r.Status != StatusBlocked || !strings.Contains(r.Detail, "refused") || r.Add != "outbound "+portOf(p.zdial)+" tcp  127.0.0.1" {
		t.Errorf("zdial = %+v", r)
	}
}

func TestRunSIPALG(t *testing.T) {
	p := newProvider(t, providerOpts{sip: sipALG})
	rep := run(t, p.options(p.token))
	if rep.ALG.Status != ALGDetected || !strings.Contains(rep.ALG.Fix, "disable SIP ALG") {
		t.Fatalf("ALG = %+v", rep.ALG)
	}
	got := strings.Join(rep.ALG.Rewritten, "\n")
	for _, want := range []string{"Via: sent TCP/127.0.0.1:", "the MCS received TCP/198.51.100.7:30123",
		"Contact: sent sip:z5-check@127.0.0.1:", `SDP: sent "c=IN IP4 10.1.2.3", the MCS received "c=IN IP4 198.51.100.7"`} {
		if !strings.Contains(got, want) {
			t.Errorf("rewritten lacks %q:\n%s", want, got)
		}
	}
	// The SIP rule itself works: an ALG is a fix, not a missing rule.
	if r := resultOf(t, rep, CheckSIP, "tcp"); r.Status != StatusOK || r.Add != "" {
		t.Errorf("sip = %+v", r)
	}
}

func TestRunSIPSilent(t *testing.T) {
	p := newProvider(t, providerOpts{sip: sipSilent})
	rep := run(t, p.options(p.token))
	r := resultOf(t, rep, CheckSIP, "tcp")
	if r.Status != StatusBlocked || !strings.Contains(r.Detail, "no SIP answer") {
		t.Errorf("sip = %+v", r)
	}
	if rep.ALG.Status != ALGSkipped {
		t.Errorf("ALG = %+v", rep.ALG)
	}
}

func TestRunSlowAndUnavailable(t *testing.T) {
	p := newProvider(t, providerOpts{noRelay: true, slowHealth: 150 * time.Millisecond})
	o := p.options(p.token)
	o.Thresholds.Slow = 100 * time.Millisecond
	rep := run(t, o)
	if r := resultOf(t, rep, CheckMCS, "tcp"); r.Status != StatusSlow {
		t.Errorf("mcs = %+v", r)
	}
	if r := resultOf(t, rep, CheckRTP, "udp"); r.Status != StatusSkipped || !strings.Contains(r.Detail, "probes unavailable") {
		t.Errorf("rtp = %+v", r)
	}
}

// TestRunEverythingBlocked: with every nameserver silent the check ends
// in about one probe timeout, naming every DNS rule, skipping the rest.
func TestRunEverythingBlocked(t *testing.T) {
	p := newProvider(t, providerOpts{udpDrop: 2})
	prof := *p.profile
	prof.Nameservers = nil
	for range 2 {
		// TCP refused (nothing listens), UDP swallowed.
		ap := startDNSUDPSink(t)
		prof.Nameservers = append(prof.Nameservers, ap.String())
	}
	o := p.options(p.token)
	o.Profile = &prof
	start := time.Now()
	rep := run(t, o)
	if d := time.Since(start); d > 3*o.Timeout {
		t.Errorf("took %s with a %s probe timeout", d, o.Timeout)
	}
	for _, r := range rep.Results {
		want := StatusSkipped
		if r.Rule.Check == CheckDNS {
			want = StatusBlocked
		}
		if r.Status != want {
			t.Errorf("%s: %s, want %s", r.Line, r.Status, want)
		}
	}
	if got := len(rep.BlockedResults()); got != 4 {
		t.Errorf("%d blocked, want 4 (2 nameservers x udp, tcp)", got)
	}
	if r := resultOf(t, rep, CheckZDial, "tcp"); !strings.Contains(r.Line, "<zdial.z5.test: not resolved>") {
		t.Errorf("unresolved zdial line %q", r.Line)
	}
}

func TestRunOptions(t *testing.T) {
	if _, err := Run(context.Background(), Options{}); err == nil {
		t.Error("no profile: no error")
	}
	p := newProvider(t, providerOpts{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if rep, err := Run(ctx, p.options(p.token)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, %v", rep, err)
	}
}

// TestRunSIPTLS: where the provider serves SIP over TLS, z5 check probes
// the TLS rule with a handshake verified against the profile's CA as the
// MCS name, and names the rule when it is blocked (the Z5 client signals
// only over TLS there, so the report is blocked).
func TestRunSIPTLS(t *testing.T) {
	for _, tt := range []struct {
		name    string
		mode    sipTLSMode
		status  Status
		detail  string
		add     bool // the report says to add the rule
		fix     string
		blocked bool
	}{
		{"open", sipTLSOK, StatusOK, "TLS verified as " + mcsName, false, "", false},
		{"refused", sipTLSClosed, StatusBlocked, "refused", true, "", true},
		{"held", sipTLSSilent, StatusBlocked, "TLS handshake got no answer", true, "", true},
		{"intercepted", sipTLSOtherCA, StatusBlocked, "not signed by the provider's CA", false, "TLS inspection", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t, providerOpts{sipTLS: tt.mode})
			rep := run(t, p.options(p.token))
			r := resultOf(t, rep, CheckSIPTLS, "tcp")
			line := "outbound " + portOf(p.sipTLS) + " tcp  127.0.0.1"
			if r.Status != tt.status || r.Line != line || !strings.Contains(r.Detail, tt.detail) {
				t.Errorf("sip_tls = %s %q (%s), want %s %q (%q)", r.Status, r.Line, r.Detail, tt.status, line, tt.detail)
			}
			if r.Rule.Label() != "SIP TLS "+mcsName || !r.Rule.Required {
				t.Errorf("rule %q required=%v, want %q required", r.Rule.Label(), r.Rule.Required, "SIP TLS "+mcsName)
			}
			if wantAdd := map[bool]string{true: line, false: ""}[tt.add]; r.Add != wantAdd {
				t.Errorf("add = %q, want %q", r.Add, wantAdd)
			}
			if tt.fix != "" && !strings.Contains(r.Fix, tt.fix) {
				t.Errorf("fix = %q, want it to mention %q", r.Fix, tt.fix)
			}
			if rep.Blocked != tt.blocked {
				t.Errorf("report blocked = %v, want %v:%s", rep.Blocked, tt.blocked, verdicts(rep))
			}
			// Plain SIP is still probed beside it.
			if s := resultOf(t, rep, CheckSIP, "tcp"); s.Status != StatusOK {
				t.Errorf("sip = %+v", s)
			}
		})
	}
}
