package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/devstack"
	"github.com/z5vrs/z5/internal/profile"
)

// writeProfile saves a copy of the stack's provider profile with other
// nameservers, and returns its path.
func writeProfile(t *testing.T, s *stack, nameservers ...string) string {
	t.Helper()
	p, err := profile.Load(s.profilePath())
	if err != nil {
		t.Fatal(err)
	}
	p.Nameservers = nameservers
	path := filepath.Join(t.TempDir(), "provider.json")
	if err := p.Save(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// silentNameserver holds UDP and TCP port 5353 on a fresh loopback address
// and never answers: a nameserver behind a firewall that drops packets.
func silentNameserver(t *testing.T) string {
	t.Helper()
	ip := loopbackIP(t)
	pc, err := net.ListenPacket("udp", ip+":5353")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", ip+":5353") // accepts into the backlog, never reads
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close(); l.Close() })
	return ip + ":5353"
}

// TestNameserverFailover: step 1 goes on to the next nameserver of the
// profile when the first one is down (refusing, or silently dropping), and
// names step 1 and the rule to open when none answers.
func TestNameserverFailover(t *testing.T) {
	s := startStack(t)
	s.provision(t)
	real := s.ip + ":5353"
	closed := loopbackIP(t) + ":5353" // nothing listens there: ICMP unreachable / RST
	for _, tt := range []struct {
		name        string
		nameservers []string
		maxTime     time.Duration
	}{
		{"first refuses", []string{closed, real}, 10 * time.Second},
		{"first silent", []string{silentNameserver(t), real}, 15 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			prof := writeProfile(t, s, tt.nameservers...)
			began := time.Now()
			out := mustZ5(t, t.TempDir(), bobPass+"\n", "login", "--profile", prof, "--username", "bob", "--password-stdin")
			took := time.Since(began)
			t.Logf("login with nameservers %v: %s", tt.nameservers, took.Round(time.Millisecond))
			if !strings.Contains(out, loginPrefix+"bob") {
				t.Fatalf("login: %s", out)
			}
			if took > tt.maxTime {
				t.Errorf("login took %s with the first nameserver down (want < %s)", took, tt.maxTime)
			}
		})
	}
	t.Run("all dead", func(t *testing.T) {
		dead := []string{closed, loopbackIP(t) + ":5353"}
		prof := writeProfile(t, s, dead...)
		out, err := z5(t, t.TempDir(), bobPass+"\n", "login", "--profile", prof, "--username", "bob", "--password-stdin")
		if err == nil {
			t.Fatalf("login without a reachable nameserver succeeded:\n%s", out)
		}
		t.Logf("%s", out)
		for _, want := range []string{"step 1 (DNS resolution)", "allow outbound UDP and TCP port 5353", dead[0], dead[1]} {
			if !strings.Contains(out, want) {
				t.Errorf("want %q in:\n%s", want, out)
			}
		}
	})
}

// startFailover starts a three-process deployment sharing one data dir
// (and so one SQLite database), with SIP over TLS when sipTLS: a-dns runs
// DNS and ZDial, a-mcs is mcs1 (site a), b-mcs is mcs2 (site b). It
// provisions the stack and returns it with the processes by node name.
func startFailover(t *testing.T, sipTLS bool) (*stack, map[string]*proc, twoSites) {
	t.Helper()
	dir := t.TempDir()
	ip := twoSites{aDNS: loopbackIP(t), aMCS: loopbackIP(t), bMCS: loopbackIP(t)}
	cfg := writeConfig(t, dir, devstack.Deployment("Z5 e2e failover", dir, sipTLS, "", twoSiteNodes(ip)...))
	s := &stack{ip: ip.aDNS, dir: dir, cfg: cfg}
	// One at a time: the first creates the CA, license key and database.
	procs := map[string]*proc{}
	for _, n := range []struct{ name, ip string }{{"a-dns", ip.aDNS}, {"a-mcs", ip.aMCS}, {"b-mcs", ip.bMCS}} {
		procs[n.name] = start(t, "z5d", "run", "--config", cfg, "--node", n.name)
		waitReady(t, procs[n.name], n.ip+":9090")
	}
	s.proc = procs["a-dns"]
	s.provision(t)
	return s, procs, ip
}

// TestMCSFailover: bob listens on mcs1; mcs1's process is killed with
// SIGKILL; bob's client notices the dead flow, re-registers on mcs2 within
// 10 s, and alice's call reaches him there.
func TestMCSFailover(t *testing.T) {
	s, procs, ip := startFailover(t, false)
	ip2, ip3 := ip.aMCS, ip.bMCS
	alice := s.login(t, "alice", alicePass, aliceWork)
	bob := s.login(t, "bob", bobPass, "")

	lis := startZ5(t, bob, "listen", "--auto-answer")
	waitFor(t, lis, "listening as sip:"+bobNumber+"@mcs.z5.test on mcs1.mcs.z5.test ("+ip2+":5060)", 15*time.Second)

	killed := time.Now()
	procs["a-mcs"].kill9()
	reregistered := waitFor(t, lis, "with mcs2.mcs.z5.test ("+ip3+":5060)", 40*time.Second)
	took := reregistered.Sub(killed)
	t.Logf("re-registered on mcs2 %s after mcs1 was killed", took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("re-registration took %s, want < 10s", took)
	}

	out := mustZ5(t, alice, "", "call", "Bob", "--duration", "2s", "--json")
	sum := parseSummary(t, out)
	t.Logf("call after failover: via %s, relay %s, setup %.1f ms, first media %.1f ms", sum.MCS, sum.Relay, sum.SetupMs, sum.FirstMedia)
	if sum.Relay != ip3 || sum.EndReason != "duration reached" {
		t.Errorf("call after failover: %+v (want relay %s, mcs2)", sum, ip3)
	}
	for _, st := range sum.Streams {
		if st.PacketsReceived == 0 {
			t.Errorf("call after failover: no %s received", st.Kind)
		}
	}
	waitFor(t, lis, "call from "+aliceWork+" ended", 10*time.Second)
}

// TestMCSHungFailover: bob listens on mcs1; mcs1's process is frozen with
// SIGSTOP, so its kernel keeps the connection open (and still accepts new
// ones) but nothing answers, and DNS keeps listing it for dead_after. bob's
// keepalive (a CRLF ping every 3.2-4 s, dead without a pong in 3 s) notices,
// and he re-registers on mcs2 without first trying the hung node again.
func TestMCSHungFailover(t *testing.T) { testHungFailover(t, false) }

// testHungFailover is TestMCSHungFailover over TCP, or over TLS when
// sipTLS; a call then reaches bob on mcs2 over the same transport.
func testHungFailover(t *testing.T, sipTLS bool) {
	s, procs, ip := startFailover(t, sipTLS)
	port, over := ":5060", " over TCP"
	if sipTLS {
		port, over = ":5061", " over TLS"
	}
	bob := s.login(t, "bob", bobPass, "")
	lis := startZ5(t, bob, "listen", "--auto-answer")
	waitFor(t, lis, "listening as sip:"+bobNumber+"@mcs.z5.test on mcs1.mcs.z5.test ("+ip.aMCS+port+")", 15*time.Second)

	// Freeze mcs1 between store writes. Its REGISTER answer goes out
	// before the location row is written, and a process frozen inside a
	// SQLite write transaction keeps the database locked for every other
	// node of this one-file test deployment (on PostgreSQL a frozen node
	// holds only its own rows).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if v, ok := metricAt(t, ip.aMCS, "z5_sip_location_queue"); ok && v == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("mcs1's location rows still not written after 10 s")
		}
	}
	hung := procs["a-mcs"].cmd.Process
	if err := hung.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	t.Cleanup(func() { hung.Signal(syscall.SIGCONT) }) // before its stop
	// The design's worst case, over TCP and TLS alike: a ping just missed
	// (4 s), its pong wait (3 s), the health lookup (1 s), and one 5 s
	// attempt spare.
	reregistered := waitFor(t, lis, "with mcs2.mcs.z5.test ("+ip.bMCS+port+")"+over, 40*time.Second)
	took := reregistered.Sub(frozen)
	t.Logf("re-registered on mcs2%s %s after mcs1 hung", over, took.Round(time.Millisecond))
	if took > 13*time.Second {
		t.Errorf("re-registration took %s after mcs1 hung, want < 13s", took)
	}

	out := mustZ5(t, s.login(t, "alice", alicePass, aliceWork), "", "call", "Bob", "--duration", "1s", "--json")
	if sum := parseSummary(t, out); sum.Relay != ip.bMCS || sum.EndReason != "duration reached" || !strings.Contains(sum.MCS, port) {
		t.Errorf("call after failover: %+v (want relay %s, mcs2%s)", sum, ip.bMCS, over)
	}
}

// TestKeepaliveCost measures what the keepalive costs one idle registered
// client, from the kernel's counters of its connection to the MCS (ss -ti).
// A measurement, not in the default suite:
//
//	Z5_BENCH_KEEPALIVE=60s go test ./e2e -run TestKeepaliveCost -v
func TestKeepaliveCost(t *testing.T) {
	span, _ := time.ParseDuration(os.Getenv("Z5_BENCH_KEEPALIVE"))
	if span <= 0 {
		t.Skip("a measurement: set Z5_BENCH_KEEPALIVE to how long to watch an idle client, e.g. 60s")
	}
	ss := needTool(t, "ss")
	s := startStack(t)
	s.provision(t)
	bob := s.login(t, "bob", bobPass, "")
	lis := startZ5(t, bob, "listen")
	waitFor(t, lis, "listening as sip:"+bobNumber, 15*time.Second)
	// counters reads the client side of the flow: segments and payload
	// bytes out (to the MCS) and in.
	counters := func() (segsOut, segsIn, bytesOut, bytesIn int) {
		out, err := exec.Command(ss, "-tinH", "state", "established", "dst", s.ip, "dport", "= :5060").CombinedOutput()
		if err != nil {
			t.Fatalf("ss: %v\n%s", err, out)
		}
		fields := strings.Fields(string(out))
		get := func(key string) int {
			n := -1
			for _, f := range fields {
				if v, ok := strings.CutPrefix(f, key+":"); ok {
					if n != -1 {
						t.Fatalf("more than one connection to %s:5060:\n%s", s.ip, out)
					}
					n, _ = strconv.Atoi(v)
				}
			}
			if n == -1 {
				n = 0 // ss leaves out a counter that is still zero
			}
			return n
		}
		return get("segs_out"), get("segs_in"), get("bytes_sent"), get("bytes_received")
	}
	so0, si0, bo0, bi0 := counters()
	began := time.Now()
	time.Sleep(span)
	so1, si1, bo1, bi1 := counters()
	secs := time.Since(began).Seconds()
	// IPv4 + TCP headers with timestamps: 20 + 32 bytes a segment.
	const hdr = 52
	out, in := so1-so0, si1-si0
	bytesOut, bytesIn := (bo1-bo0)+out*hdr, (bi1-bi0)+in*hdr
	t.Logf("idle client over %.0f s: out %d packets, %d bytes (%d payload); in %d packets, %d bytes (%d payload)",
		secs, out, bytesOut, bo1-bo0, in, bytesIn, bi1-bi0)
	t.Logf("per client: %.2f packets/s, %.1f bytes/s at the IP layer (out %.2f pkt/s %.1f B/s, in %.2f pkt/s %.1f B/s)",
		float64(out+in)/secs, float64(bytesOut+bytesIn)/secs, float64(out)/secs, float64(bytesOut)/secs, float64(in)/secs, float64(bytesIn)/secs)
	if out == 0 || in == 0 {
		t.Errorf("no keepalive traffic in %s", span)
	}
}
