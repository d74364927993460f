package e2e

// TestCustomerFirewall puts a customer host behind exactly the nftables
// ruleset `z5d firewall --format nft` prints and proves the seed's promise
// both ways: with every rule the client completes all five steps and a video
// call, and with any one rule group missing it fails naming that group.
//
// The provider and each customer run in network namespaces wired only to
// each other, on addresses of 198.18.0.0/15 (the benchmarking range, never
// routed on the Internet): the provider namespace holds the seed's two
// sites with 198.18 addresses on its loopback, each customer namespace has
// one veth to it and a default route through it, and nothing connects to
// the host's own network.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The seed's topology with 198.18 addresses: three nameservers, a ZDial and
// an MCS per site.
var labSites = []struct {
	name  string
	nodes []labNode
}{
	{"a", []labNode{
		{"a-ns1", "dns", "198.18.1.61", ""},
		{"a-ns2", "dns", "198.18.1.62", ""},
		{"a-ns3", "dns", "198.18.1.90", ""},
		{"a-zdial", "zdial", "198.18.1.114", ""},
		{"a-mcs", "mcs", "198.18.1.21", "mcs1.mcs.z5.test"},
	}},
	{"b", []labNode{
		{"b-ns1", "dns", "198.18.2.61", ""},
		{"b-ns2", "dns", "198.18.2.62", ""},
		{"b-ns3", "dns", "198.18.2.90", ""},
		{"b-zdial", "zdial", "198.18.2.114", ""},
		{"b-mcs", "mcs", "198.18.2.21", "mcs2.mcs.z5.test"},
	}},
}

type labNode struct{ name, role, addr, host string }

const (
	nsRTP          = "20000-20999"
	nsAliceNumber  = "2025550101"
	nsBobNumber    = "3035550199"
	nsAlicePass    = "alice-secret-1"
	nsBobPass      = "bob-secret-22"
	nsTimeout      = 60 * time.Second
	nsCheckMissing = "z5 check is not built yet (`z5 check --help` fails): the network readiness assertions wait for internal/netcheck and cmd/z5/check.go"
)

// nsRule is one rule of `z5d firewall --format json`.
type nsRule struct {
	Step        int    `json:"step"`
	Group       string `json:"group"`
	Proto       string `json:"proto"`
	Ports       string `json:"ports"`
	Destination string `json:"destination"`
	Site        string `json:"site"`
	Node        string `json:"node"`
}

// seed is the rule as the seed's formal list writes it.
func (r nsRule) seed() string {
	return fmt.Sprintf("outbound %s %s  %s", r.Ports, r.Proto, r.Destination)
}

// comment is the nft rule comment the generator gives r.
func (r nsRule) comment() string {
	return fmt.Sprintf("z5 step %d %s: %s/%s to %s (site %s)", r.Step, r.Group, r.Proto, r.Ports, r.Node, r.Site)
}

// nsLab is the provider namespace, its running z5d and the generated rules.
type nsLab struct {
	id      string // unique suffix of namespace names
	prov    string // provider namespace
	dir     string // data_dir
	cfg     string
	profile string
	nft     string   // `z5d firewall --format nft`
	rules   []nsRule // `z5d firewall --format json`
	z5d     *proc
	check   bool // z5 check is built
}

// nsCustomer is one customer namespace with a firewall and client homes.
type nsCustomer struct {
	lab  *nsLab
	ns   string
	addr string
	dir  string
}

func TestCustomerFirewall(t *testing.T) {
	began := time.Now()
	l := newLab(t)
	l.startProvisioned(t)
	t.Logf("provider up and provisioned in %s", time.Since(began).Round(time.Millisecond))

	// With exactly the generated rules: steps 1-5 and a call with media
	// both ways.
	works := false
	t.Run("all rules", func(t *testing.T) {
		start := time.Now()
		c := l.customer(t, 0)
		c.load(t, l.nft)
		c.mustLogin(t, "alice")
		c.mustLogin(t, "bob")
		c.callBothWays(t)
		works = !t.Failed()
		c.checkReport(t, "alice", nil, func(nsRule) string { return "ok" })
		t.Logf("all rules: %s", time.Since(start).Round(time.Millisecond))
	})
	if !works {
		// Failures without a rule mean nothing when the client fails
		// with every rule.
		return
	}

	isNaming := func(proto string) func(nsRule) bool {
		return func(r nsRule) bool { return r.Step == 1 && (proto == "" || r.Proto == proto) }
	}
	step := func(n int) func(nsRule) bool { return func(r nsRule) bool { return r.Step == n } }
	scenarios := []struct {
		name   string
		remove func(nsRule) bool
		// loggedIn: log both customers in with every rule before the
		// group is removed (steps 4-5 need steps 1-3 done).
		loggedIn bool
		assert   func(t *testing.T, c *nsCustomer)
		// checkOther is what z5 check must say of a rule still allowed:
		// "ok" when nil; "" when the rule cannot be named because its
		// name does not resolve (no DNS at all).
		checkOther func(nsRule) string
	}{
		{"DNS UDP", isNaming("udp"), false, func(t *testing.T, c *nsCustomer) {
			// Step 1 falls back to TCP by design.
			c.mustLogin(t, "alice")
		}, nil},
		{"DNS TCP", isNaming("tcp"), false, func(t *testing.T, c *nsCustomer) {
			c.mustLogin(t, "alice")
		}, nil},
		{"DNS", isNaming(""), false, func(t *testing.T, c *nsCustomer) {
			c.wantStepFailure(t, 1, "UDP and TCP port 53", c.login(t, "alice"))
		}, func(nsRule) string { return "" }},
		{"ZDial", step(2), false, func(t *testing.T, c *nsCustomer) {
			c.wantStepFailure(t, 2, "TCP port 443 to the ZDial servers", c.login(t, "alice"))
		}, nil},
		{"MCS HTTPS", step(3), false, func(t *testing.T, c *nsCustomer) {
			c.wantStepFailure(t, 3, "TCP port 443 to the MCS servers", c.login(t, "alice"))
		}, func(r nsRule) string {
			if r.Step == 5 {
				// The RTP probe needs a probe session from the MCS
				// over HTTPS: untestable, not blocked.
				return "skipped"
			}
			return "ok"
		}},
		{"SIP", step(4), true, func(t *testing.T, c *nsCustomer) {
			var wg sync.WaitGroup
			var listen, call nsResult
			wg.Add(2)
			go func() {
				defer wg.Done()
				listen = c.z5(t, "bob", "", "listen", "--auto-answer", "--max-calls", "1")
			}()
			go func() {
				defer wg.Done()
				call = c.z5(t, "alice", "", "call", nsBobNumber, "--duration", "2s", "--json")
			}()
			wg.Wait()
			c.wantStepFailure(t, 4, "TCP port 5060 to the MCS servers", listen)
			c.wantStepFailure(t, 4, "TCP port 5060 to the MCS servers", call)
		}, nil},
		{"RTP", step(5), true, func(t *testing.T, c *nsCustomer) {
			ln := c.listen(t, "bob")
			res := c.z5(t, "alice", "", "call", nsBobNumber, "--duration", "2s", "--json")
			c.wantStepFailure(t, 5, "UDP ports "+nsRTP+" to the MCS servers", res)
			if !strings.Contains(res.out, "no media arrived") {
				t.Errorf("z5 call without the RTP rules does not say no media arrived:\n%s", res.out)
			}
			ln.wait(t)
		}, nil},
	}
	t.Run("without", func(t *testing.T) {
		for i, sc := range scenarios {
			t.Run(sc.name, func(t *testing.T) {
				t.Parallel()
				start := time.Now()
				c := l.customer(t, i+1)
				var kept []string
				var removed []nsRule
				for _, r := range l.rules {
					if sc.remove(r) {
						removed = append(removed, r)
					} else {
						kept = append(kept, r.comment())
					}
				}
				reduced := l.nftWithout(t, sc.remove)
				// With every rule: a logged-in home for z5 check (its
				// RTP probe needs an MCS session) and, for steps 4-5,
				// both customers.
				c.load(t, l.nft)
				c.mustLoginAs(t, "check", "bob")
				if sc.loggedIn {
					c.mustLogin(t, "alice")
					c.mustLogin(t, "bob")
				}
				c.load(t, reduced)
				c.assertRuleset(t, kept)
				sc.assert(t, c)
				other := sc.checkOther
				if other == nil {
					other = func(nsRule) string { return "ok" }
				}
				c.checkReport(t, "check", removed, other)
				t.Logf("without %s (%d rules removed): %s", sc.name, len(removed), time.Since(start).Round(time.Millisecond))
			})
		}
	})
	t.Logf("whole test: %s", time.Since(began).Round(time.Millisecond))
}

// newLab creates the provider namespace with the site addresses and
// writes the deployment config; it skips when namespaces are unavailable.
func newLab(t *testing.T) *nsLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and nftables")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian: iproute2, nftables)", tool)
		}
	}
	b := make([]byte, 3)
	rand.Read(b)
	l := &nsLab{id: fmt.Sprintf("%d-%s", os.Getpid(), hex.EncodeToString(b)), dir: t.TempDir()}
	l.prov = "z5prov-" + l.id
	if out, err := nsRun(t, "", "ip", "netns", "add", l.prov); err != nil {
		t.Skipf("ip netns add failed (no network namespaces here?): %v\n%s", err, out)
	}
	t.Cleanup(func() { delNetns(t, l.prov) })
	ipn(t, l.prov, "link", "set", "lo", "up")
	for _, s := range labSites {
		for _, n := range s.nodes {
			ipn(t, l.prov, "addr", "add", n.addr+"/32", "dev", "lo")
		}
	}
	l.writeConfig(t)
	l.nft = mustRun(t, "", "z5d", "firewall", "--config", l.cfg, "--format", "nft")
	if err := json.Unmarshal([]byte(mustRun(t, "", "z5d", "firewall", "--config", l.cfg, "--format", "json")), &l.rules); err != nil {
		t.Fatalf("firewall json: %v", err)
	}
	// Every rule of the JSON list is one accept line of the nft ruleset,
	// and only the lab's addresses appear in it.
	for _, r := range l.rules {
		want := fmt.Sprintf("ip daddr %s %s dport %s accept comment %q", r.Destination, r.Proto, r.Ports, r.comment())
		if strings.Count(l.nft, want) != 1 {
			t.Fatalf("nft ruleset lacks %q:\n%s", want, l.nft)
		}
		if !strings.HasPrefix(r.Destination, "198.18.") {
			t.Fatalf("rule %s leaves the lab's range", r.seed())
		}
	}
	if len(l.rules) != 6+6+2+2+2+2 {
		t.Fatalf("want 20 rules (seed shape), got %d:\n%s", len(l.rules), l.nft)
	}
	res := nsRunCtx(t, "", bin(t, "z5"), "check", "--help")
	l.check = res.err == nil
	return l
}

func (l *nsLab) writeConfig(t *testing.T) {
	var b strings.Builder
	fmt.Fprintf(&b, `# The seed's two sites with 198.18 addresses, production ports.
data_dir = %q

[provider]
name = "Z5 netns"

[names]
zdial = "zdial.z5.test"
lb_mcs = "lb.mcs.z5.test"
sip_domain = "mcs.z5.test"

[ports]
dns = 53
zdial_https = 443
mcs_https = 443
sip = 5060
rtp = %q
metrics = 9090

[dns]
zones = ["z5.test"]

[store]
driver = "sqlite"
path = "z5.db"
`, l.dir, nsRTP)
	for _, s := range labSites {
		fmt.Fprintf(&b, "\n[[site]]\nname = %q\n", s.name)
		for _, n := range s.nodes {
			fmt.Fprintf(&b, "\n[[site.node]]\nname = %q\nroles = [%q]\naddress = %q\n", n.name, n.role, n.addr)
			if n.host != "" {
				fmt.Fprintf(&b, "hosts = [%q]\n", n.host)
			}
		}
	}
	l.cfg = filepath.Join(l.dir, "z5.toml")
	if err := os.WriteFile(l.cfg, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	l.profile = filepath.Join(l.dir, "provider.json")
}

// startProvider runs every node in one z5d inside the provider namespace
// and waits until all of them listen.
func (l *nsLab) startProvider(t *testing.T) {
	t.Helper()
	l.z5d = startIn(t, l.prov, "z5d", "run", "--config", l.cfg, "--node", "all")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(l.z5d.Output(), "provider profile:") {
		select {
		case <-l.z5d.done:
			t.Fatalf("z5d exited early:\n%s", l.z5d.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("z5d did not start within 30s:\n%s", l.z5d.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(l.profile); err != nil {
		t.Fatalf("no provider profile: %v", err)
	}
}

// startProvisioned starts the provider and adds alice and bob, each
// with a number.
func (l *nsLab) startProvisioned(t *testing.T) {
	t.Helper()
	l.startProvider(t)
	l.admin(t, nsAlicePass+"\n", customerAdd("alice")...)
	l.admin(t, "", "number", "add", "alice", nsAliceNumber)
	l.admin(t, nsBobPass+"\n", customerAdd("bob")...)
	l.admin(t, "", "number", "add", "bob", nsBobNumber)
}

// admin runs `z5d admin` on the deployment's SQLite file from the host.
func (l *nsLab) admin(t *testing.T, stdin string, args ...string) {
	t.Helper()
	mustRun(t, stdin, "z5d", append([]string{"admin", "--config", l.cfg}, args...)...)
}

// nftWithout is the generated ruleset minus the accept lines of the rules
// remove selects, found by their comments.
func (l *nsLab) nftWithout(t *testing.T, remove func(nsRule) bool) string {
	t.Helper()
	drop := map[string]bool{}
	for _, r := range l.rules {
		if remove(r) {
			drop[fmt.Sprintf("comment %q", r.comment())] = true
		}
	}
	var out []string
	n := 0
	for _, line := range strings.Split(l.nft, "\n") {
		if i := strings.Index(line, "comment "); i >= 0 && drop[strings.TrimSpace(line[i:])] {
			n++
			continue
		}
		out = append(out, line)
	}
	if n != len(drop) || n == 0 {
		t.Fatalf("removed %d nft lines for %d rules", n, len(drop))
	}
	return strings.Join(out, "\n")
}

// customer creates customer namespace k: a veth to the provider, the
// default route through it and an inbound policy that drops every new
// connection. Customer 0 is 198.18.0.2; others are 198.19.k.2.
func (l *nsLab) customer(t *testing.T, k int) *nsCustomer {
	t.Helper()
	net := "198.18.0"
	if k > 0 {
		net = fmt.Sprintf("198.19.%d", k)
	}
	c := &nsCustomer{lab: l, ns: fmt.Sprintf("z5cust%d-%s", k, l.id), addr: net + ".2", dir: t.TempDir()}
	nsMust(t, "", "ip", "netns", "add", c.ns)
	t.Cleanup(func() { delNetns(t, c.ns) })
	pv, cv := fmt.Sprintf("vp%d", k), fmt.Sprintf("vc%d", k)
	// Created inside the provider namespace with its peer moved straight
	// into the customer's: the pair never exists on the host.
	ipn(t, l.prov, "link", "add", pv, "type", "veth", "peer", "name", cv, "netns", c.ns)
	ipn(t, l.prov, "addr", "add", net+".1/24", "dev", pv)
	ipn(t, l.prov, "link", "set", pv, "up")
	ipn(t, c.ns, "link", "set", "lo", "up")
	ipn(t, c.ns, "addr", "add", c.addr+"/24", "dev", cv)
	ipn(t, c.ns, "link", "set", cv, "up")
	ipn(t, c.ns, "route", "add", "default", "via", net+".1")
	c.nft(t, `table inet z5_test_inbound
delete table inet z5_test_inbound
table inet z5_test_inbound {
	chain input {
		type filter hook input priority 0; policy drop;
		ct state established,related accept
		iif lo accept
	}
}
`)
	return c
}

// load replaces the customer's egress ruleset.
func (c *nsCustomer) load(t *testing.T, ruleset string) {
	t.Helper()
	c.nft(t, ruleset)
}

func (c *nsCustomer) nft(t *testing.T, ruleset string) {
	t.Helper()
	res := nsRunCtx(t, ruleset, "ip", "netns", "exec", c.ns, "nft", "-f", "-")
	if res.err != nil {
		t.Fatalf("nft -f in %s: %v\n%s\nruleset:\n%s", c.ns, res.err, res.out, ruleset)
	}
}

// assertRuleset checks that the kernel holds exactly the accept rules
// named by comments (and the policy), so the test proves what it loaded.
func (c *nsCustomer) assertRuleset(t *testing.T, comments []string) {
	t.Helper()
	res := nsRunCtx(t, "", "ip", "netns", "exec", c.ns, "nft", "list", "table", "inet", "z5_egress")
	if res.err != nil {
		t.Fatalf("nft list: %v\n%s", res.err, res.out)
	}
	if !strings.Contains(res.out, "policy drop") {
		t.Fatalf("egress chain without policy drop:\n%s", res.out)
	}
	got := regexp.MustCompile(`comment "([^"]*)"`).FindAllStringSubmatch(res.out, -1)
	var have []string
	for _, m := range got {
		have = append(have, m[1])
	}
	if strings.Join(have, "\n") != strings.Join(comments, "\n") {
		t.Fatalf("kernel ruleset rules:\n%s\nwant:\n%s", strings.Join(have, "\n"), strings.Join(comments, "\n"))
	}
}

func (c *nsCustomer) home(user string) string { return filepath.Join(c.dir, user) }

// z5 runs the client inside the customer namespace with the client home
// named home.
func (c *nsCustomer) z5(t *testing.T, home, stdin string, args ...string) nsResult {
	t.Helper()
	argv := append([]string{"netns", "exec", c.ns, bin(t, "z5"), "--home", c.home(home)}, args...)
	return nsRunCtx(t, stdin, "ip", argv...)
}

func (c *nsCustomer) login(t *testing.T, user string) nsResult {
	t.Helper()
	return c.loginAs(t, user, user)
}

// loginAs logs user in with the client home named home.
func (c *nsCustomer) loginAs(t *testing.T, home, user string) nsResult {
	t.Helper()
	pw := map[string]string{"alice": nsAlicePass, "bob": nsBobPass}[user]
	return c.z5(t, home, pw+"\n", "login", "--profile", c.lab.profile, "--username", user, "--password-stdin")
}

func (c *nsCustomer) mustLogin(t *testing.T, user string) {
	t.Helper()
	c.mustLoginAs(t, user, user)
}

func (c *nsCustomer) mustLoginAs(t *testing.T, home, user string) {
	t.Helper()
	res := c.loginAs(t, home, user)
	if res.err != nil || !strings.Contains(res.out, "logged in as "+user) {
		t.Fatalf("z5 login %s in %s: %v (%s)\n%s", user, c.ns, res.err, res.took, res.out)
	}
	for s := 1; s <= 3; s++ {
		if !strings.Contains(res.out, fmt.Sprintf("[step %d]", s)) {
			t.Errorf("z5 login %s reports no step %d:\n%s", user, s, res.out)
		}
	}
}

// wantStepFailure asserts a command failed naming step n (and no other)
// and that its advice names the rule to open (hint).
func (c *nsCustomer) wantStepFailure(t *testing.T, n int, hint string, res nsResult) {
	t.Helper()
	if res.err == nil {
		t.Errorf("%s succeeded, want a failure naming step %d:\n%s", res.name, n, res.out)
		return
	}
	if res.code() == 2 || res.code() < 0 {
		t.Errorf("%s: exit status %d (%v), want a step failure:\n%s", res.name, res.code(), res.err, res.out)
	}
	m := regexp.MustCompile(`z5: step (\d) \(`).FindStringSubmatch(res.out)
	if m == nil || m[1] != strconv.Itoa(n) {
		t.Errorf("%s (after %s) fails without naming step %d:\n%s", res.name, res.took, n, res.out)
		return
	}
	advice := regexp.MustCompile(`what to do: (.*)`).FindStringSubmatch(res.out)
	if advice == nil || !strings.Contains(advice[1], hint) {
		t.Errorf("%s: the advice does not say %q:\n%s", res.name, hint, res.out)
	}
	msg := res.out[strings.Index(res.out, "z5: step"):]
	t.Logf("%s failed as expected after %s: %s", res.name, res.took.Round(time.Millisecond), nsFirstLine(msg))
	if advice != nil {
		t.Logf("  what to do: %s", advice[1])
	}
}

// nsListener is a running `z5 listen --auto-answer --max-calls 1`.
type nsListener struct {
	p    *proc
	user string
}

func (c *nsCustomer) listen(t *testing.T, user string) *nsListener {
	t.Helper()
	p := startIn(t, c.ns, "z5", "--home", c.home(user), "listen", "--auto-answer", "--max-calls", "1")
	deadline := time.Now().Add(nsTimeout)
	for !strings.Contains(p.Output(), "listening as") {
		select {
		case <-p.done:
			t.Fatalf("z5 listen exited: %v\n%s", p.cmd.ProcessState, p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("z5 listen did not register within %s:\n%s", nsTimeout, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &nsListener{p: p, user: user}
}

// wait waits for the listener to end after its one call.
func (ln *nsListener) wait(t *testing.T) string {
	t.Helper()
	select {
	case <-ln.p.done:
	case <-time.After(nsTimeout):
		t.Fatalf("z5 listen still running %s after the call:\n%s", nsTimeout, ln.p.Output())
	}
	if !ln.p.cmd.ProcessState.Success() {
		t.Errorf("z5 listen: %v\n%s", ln.p.cmd.ProcessState, ln.p.Output())
	}
	return ln.p.Output()
}

// callBothWays: bob listens, alice calls him for 3s; both must receive.
func (c *nsCustomer) callBothWays(t *testing.T) {
	t.Helper()
	ln := c.listen(t, "bob")
	res := c.z5(t, "alice", "", "call", nsBobNumber, "--duration", "3s", "--json")
	if res.err != nil {
		t.Fatalf("z5 call: %v (%s)\n%s", res.err, res.took, res.out)
	}
	var sum struct {
		EndReason string `json:"end_reason"`
		Relay     string `json:"relay"`
		Streams   []struct {
			Kind            string `json:"kind"`
			PacketsSent     uint64 `json:"packets_sent"`
			PacketsReceived uint64 `json:"packets_received"`
		} `json:"streams"`
	}
	if err := json.Unmarshal([]byte(nsJSONPart(res.out)), &sum); err != nil {
		t.Fatalf("z5 call --json: %v\n%s", err, res.out)
	}
	if len(sum.Streams) == 0 {
		t.Fatalf("call without streams:\n%s", res.out)
	}
	for _, s := range sum.Streams {
		if s.PacketsReceived == 0 || s.PacketsSent == 0 {
			t.Errorf("caller %s stream: sent %d received %d packets", s.Kind, s.PacketsSent, s.PacketsReceived)
		}
	}
	out := ln.wait(t)
	got := regexp.MustCompile(`(?m)^\s*(\w+)\s+sent (\d+) pkts/\d+ frames, received (\d+) pkts`).FindAllStringSubmatch(out, -1)
	if len(got) == 0 {
		t.Fatalf("nsListener printed no stream statistics:\n%s", out)
	}
	for _, m := range got {
		if m[2] == "0" || m[3] == "0" {
			t.Errorf("callee %s stream: sent %s received %s packets", m[1], m[2], m[3])
		}
	}
	t.Logf("call through relay %s (%s): caller %+v; callee %v", sum.Relay, res.took, sum.Streams, got)
}

// checkReport runs `z5 check` from the client home named home and
// asserts that it reports exactly the rules in blocked as blocked, each
// with the rule to add, and every other rule as other says (exit 3 when
// any is blocked, else 0): once as JSON for the exact verdicts, once as
// the text an admin reads.
func (c *nsCustomer) checkReport(t *testing.T, home string, blocked []nsRule, other func(nsRule) string) {
	t.Helper()
	t.Run("z5 check", func(t *testing.T) {
		if !c.lab.check {
			t.Skip(nsCheckMissing)
		}
		wantCode := 0
		if len(blocked) > 0 {
			wantCode = 3
		}
		want := map[string]string{} // seed line -> status
		for _, r := range c.lab.rules {
			if st := other(r); st != "" {
				want[r.seed()] = st
			}
		}
		for _, r := range blocked {
			want[r.seed()] = "blocked"
		}

		res := c.z5(t, home, "", "check", "--profile", c.lab.profile, "--json")
		if res.code() != wantCode {
			t.Errorf("z5 check --json: exit %d (%v), want %d:\n%s", res.code(), res.err, wantCode, res.out)
		}
		var rep struct {
			Results []struct {
				Line   string `json:"line"`
				Status string `json:"status"`
				Detail string `json:"detail"`
				Add    string `json:"add"`
			} `json:"results"`
			Blocked bool `json:"blocked"`
		}
		if err := json.Unmarshal([]byte(nsJSONPart(res.out)), &rep); err != nil {
			t.Fatalf("z5 check --json: %v\n%s", err, res.out)
		}
		if rep.Blocked != (len(blocked) > 0) {
			t.Errorf("z5 check --json: blocked=%v, want %v", rep.Blocked, len(blocked) > 0)
		}
		seen := map[string]bool{}
		for _, r := range rep.Results {
			st, ok := want[r.Line]
			switch {
			case !ok && strings.Contains(r.Line, "not resolved") && r.Status == "skipped":
				// A rule whose name did not resolve: nothing to name.
			case !ok:
				t.Errorf("z5 check reports %q %s (%s), which is not a rule of the list", r.Line, r.Status, r.Detail)
			case st == "ok" && (r.Status == "slow" || r.Status == "degraded"):
				// Open, but this shared test machine was slow: the
				// firewall is what is tested here, not its speed.
				t.Logf("z5 check: %q is %s (%s)", r.Line, r.Status, r.Detail)
			case r.Status != st && strings.Contains(r.Detail, "runs no media relay"):
				t.Errorf("z5 check: %q is %s, want %s: the MCS answers POST /api/v1/probe with 503 %q because "+
					"internal/provider builds mcsapi without Deps.Probe (its relay), so no z5 check can test RTP", r.Line, r.Status, st, r.Detail)
			case r.Status != st:
				t.Errorf("z5 check: %q is %s (%s), want %s", r.Line, r.Status, r.Detail, st)
			case st == "blocked" && r.Add != r.Line:
				t.Errorf("z5 check: blocked %q says to add %q", r.Line, r.Add)
			}
			seen[r.Line] = true
		}
		for line := range want {
			if !seen[line] {
				t.Errorf("z5 check does not report %q", line)
			}
		}

		// The text report: one line per rule, naming the blocked ones.
		text := c.z5(t, home, "", "check", "--profile", c.lab.profile)
		if text.code() != wantCode {
			t.Errorf("z5 check: exit %d (%v), want %d:\n%s", text.code(), text.err, wantCode, text.out)
		}
		rows := map[string]string{} // seed line -> status column
		for _, m := range regexp.MustCompile(`(?m)^(\S+)\s+(outbound \S+ (?:udp|tcp)  \S+)`).FindAllStringSubmatch(text.out, -1) {
			if _, dup := rows[m[2]]; !dup && m[1] != "add:" { // the table, not the "add:" list
				rows[m[2]] = m[1]
			}
		}
		for line, st := range want {
			got, ok := rows[line]
			switch {
			case !ok:
				t.Errorf("z5 check text: no line for %q", line)
			case got != st && !(st == "ok" && (got == "slow" || got == "degraded")):
				t.Errorf("z5 check text: %q is %s, want %s", line, got, st)
			}
		}
		for _, r := range blocked {
			if !strings.Contains(text.out, "add: "+r.seed()) {
				t.Errorf("z5 check text does not say to add %q", r.seed())
			}
		}
		if t.Failed() {
			t.Logf("z5 check output (%s):\n%s", text.took, text.out)
		} else {
			t.Logf("z5 check: exit %d after %s (json) / %s (text), %d blocked", text.code(),
				res.took.Round(time.Millisecond), text.took.Round(time.Millisecond), len(blocked))
		}
	})
}

// nsResult is a finished command.
type nsResult struct {
	name string
	out  string
	err  error
	took time.Duration
}

func (r nsResult) code() int {
	if r.err == nil {
		return 0
	}
	if ee, ok := r.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// nsRunCtx runs a command bounded by nsTimeout and returns its combined
// output.
func nsRunCtx(t *testing.T, stdin, name string, args ...string) nsResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), nsTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	r := nsResult{name: nsDescribe(name, args), out: string(out), err: err, took: time.Since(start)}
	if ctx.Err() != nil {
		r.err = fmt.Errorf("%w: killed after %s", err, nsTimeout)
	}
	return r
}

// nsDescribe names a command for messages: the z5 subcommand when it is one.
func nsDescribe(name string, args []string) string {
	for i, a := range args {
		if strings.HasSuffix(a, "/z5") || strings.HasSuffix(a, "/z5d") {
			rest := args[i+1:]
			if len(rest) >= 2 && rest[0] == "--home" {
				rest = rest[2:]
			}
			if len(rest) > 3 {
				rest = rest[:3]
			}
			return filepath.Base(a) + " " + strings.Join(rest, " ")
		}
	}
	return name + " " + strings.Join(args, " ")
}

func nsRun(t *testing.T, stdin, name string, args ...string) (string, error) {
	t.Helper()
	r := nsRunCtx(t, stdin, name, args...)
	return r.out, r.err
}

func nsMust(t *testing.T, stdin, name string, args ...string) string {
	t.Helper()
	r := nsRunCtx(t, stdin, name, args...)
	if r.err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, r.err, r.out)
	}
	return r.out
}

// ipn runs `ip -n NS ARGS...`.
func ipn(t *testing.T, ns string, args ...string) {
	t.Helper()
	nsMust(t, "", "ip", append([]string{"-n", ns}, args...)...)
}

func delNetns(t *testing.T, ns string) {
	if out, err := nsRun(t, "", "ip", "netns", "del", ns); err != nil {
		t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
	}
}

// startIn runs one of the built binaries inside namespace ns until the
// test ends. `ip netns exec` execs the binary, so the PID is the binary's.
func startIn(t *testing.T, ns, name string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	argv := append([]string{"netns", "exec", ns, bin(t, name)}, args...)
	p := &proc{cmd: exec.CommandContext(ctx, "ip", argv...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); cancel(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("%s %v (in %s) output:\n%s", name, args, ns, p.Output())
		}
	})
	return p
}

// nsJSONPart is the JSON document in a command's combined output.
func nsJSONPart(s string) string {
	if i := strings.Index(s, "{"); i >= 0 {
		if j := strings.LastIndex(s, "}"); j > i {
			return s[i : j+1]
		}
	}
	return s
}

func nsFirstLine(s string) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	if sc.Scan() {
		return sc.Text()
	}
	return s
}

// loopbackOnly is the namespace set-up of tests that need nothing but
// loopback.
const loopbackOnly = "ip link set lo up"
