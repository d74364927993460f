package firewall

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/egress"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

const (
	seedPath     = "../../../shared/seed/z5-network-requirements.txt"
	twoSitesPath = "../../deploy/two-sites.toml"
	dualPath     = "testdata/dual-stack.toml"
)

// testConfigs are the deployments every renderer is checked against.
func testConfigs(t *testing.T) map[string]*config.Config {
	t.Helper()
	out := map[string]*config.Config{"dev": config.Dev(t.TempDir())}
	for name, path := range map[string]string{"two-sites": twoSitesPath, "dual-stack": dualPath} {
		c, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = c
	}
	return out
}

func render(t *testing.T, c *config.Config, format string) string {
	t.Helper()
	var b bytes.Buffer
	if err := Render(&b, c, Rules(c), format); err != nil {
		t.Fatalf("render %s: %v", format, err)
	}
	return b.String()
}

// normalise collapses runs of blanks inside lines and runs of empty lines,
// and drops leading and trailing empty lines: the seed has stray trailing
// spaces that carry no meaning.
func normalise(s string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		line = strings.Join(strings.Fields(line), " ")
		if line == "" && (len(out) == 0 || out[len(out)-1] == "") {
			continue
		}
		out = append(out, line)
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// seedFormalList returns the seed document from its "# Naming" line on.
func seedFormalList(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(seedPath)
	if err != nil {
		t.Fatalf("read the seed: %v", err)
	}
	s := string(b)
	i := strings.Index(s, "\n# Naming")
	if i < 0 {
		t.Fatalf("%s: no \"# Naming\" line", seedPath)
	}
	return s[i+1:]
}

func TestSeedFormatMatchesSeed(t *testing.T) {
	c, err := config.Load(twoSitesPath)
	if err != nil {
		t.Fatal(err)
	}
	want := normalise(seedFormalList(t))
	got := normalise(render(t, c, "seed"))
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("seed format differs from the seed's formal list (-seed +rendered):\n%s", d)
	}
}

// TestRulesMatchSeed reads the seed's list as rules and compares them with
// Rules field by field, so the model (not only its rendering) is the seed's.
func TestRulesMatchSeed(t *testing.T) {
	c, err := config.Load(twoSitesPath)
	if err != nil {
		t.Fatal(err)
	}
	type tuple struct{ Group, Ports, Proto, Dest string }
	var want []tuple
	group := ""
	sc := bufio.NewScanner(strings.NewReader(seedFormalList(t)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 0:
		case f[0] == "#":
			group = strings.Join(f[1:], " ")
			if strings.HasPrefix(group, "RTP ") {
				group = egress.GroupRTP
			}
		case len(f) == 4 && f[0] == "outbound":
			want = append(want, tuple{group, f[1], f[2], f[3]})
		default:
			t.Fatalf("seed line %q: not a rule", sc.Text())
		}
	}
	var got []tuple
	for _, r := range Rules(c) {
		got = append(got, tuple{r.Group, r.Ports.String(), r.Proto, r.Dest.String()})
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Rules(two-sites) differ from the seed (-seed +Rules):\n%s", d)
	}
}

func TestRules(t *testing.T) {
	c, err := config.Load(dualPath)
	if err != nil {
		t.Fatal(err)
	}
	// step group proto ports destination node, in the order Rules lists them.
	want := `
1 Naming udp 53 2001:db8:1::53 east-ns1
1 Naming udp 53 192.0.2.10 east-all
1 Naming udp 53 2001:db8:2::53 west-ns1
1 Naming udp 53 192.0.2.20 west-mapped
1 Naming tcp 53 2001:db8:1::53 east-ns1
1 Naming tcp 53 192.0.2.10 east-all
1 Naming tcp 53 2001:db8:2::53 west-ns1
1 Naming tcp 53 192.0.2.20 west-mapped
2 ZDial tcp 443 192.0.2.10 east-all
2 ZDial tcp 443 2001:db8:2::21 west "mcs"; drop
3 MCS license and address-book tcp 443 192.0.2.10 east-all
3 MCS license and address-book tcp 443 2001:db8:2::21 west "mcs"; drop
4 SIP tcp 5060 192.0.2.10 east-all
4 SIP tcp 5060 2001:db8:2::21 west "mcs"; drop
4 SIP tcp 5061 192.0.2.10 east-all
4 SIP tcp 5061 2001:db8:2::21 west "mcs"; drop
5 RTP udp 40000-40999 192.0.2.10 east-all
5 RTP udp 40000-40999 2001:db8:2::21 west "mcs"; drop
`
	var got strings.Builder
	got.WriteString("\n")
	for _, r := range Rules(c) {
		fmt.Fprintf(&got, "%d %s %s %s %s %s\n", r.Step, r.Group, r.Proto, r.Ports, r.Dest, r.Node)
	}
	if d := cmp.Diff(want, got.String()); d != "" {
		t.Errorf("Rules (-want +got):\n%s", d)
	}
	if Rules(nil) != nil {
		t.Error("Rules(nil) is not nil")
	}
}

func TestGolden(t *testing.T) {
	ext := map[string]string{
		"seed": "seed.txt", "nft": "nft", "iptables": "iptables", "ip6tables": "ip6tables",
		"pf": "pf.conf", "csv": "csv", "json": "json", "md": "md",
	}
	for name, c := range testConfigs(t) {
		for _, format := range Formats {
			t.Run(name+"/"+format, func(t *testing.T) {
				e, ok := ext[format]
				if !ok {
					t.Fatalf("format %q has no golden file extension", format)
				}
				path := filepath.Join("testdata", name+"."+e)
				got := render(t, c, format)
				if *update {
					if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test -update to create it)", err)
				}
				if d := cmp.Diff(string(want), got); d != "" {
					t.Errorf("%s differs (-golden +rendered; go test -update rewrites it):\n%s", path, d)
				}
			})
		}
	}
}

func TestRenderErrors(t *testing.T) {
	c := config.Dev(t.TempDir())
	var b bytes.Buffer
	err := Render(&b, c, Rules(c), "ipfw")
	if !errors.Is(err, ErrUnknownFormat) {
		t.Fatalf("unknown format: err = %v, want ErrUnknownFormat", err)
	}
	for _, f := range Formats {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not list format %q", err, f)
		}
	}
	if b.Len() != 0 {
		t.Errorf("unknown format wrote %q", b.String())
	}
	if err := Render(&b, nil, nil, "seed"); err == nil {
		t.Error("nil config: no error")
	}
	if err := Render(failWriter{}, c, Rules(c), "csv"); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("failing writer: err = %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestNoRules renders a rule-less list: the renderers must still write a
// well-formed file (an empty CSV, [] in JSON, a drop-all policy).
func TestNoRules(t *testing.T) {
	c := config.Dev(t.TempDir())
	for _, f := range Formats {
		var b bytes.Buffer
		if err := Render(&b, c, nil, f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	var b bytes.Buffer
	if err := Render(&b, c, nil, "json"); err != nil || strings.TrimSpace(b.String()) != "[]" {
		t.Errorf("json of no rules = %q, %v", b.String(), err)
	}
}

// netnsTool returns the path of tool, or skips when it is missing or we
// cannot make a private network namespace to run it in: the checks must
// never touch the host's own firewall.
func netnsTool(t *testing.T, tool, pkg string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("%s checks need root for a private network namespace", tool)
	}
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Skipf("%s not installed (Debian package %s)", tool, pkg)
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not installed (Debian package util-linux)")
	}
	if out, err := exec.Command("unshare", "--net", "true").CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace: %v: %s", err, out)
	}
	return p
}

// inNetns runs a shell script in a fresh network namespace; $1 is file.
func inNetns(t *testing.T, script, file string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "unshare", "--net", "sh", "-ec", script, "sh", file).CombinedOutput()
	return string(out), err
}

func writeTemp(t *testing.T, name, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestNftLoads checks every nft ruleset with `nft -c`, then loads it twice
// (it must be reloadable) in a private namespace and counts the rules the
// kernel holds.
func TestNftLoads(t *testing.T) {
	nft := netnsTool(t, "nft", "nftables")
	for name, c := range testConfigs(t) {
		t.Run(name, func(t *testing.T) {
			file := writeTemp(t, name+".nft", render(t, c, "nft"))
			out, err := inNetns(t, nft+` -c -f "$1"; `+nft+` -f "$1"; `+nft+` -f "$1"; `+nft+` list table inet z5_egress`, file)
			if err != nil {
				t.Fatalf("nft rejected %s: %v\n%s", name, err, out)
			}
			if got, want := strings.Count(out, `comment "z5 step`), len(Rules(c)); got != want {
				t.Errorf("kernel holds %d Z5 rules, want %d:\n%s", got, want, out)
			}
			if !strings.Contains(out, "policy drop") {
				t.Errorf("loaded chain has no drop policy:\n%s", out)
			}
		})
	}
}

// TestIptablesLoads checks the iptables and ip6tables files with
// `--test`, then loads each in a private namespace and counts its rules.
func TestIptablesLoads(t *testing.T) {
	for _, tc := range []struct{ format, tool string }{
		{"iptables", "iptables-restore"},
		{"ip6tables", "ip6tables-restore"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			restore := netnsTool(t, tc.tool, "iptables")
			save := strings.TrimSuffix(restore, "-restore") + "-save"
			for name, c := range testConfigs(t) {
				t.Run(name, func(t *testing.T) {
					file := writeTemp(t, name+"."+tc.format, render(t, c, tc.format))
					out, err := inNetns(t, restore+` --test "$1"; `+restore+` "$1"; `+save+` -t filter`, file)
					if err != nil {
						t.Fatalf("%s rejected %s: %v\n%s", tc.tool, name, err, out)
					}
					v4, v6 := splitFamilies(Rules(c))
					want := len(v4)
					if tc.format == "ip6tables" {
						want = len(v6)
					}
					if got := strings.Count(out, `--comment "z5 step`); got != want {
						t.Errorf("kernel holds %d Z5 rules, want %d:\n%s", got, want, out)
					}
					if !strings.Contains(out, ":OUTPUT DROP") {
						t.Errorf("OUTPUT policy is not DROP:\n%s", out)
					}
				})
			}
		})
	}
}

// TestDevRender renders the built-in dev deployment, whose ports all differ
// from the production defaults: the rules must follow the config, not the
// seed's numbers.
func TestDevRender(t *testing.T) {
	c := config.Dev(t.TempDir())
	for _, tc := range []struct{ format, want string }{
		{"seed", "outbound 5353 udp  127.0.0.1\n"},
		{"seed", "outbound 8443 tcp  127.0.0.1\n"},
		{"seed", "outbound 9443 tcp  127.0.0.1\n"},
		{"seed", "outbound 20000-39999 udp  127.0.0.1\n"},
		{"nft", "ip daddr 127.0.0.1 udp dport 20000-39999 accept"},
		{"iptables", "-d 127.0.0.1/32 -p udp -m udp --dport 20000:39999"},
		{"pf", "pass out quick inet proto tcp to 127.0.0.1 port 9443"},
		{"csv", "5,RTP,udp,20000-39999,127.0.0.1,RTP: call media and RTCP through the MCS relay,dev,dev\n"},
		{"json", `"port_min": 20000`},
		{"md", `"zdial.z5.test", "lb.mcs.z5.test", "mcs1.mcs.z5.test", "mcs2.mcs.z5.test" and "mcs.z5.test"`},
		{"md", "TCP destination port 8443 [HTTPS] to 127.0.0.1."},
	} {
		got := render(t, c, tc.format)
		if tc.format == "md" {
			got = strings.Join(strings.Fields(got), " ") // paragraphs are wrapped
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s of the dev config lacks %q:\n%s", tc.format, tc.want, got)
		}
	}
}

// FuzzRender renders arbitrary valid configs in every format: node and
// site names are free text that must never break out of a comment or a
// line, and no config may make a renderer fail or panic.
func FuzzRender(f *testing.F) {
	for _, p := range []string{twoSitesPath, dualPath} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := config.Parse("fuzz.toml", src)
		if err != nil {
			return
		}
		rules := Rules(c)
		for _, format := range Formats {
			var b bytes.Buffer
			if err := Render(&b, c, rules, format); err != nil {
				t.Fatalf("%s: %v", format, err)
			}
			if format == "csv" || format == "json" {
				continue // quoted by their encoders
			}
			for _, line := range strings.Split(b.String(), "\n") {
				if i := strings.Index(line, `comment "`); i >= 0 && strings.Count(line[i:], `"`) != 2 {
					t.Fatalf("%s: comment breaks out of its quotes: %q", format, line)
				}
			}
			if n := strings.Count(b.String(), "outbound "); format == "seed" && n != len(rules) {
				t.Fatalf("seed: %d rule lines for %d rules", n, len(rules))
			}
		}
	})
}

// TestTLSDeploymentAddsRules: the seed's topology with SIP over TLS on
// (ports.sip_tls) lists exactly the seed's rules plus "outbound 5061 tcp"
// to each MCS, after the SIP rules; without it, exactly the seed's list
// (TestRulesMatchSeed, TestSeedFormatMatchesSeed).
func TestTLSDeploymentAddsRules(t *testing.T) {
	src, err := os.ReadFile(twoSitesPath)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := config.Parse("two-sites.toml", src)
	if err != nil {
		t.Fatal(err)
	}
	withTLS := strings.Replace(string(src), "\nsip = 5060\n", "\nsip = 5060\nsip_tls = 5061\n", 1)
	if withTLS == string(src) {
		t.Fatal("two-sites.toml has no `sip = 5060` line to add sip_tls after")
	}
	tlsCfg, err := config.Parse("two-sites-tls.toml", []byte(withTLS))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	lastSIP := 0
	for _, r := range Rules(plain) {
		want = append(want, seedLine(r))
		if r.Group == egress.GroupSIP {
			lastSIP = len(want)
		}
	}
	var added []string
	for _, n := range tlsCfg.NodesWithRole(config.RoleMCS) {
		added = append(added, "outbound 5061 tcp  "+n.Addr().String())
	}
	if len(added) != 2 {
		t.Fatalf("%d MCS nodes in the seed topology, want 2", len(added))
	}
	want = append(want[:lastSIP], append(added, want[lastSIP:]...)...)
	var got []string
	for _, r := range Rules(tlsCfg) {
		got = append(got, seedLine(r))
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("rules with TLS (-want +got):\n%s", d)
	}
	seed := render(t, tlsCfg, "seed")
	for _, line := range added {
		if !strings.Contains(seed, line+"\n") {
			t.Errorf("seed rendering lacks %q:\n%s", line, seed)
		}
	}
}

func seedLine(r Rule) string { return fmt.Sprintf("outbound %s %s  %s", r.Ports, r.Proto, r.Dest) }
