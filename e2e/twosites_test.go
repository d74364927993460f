package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/z5vrs/z5/internal/client"
	"github.com/z5vrs/z5/internal/devstack"
	"github.com/z5vrs/z5/internal/license"
	"github.com/z5vrs/z5/internal/pgtest"
	"github.com/z5vrs/z5/internal/profile"
)

// twoSites are the addresses of a local two-site deployment: per site a
// node running DNS and ZDial and an MCS node, as in production.
type twoSites struct {
	aDNS, aMCS, bDNS, bMCS string
}

// twoSiteNodes are the nodes of a deployment over two sites: in each, a
// node running DNS and ZDial (<site>-dns, where its address is given) and
// an MCS node (<site>-mcs: mcs1.mcs.z5.test in site a, mcs2 in b).
func twoSiteNodes(ip twoSites) []devstack.Site {
	var sites []devstack.Site
	for i, st := range []struct{ name, dns, mcs string }{{"a", ip.aDNS, ip.aMCS}, {"b", ip.bDNS, ip.bMCS}} {
		site := devstack.Site{Name: st.name}
		if st.dns != "" {
			site.Nodes = append(site.Nodes, devstack.Node{Name: st.name + "-dns", Roles: []string{"dns", "zdial"}, Address: st.dns})
		}
		site.Nodes = append(site.Nodes, devstack.Node{Name: st.name + "-mcs", Roles: []string{"mcs"}, Address: st.mcs,
			Hosts: []string{fmt.Sprintf("mcs%d.mcs.z5.test", i+1)}})
		sites = append(sites, site)
	}
	return sites
}

// twoSitesConfig writes the deployment: one PostgreSQL, a 1 s heartbeat
// and MCS nodes dead after 3 s.
func twoSitesConfig(t *testing.T, dir, dsn string, ip twoSites) string {
	t.Helper()
	extra := fmt.Sprintf(`
[health]
heartbeat = "1s"
dead_after = "3s"

[store]
driver = "postgres"
dsn = %q
`, dsn)
	return writeConfig(t, dir, devstack.Deployment("Z5 e2e two sites", dir, false, extra, twoSiteNodes(ip)...))
}

// startSite starts one site's two nodes (<site>-dns on dnsIP, <site>-mcs on
// mcsIP) in one process and waits until both are ready.
func startSite(t *testing.T, cfg, site, dnsIP, mcsIP string) *proc {
	t.Helper()
	p := start(t, "z5d", "run", "--config", cfg, "--node", site+"-dns,"+site+"-mcs")
	waitReady(t, p, dnsIP+":9090")
	waitReady(t, p, mcsIP+":9090")
	return p
}

// preferMCS rewrites a logged-in client's SIP host list so it registers
// with host first: how a test puts two clients on different sites.
func preferMCS(t *testing.T, home, host string) {
	t.Helper()
	path := filepath.Join(home, "state.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]json.RawMessage
	var sip map[string]json.RawMessage
	var hosts []string
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(st["sip"], &sip); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(sip["hosts"], &hosts); err != nil || !slices.Contains(hosts, host) {
		t.Fatalf("SIP hosts %v (%v): no %s", hosts, err, host)
	}
	hosts = append([]string{host}, slices.DeleteFunc(hosts, func(h string) bool { return h == host })...)
	sip["hosts"], _ = json.Marshal(hosts)
	st["sip"], _ = json.Marshal(sip)
	b, _ = json.Marshal(st)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// lookupA asks one nameserver for the A records of name.
func lookupA(server, name string) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	r, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, server)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out, nil
}

// apiClient speaks HTTPS to one node by address, verifying its
// certificate for name against the deployment's CA.
func apiClient(t *testing.T, prof *profile.Profile, name string) *http.Client {
	t.Helper()
	pool, err := prof.CAPool()
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS12},
	}}
}

// postJSON posts in and decodes the answer into out; it returns the status.
func postJSON(hc *http.Client, url, token string, in, out any) (int, error) {
	body, _ := json.Marshal(in)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s: %d: %w", url, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, nil
}

// TestTwoSites runs a production-like two-site deployment on loopback as
// two z5d processes (one per site) sharing one PostgreSQL: a call between
// clients registered at different sites is forwarded and anchored once;
// sessions and licenses from one site hold at the other; address book
// writes acknowledged at A are at B even when A is killed right after;
// and when A dies, its clients move to B within seconds while DNS stops
// handing A out.
func TestTwoSites(t *testing.T) {
	dsn := pgtest.Start(t) // skips without the PostgreSQL server binaries
	dir := t.TempDir()
	ip := twoSites{aDNS: loopbackIP(t), aMCS: loopbackIP(t), bDNS: loopbackIP(t), bMCS: loopbackIP(t)}
	cfg := twoSitesConfig(t, dir, dsn, ip)
	// Site A first: it creates the CA and license key both sites use.
	siteA := startSite(t, cfg, "a", ip.aDNS, ip.aMCS)
	startSite(t, cfg, "b", ip.bDNS, ip.bMCS)
	s := &stack{ip: ip.aDNS, dir: dir, cfg: cfg, proc: siteA}
	s.provision(t)
	prof, err := profile.Load(s.profilePath())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("session and license across sites", func(t *testing.T) {
		var login struct {
			Token string `json:"token"`
		}
		if code, err := postJSON(apiClient(t, prof, "zdial.z5.test"), "https://"+ip.aDNS+":8443/api/v1/login", "",
			map[string]string{"username": "bob", "password": bobPass}, &login); err != nil || code != 200 {
			t.Fatalf("login at A's ZDial: %d %v", code, err)
		}
		var sel struct {
			MCSToken string `json:"mcs_token"`
			DeviceID int64  `json:"device_id"`
		}
		if code, err := postJSON(apiClient(t, prof, "zdial.z5.test"), "https://"+ip.bDNS+":8443/api/v1/select", login.Token,
			map[string]string{"number": bobNumber, "device_name": "e2e", "instance_id": "urn:uuid:00000000-0000-4000-8000-00000000b0b0"}, &sel); err != nil || code != 200 {
			t.Fatalf("select at B's ZDial with A's session: %d %v", code, err)
		}
		var lic struct {
			License string `json:"license"`
		}
		if code, err := postJSON(apiClient(t, prof, "mcs2.mcs.z5.test"), "https://"+ip.bMCS+":9443/api/v1/license", sel.MCSToken, nil, &lic); err != nil || code != 200 {
			t.Fatalf("license from B's MCS: %d %v", code, err)
		}
		keys, err := prof.PublicKeys()
		if err != nil {
			t.Fatal(err)
		}
		claims, err := license.Verify(lic.License, time.Now(), keys...)
		if err != nil || claims.Number != bobNumber || claims.DeviceID != sel.DeviceID {
			t.Fatalf("license from B: %+v %v", claims, err)
		}
	})

	// Both sites must be healthy in DNS first: the client tries the MCS
	// names DNS lists as healthy before the others, and right after start
	// one site's heartbeat may not have been read yet.
	for _, ns := range []string{ip.aDNS, ip.bDNS} { // each site's nameserver reads the table itself
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			lb, err := lookupA(ns+":5353", "lb.mcs.z5.test")
			if err == nil && len(lb) == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("lb.mcs at %s never listed both sites: %v %v", ns, lb, err)
			}
		}
	}
	// bob listens at site B, alice's home number at site A.
	bob := s.login(t, "bob", bobPass, "")
	preferMCS(t, bob, "mcs2.mcs.z5.test")
	bobLis := startZ5(t, bob, "listen", "--auto-answer")
	waitFor(t, bobLis, "listening as sip:"+bobNumber+"@mcs.z5.test on mcs2.mcs.z5.test ("+ip.bMCS+":5060)", 15*time.Second)
	home := s.login(t, "alice", alicePass, aliceHome)
	homeLis := startZ5(t, home, "listen", "--auto-answer")
	waitFor(t, homeLis, "listening as sip:"+aliceHome+"@mcs.z5.test on mcs1.mcs.z5.test ("+ip.aMCS+":5060)", 15*time.Second)
	work := s.login(t, "alice", alicePass, aliceWork)

	t.Run("call from site A to site B", func(t *testing.T) {
		out := mustZ5(t, work, "", "call", "Bob", "--duration", "2s", "--json")
		sum := parseSummary(t, out)
		t.Logf("A→B call: via %s, relay %s, setup %.1f ms", sum.MCS, sum.Relay, sum.SetupMs)
		if !strings.Contains(sum.MCS, ip.aMCS) || sum.Relay != ip.aMCS || sum.EndReason != "duration reached" {
			t.Errorf("call %+v: want it placed at site A and anchored on A's relay %s", sum, ip.aMCS)
		}
		for _, st := range sum.Streams {
			if st.PacketsReceived == 0 {
				t.Errorf("no %s received", st.Kind)
			}
		}
		waitFor(t, bobLis, "call from "+aliceWork+" ended", 10*time.Second)
		// One call record, site A's, once it has ended.
		var recs []callRecord
		deadline := time.Now().Add(10 * time.Second)
		for {
			recs = recs[:0]
			if err := json.Unmarshal([]byte(s.admin(t, "", "--json", "calls", "--number", bobNumber)), &recs); err != nil {
				t.Fatal(err)
			}
			recs = slices.DeleteFunc(recs, func(r callRecord) bool { return r.CallID != sum.CallID })
			if len(recs) != 1 || !recs[0].EndedAt.IsZero() || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if len(recs) != 1 || recs[0].Node != "a-mcs" || recs[0].AnsweredAt.IsZero() || recs[0].EndedAt.IsZero() {
			t.Errorf("call records for %s: %+v, want one, ended, by a-mcs", sum.CallID, recs)
		}
	})

	lbBefore, err := lookupA(ip.bDNS+":5353", "lb.mcs.z5.test")
	if err != nil || !slices.Contains(lbBefore, ip.aMCS) || !slices.Contains(lbBefore, ip.bMCS) {
		t.Fatalf("lb.mcs at B's nameserver before the kill: %v %v", lbBefore, err)
	}

	// Address book writes acknowledged by A's MCS, then A is killed.
	acked, killed := writeUntilKilled(t, prof, clientToken(t, bob), "https://"+ip.aMCS+":9443", siteA, 100, 20*time.Second)

	t.Run("acknowledged writes at the other site", func(t *testing.T) {
		token := clientToken(t, bob)
		req, _ := http.NewRequest(http.MethodGet, "https://"+ip.bMCS+":9443/api/v1/contacts", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := apiClient(t, prof, "mcs2.mcs.z5.test").Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var list struct {
			Contacts []struct {
				ID string `json:"id"`
			} `json:"contacts"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != 200 {
			t.Fatalf("contacts at B: %d %v", resp.StatusCode, err)
		}
		var have []string
		for _, c := range list.Contacts {
			have = append(have, c.ID)
		}
		if lost := lostWrites(acked, have); len(lost) > 0 {
			t.Fatalf("%d of %d contacts acknowledged by A missing at B after A was killed: %v", len(lost), len(acked), lost)
		}
		t.Logf("%d writes acknowledged by A before kill -9, all read back at B", len(acked))
	})

	t.Run("A's client moves to B", func(t *testing.T) {
		at := waitFor(t, homeLis, "with mcs2.mcs.z5.test ("+ip.bMCS+":5060)", 30*time.Second)
		took := at.Sub(killed)
		t.Logf("re-registered on site B %s after site A was killed", took.Round(time.Millisecond))
		if took > 10*time.Second {
			t.Errorf("re-registration took %s, want < 10s", took)
		}
	})

	t.Run("DNS stops handing out A", func(t *testing.T) {
		var lb []string
		for {
			lb, err = lookupA(ip.bDNS+":5353", "lb.mcs.z5.test")
			if err == nil && !slices.Contains(lb, ip.aMCS) || time.Since(killed) > 15*time.Second {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		took := time.Since(killed)
		t.Logf("lb.mcs without site A %s after the kill: %v", took.Round(time.Millisecond), lb)
		// dead_after (3 s) after the last heartbeat, plus one table refresh
		// (1 s), plus slack for a loaded machine.
		if err != nil || slices.Contains(lb, ip.aMCS) || !slices.Contains(lb, ip.bMCS) || took > 6*time.Second {
			t.Errorf("lb.mcs %v (%v) %s after the kill, want only %s within 6s", lb, err, took, ip.bMCS)
		}
	})

	t.Run("call to A's client after failover", func(t *testing.T) {
		out := mustZ5(t, work, "", "call", aliceHome, "--duration", "2s", "--json")
		sum := parseSummary(t, out)
		t.Logf("call after failover: via %s, relay %s, setup %.1f ms", sum.MCS, sum.Relay, sum.SetupMs)
		if sum.Relay != ip.bMCS || sum.EndReason != "duration reached" {
			t.Errorf("call after failover: %+v (want relay %s)", sum, ip.bMCS)
		}
		for _, st := range sum.Streams {
			if st.PacketsReceived == 0 {
				t.Errorf("no %s received", st.Kind)
			}
		}
		waitFor(t, homeLis, "call from "+aliceWork+" ended", 10*time.Second)
	})
}

// callRecord is the part of `z5d admin --json calls` the tests read.
type callRecord struct {
	CallID     string `json:"call_id"`
	Node       string
	AnsweredAt time.Time `json:"answered_at"`
	EndedAt    time.Time `json:"ended_at"`
}

// clientToken reads a logged-in client's MCS token.
func clientToken(t *testing.T, home string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(home, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		MCSToken string `json:"mcs_token"`
	}
	if err := json.Unmarshal(b, &st); err != nil || st.MCSToken == "" {
		t.Fatalf("no MCS token in %s: %v", home, err)
	}
	return st.MCSToken
}

// lostWrites are the IDs of acked that are not in have.
func lostWrites(acked, have []string) []string {
	return slices.DeleteFunc(slices.Clone(acked), func(id string) bool { return slices.Contains(have, id) })
}

// writeUntilKilled creates contacts through the MCS at base (mcs1, as
// token's user) from four writers until at least enough are acknowledged
// (or within passes), then kills site with SIGKILL. It returns the
// acknowledged IDs, at least 20, and when the kill happened.
func writeUntilKilled(t *testing.T, prof *profile.Profile, token, base string, site *proc, enough int, within time.Duration) ([]string, time.Time) {
	t.Helper()
	hc := apiClient(t, prof, "mcs1.mcs.z5.test")
	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var out struct {
					ID string `json:"id"`
				}
				code, err := postJSON(hc, base+"/api/v1/contacts", token,
					map[string]string{"name": fmt.Sprintf("w%d-%d", w, i), "number": "2025550199"}, &out)
				if err != nil && code == 0 {
					return // the server is gone
				}
				if code == http.StatusCreated && out.ID != "" {
					mu.Lock()
					acked = append(acked, out.ID)
					mu.Unlock()
				}
			}
		}()
	}
	deadline := time.Now().Add(within)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= enough || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	site.kill9()
	killed := time.Now()
	close(stop)
	wg.Wait()
	if len(acked) < 20 {
		t.Fatalf("only %d writes acknowledged before the kill", len(acked))
	}
	return acked, killed
}

// TestFailoverBench measures how long a client takes to re-register at the
// other site after its MCS node fails, over many trials, alternating the
// site that fails. It is a benchmark, not in the default suite:
//
//	Z5_BENCH_FAILOVER=20 go test ./e2e -run TestFailoverBench -v -timeout 30m
//
// runs 20 trials with kill -9 (the kernel resets the client's connection
// at once). Z5_BENCH_FAILOVER_MODE=stop freezes the node with SIGSTOP
// instead, a host that stops answering without closing anything: the
// client then notices by its keepalive (client.DefaultPingInterval,
// client.DefaultPongTimeout), and each freeze lands at a random point of
// the ping cycle. Each trial also times how long B's nameserver takes to
// stop listing the failed node for lb.mcs.
func TestFailoverBench(t *testing.T) {
	trials, _ := strconv.Atoi(os.Getenv("Z5_BENCH_FAILOVER"))
	if trials <= 0 {
		t.Skip("a benchmark: set Z5_BENCH_FAILOVER=N to run N trials")
	}
	mode := os.Getenv("Z5_BENCH_FAILOVER_MODE")
	if mode == "" {
		mode = "kill"
	}
	if mode != "kill" && mode != "stop" {
		t.Fatalf("Z5_BENCH_FAILOVER_MODE=%q: want kill or stop", mode)
	}
	dsn := pgtest.Start(t)
	dir := t.TempDir()
	ip := twoSites{aDNS: loopbackIP(t), aMCS: loopbackIP(t), bDNS: loopbackIP(t), bMCS: loopbackIP(t)}
	cfg := twoSitesConfig(t, dir, dsn, ip)
	type site struct {
		name, dns, mcs, host string
		proc                 *proc
	}
	sites := []*site{
		{name: "a", dns: ip.aDNS, mcs: ip.aMCS, host: "mcs1.mcs.z5.test"},
		{name: "b", dns: ip.bDNS, mcs: ip.bMCS, host: "mcs2.mcs.z5.test"},
	}
	up := func(s *site) { s.proc = startSite(t, cfg, s.name, s.dns, s.mcs) }
	for _, s := range sites {
		up(s)
	}
	st := &stack{ip: ip.aDNS, dir: dir, cfg: cfg, proc: sites[0].proc}
	st.provision(t)
	bob := st.login(t, "bob", bobPass, "")
	lis := startZ5(t, bob, "listen", "--auto-answer")
	waitFor(t, lis, "listening as sip:"+bobNumber+"@mcs.z5.test on "+sites[0].host, 15*time.Second)

	registered := func(s *site) string { return "with " + s.host + " (" + s.mcs + ":5060)" }
	var rereg, dnsGone []time.Duration
	cur := 0 // the site bob is registered at
	for i := range trials {
		from, to := sites[cur], sites[1-cur]
		// The other site must be serving, and listed again, first.
		deadline := time.Now().Add(15 * time.Second)
		for {
			lb, err := lookupA(to.dns+":5353", "lb.mcs.z5.test")
			if err == nil && slices.Contains(lb, from.mcs) && slices.Contains(lb, to.mcs) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("trial %d: lb.mcs at %s is %v (%v), want both sites", i, to.dns, lb, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if mode == "stop" {
			time.Sleep(rand.N(client.DefaultPingInterval))
		}
		before := strings.Count(lis.Output(), registered(to))
		failed := time.Now()
		if mode == "kill" {
			from.proc.kill9()
		} else {
			from.proc.cmd.Process.Signal(syscall.SIGSTOP)
		}
		var took, gone time.Duration
		for took == 0 || gone == 0 {
			if took == 0 && strings.Count(lis.Output(), registered(to)) > before {
				took = time.Since(failed)
			}
			if gone == 0 {
				if lb, err := lookupA(to.dns+":5353", "lb.mcs.z5.test"); err == nil && !slices.Contains(lb, from.mcs) {
					gone = time.Since(failed)
				}
			}
			if time.Since(failed) > 90*time.Second {
				t.Fatalf("trial %d: re-registered after %s, DNS cleared after %s (0: not yet):\n%s", i, took, gone, lis.Output())
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("trial %2d: %s of site %s: re-registered at %s after %s; lb.mcs without it after %s",
			i+1, mode, from.name, to.host, took.Round(time.Millisecond), gone.Round(time.Millisecond))
		rereg, dnsGone = append(rereg, took), append(dnsGone, gone)
		if mode == "stop" {
			from.proc.cmd.Process.Signal(syscall.SIGCONT)
			from.proc.stop(syscall.SIGTERM)
		}
		up(from)
		cur = 1 - cur
	}
	t.Logf("re-registration after %s, %d trials: %s", mode, trials, distribution(rereg))
	t.Logf("lb.mcs without the failed node, %d trials: %s", trials, distribution(dnsGone))
}

// distribution summarizes durations: min, p50, p95 (nearest rank), max.
func distribution(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(i, 0)].Round(time.Millisecond)
	}
	return fmt.Sprintf("min %s, p50 %s, p95 %s, max %s", s[0].Round(time.Millisecond), rank(0.5), rank(0.95), s[len(s)-1].Round(time.Millisecond))
}
