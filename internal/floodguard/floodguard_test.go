package floodguard

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/testenv"
)

// exported counts the series of the named families in reg.
func exported(t *testing.T, reg *prometheus.Registry, names ...string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		for _, name := range names {
			if mf.GetName() == name {
				n += len(mf.GetMetric())
			}
		}
	}
	return n
}

var (
	src1 = netip.MustParseAddr("192.0.2.1")
	src2 = netip.MustParseAddr("192.0.2.2")
)

// testBanTime is the first ban of the guards these tests build.
const testBanTime = time.Minute

// complete fills the bounds cfg leaves zero with the ones these tests
// assume: bans of 1m doubling up to 1h, offences forgotten after a clean
// day, 65536 sources.
func complete(cfg Config) Config {
	if cfg.BanTime == 0 {
		cfg.BanTime = testBanTime
	}
	if cfg.MaxBanTime == 0 {
		cfg.MaxBanTime = time.Hour
	}
	if cfg.Forget == 0 {
		cfg.Forget = 24 * time.Hour
	}
	if cfg.MaxSources == 0 {
		cfg.MaxSources = 65536
	}
	return cfg
}

func newGuard(t *testing.T, cfg Config, deps Deps) *Guard {
	t.Helper()
	if cfg.Thresholds == nil {
		cfg.Thresholds = map[string]Threshold{"auth_failure": {Count: 5, Window: time.Minute}}
	}
	g, err := New(complete(cfg), deps)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// record counts n events and returns whether the last one banned.
func record(g *Guard, ip netip.Addr, kind string, n int) bool {
	banned := false
	for range n {
		banned = g.Record(ip, kind)
	}
	return banned
}

func TestBanAtThresholdAndExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		reg := prometheus.NewRegistry()
		var bans []Ban
		g := newGuard(t, Config{}, Deps{Service: "sip", Registerer: reg,
			Log:   slog.New(slog.NewTextHandler(&logs, nil)),
			OnBan: func(b Ban) { bans = append(bans, b) }})

		if record(g, src1, "auth_failure", 4) || g.Banned(src1) {
			t.Fatal("banned below the threshold")
		}
		if !g.Record(src1, "auth_failure") || !g.Banned(src1) {
			t.Fatal("not banned at the threshold (5 in 1m)")
		}
		if g.Banned(src2) {
			t.Fatal("another source is banned too")
		}
		if left, _ := g.BannedFor(src1); left != testBanTime {
			t.Errorf("ban: %s, want %s", left, testBanTime)
		}
		if got := testenv.Count(t, g.m.bans.WithLabelValues("auth_failure")); got != 1 {
			t.Errorf("z5_floodguard_bans_total = %v, want 1", got)
		}
		if n := exported(t, reg, "z5_floodguard_bans_total", "z5_floodguard_banned_sources"); n != 2 {
			t.Errorf("exported series: %d, want 2", n)
		}
		if len(bans) != 1 || bans[0].Source != netip.MustParsePrefix("192.0.2.1/32") || bans[0].Reason != "auth_failure" || bans[0].Offence != 1 {
			t.Errorf("OnBan: %+v", bans)
		}
		if l := logs.String(); !strings.Contains(l, `msg="source banned"`) || !strings.Contains(l, "source=192.0.2.1/32") || !strings.Contains(l, "reason=auth_failure") {
			t.Errorf("log line: %s", l)
		}
		// Events during a ban are not counted toward the next one.
		record(g, src1, "auth_failure", 100)
		time.Sleep(testBanTime)
		if g.Banned(src1) {
			t.Fatal("still banned after the ban time")
		}
		if record(g, src1, "auth_failure", 4) {
			t.Fatal("events of the ban carried over")
		}
	})
}

func TestBackoffForRepeatOffenders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGuard(t, Config{BanTime: time.Minute, MaxBanTime: 5 * time.Minute, Forget: time.Hour}, Deps{})
		for _, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute} {
			if !record(g, src1, "auth_failure", 5) {
				t.Fatal("not banned")
			}
			left, _ := g.BannedFor(src1)
			if left != want {
				t.Fatalf("ban %s, want %s", left, want)
			}
			time.Sleep(left)
		}
		// Clean for longer than Forget: back to the first ban's length.
		time.Sleep(time.Hour + time.Second)
		record(g, src1, "auth_failure", 5)
		if left, _ := g.BannedFor(src1); left != time.Minute {
			t.Fatalf("after a clean hour: ban %s, want 1m", left)
		}
	})
}

func TestSlidingWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGuard(t, Config{}, Deps{})
		// Four failures, a quiet two windows, four more: never five in a
		// minute.
		record(g, src1, "auth_failure", 4)
		time.Sleep(2 * time.Minute)
		if record(g, src1, "auth_failure", 4) {
			t.Fatal("events two windows apart were added up")
		}
		// Spread evenly at 1 per 20s (3 a minute): never banned.
		for range 20 {
			time.Sleep(20 * time.Second)
			if g.Record(src2, "auth_failure") {
				t.Fatal("3 a minute banned at a threshold of 5 a minute")
			}
		}
		// 1 per 10s (6 a minute): banned within the second minute.
		banned := false
		for i := 0; i < 12 && !banned; i++ {
			time.Sleep(10 * time.Second)
			banned = g.Record(src2, "auth_failure")
		}
		if !banned {
			t.Fatal("6 a minute not banned at a threshold of 5 a minute")
		}
	})
}

func TestKindsAreCountedApart(t *testing.T) {
	g := newGuard(t, Config{Thresholds: map[string]Threshold{
		"auth_failure": {Count: 3, Window: time.Minute},
		"rate_limited": {Count: 10, Window: time.Second * 10},
		"observed":     {Count: 0},
	}}, Deps{})
	record(g, src1, "auth_failure", 2)
	record(g, src1, "rate_limited", 9)
	record(g, src1, "observed", 1000)
	record(g, src1, "unknown-kind", 1000)
	if g.Banned(src1) {
		t.Fatal("banned though no kind reached its threshold")
	}
	if !g.Record(src1, "rate_limited") {
		t.Fatal("rate_limited threshold not applied")
	}
}

func TestIPv6Slash64(t *testing.T) {
	g := newGuard(t, Config{}, Deps{})
	a := netip.MustParseAddr("2001:db8:1:2::1")
	b := netip.MustParseAddr("2001:db8:1:2:ffff::9") // same /64
	c := netip.MustParseAddr("2001:db8:1:3::1")      // next /64
	record(g, a, "auth_failure", 3)
	record(g, b, "auth_failure", 2)
	if !g.Banned(a) || !g.Banned(b) {
		t.Fatal("two addresses of one /64 are not one source")
	}
	if g.Banned(c) {
		t.Fatal("the neighbouring /64 is banned")
	}
	if got := Key(netip.MustParseAddr("::ffff:192.0.2.7")); got != netip.MustParsePrefix("192.0.2.7/32") {
		t.Fatalf("Key of an IPv4-mapped address: %s", got)
	}
}

func TestAllowlist(t *testing.T) {
	node := netip.MustParseAddr("198.18.1.10")
	tests := []struct {
		name     string
		cfg      Config
		ip       netip.Addr
		wantBan  bool
		wantAllo bool
	}{
		{"peer node", Config{Allow: []netip.Prefix{netip.PrefixFrom(node, 32)}}, node, false, true},
		{"peer network mapped", Config{Allow: []netip.Prefix{netip.MustParsePrefix("::ffff:198.18.1.0/120")}}, node, false, true},
		{"loopback allowed", Config{AllowLoopback: true}, netip.MustParseAddr("127.3.4.5"), false, true},
		{"loopback ipv6 allowed", Config{AllowLoopback: true}, netip.IPv6Loopback(), false, true},
		{"loopback by default", Config{}, netip.MustParseAddr("127.3.4.5"), true, false},
		{"stranger", Config{Allow: []netip.Prefix{netip.PrefixFrom(node, 32)}}, src1, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuard(t, tt.cfg, Deps{})
			if got := g.Allowed(tt.ip); got != tt.wantAllo {
				t.Errorf("Allowed(%s) = %v", tt.ip, got)
			}
			record(g, tt.ip, "auth_failure", 50)
			if got := g.Banned(tt.ip); got != tt.wantBan {
				t.Errorf("Banned(%s) = %v, want %v", tt.ip, got, tt.wantBan)
			}
		})
	}
}

func TestBoundedSources(t *testing.T) {
	g := newGuard(t, Config{MaxSources: 100}, Deps{})
	for i := range 10000 {
		g.Record(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), "auth_failure")
	}
	if n := g.Tracked(); n != 100 {
		t.Fatalf("tracked %d sources, want the cap of 100", n)
	}
	if got := testenv.Count(t, g.m.evicted); got != 9900 {
		t.Errorf("evictions %v, want 9900", got)
	}
	// The most recent source is still counted.
	last := netip.AddrFrom4([4]byte{10, 0, 39, 15}) // i = 9999
	if !record(g, last, "auth_failure", 4) {
		t.Error("the most recent source lost its count")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{BanTime: -time.Second},
		{BanTime: time.Hour, MaxBanTime: time.Minute},
		{MaxSources: -1},
		{Forget: -time.Second},
		{Thresholds: map[string]Threshold{"x": {Count: 3}}},
		{Thresholds: map[string]Threshold{"": {Count: 3, Window: time.Second}}},
		{Allow: []netip.Prefix{{}}},
	} {
		if _, err := New(complete(cfg), Deps{}); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	// No bound has a default here: internal/config fills them.
	if _, err := New(Config{}, Deps{}); err == nil || !strings.Contains(err.Error(), "BanTime") ||
		!strings.Contains(err.Error(), "Forget") || !strings.Contains(err.Error(), "MaxSources") {
		t.Errorf("New(zero config) = %v, want BanTime, Forget and MaxSources refused", err)
	}
	// Two guards on one registry: distinct services.
	reg := prometheus.NewRegistry()
	for _, svc := range []string{"sip", "mcs-api"} {
		if _, err := New(complete(Config{}), Deps{Service: svc, Registerer: reg}); err != nil {
			t.Fatalf("guard %s: %v", svc, err)
		}
	}
}

func TestUnbanAndBans(t *testing.T) {
	g := newGuard(t, Config{}, Deps{})
	record(g, src1, "auth_failure", 5)
	if bans := g.Bans(); len(bans) != 1 || bans[0].Source.Addr() != src1 {
		t.Fatalf("Bans: %+v", bans)
	}
	g.Unban(src1)
	if g.Banned(src1) || len(g.Bans()) != 0 {
		t.Fatal("still banned after Unban")
	}
}

// TestConcurrent is for -race: many sources, readers and writers at once.
func TestConcurrent(t *testing.T) {
	g := newGuard(t, Config{MaxSources: 64}, Deps{})
	l := NewLimiter(100, 10, 64)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				ip := netip.AddrFrom4([4]byte{10, 0, byte(w), byte(i % 97)})
				g.Record(ip, "auth_failure")
				g.Banned(ip)
				l.Allow(ip)
				if i%500 == 0 {
					g.Bans()
				}
			}
		})
	}
	wg.Wait()
	if g.Tracked() > 64 || l.Tracked() > 64 {
		t.Fatalf("tracked %d / %d beyond the cap of 64", g.Tracked(), l.Tracked())
	}
}

func ExampleGuard() {
	g, _ := New(Config{
		Thresholds: map[string]Threshold{"auth_failure": {Count: 3, Window: time.Minute}},
		BanTime:    time.Minute, MaxBanTime: time.Hour, Forget: 24 * time.Hour, MaxSources: 1024,
	}, Deps{Service: "sip"})
	ip := netip.MustParseAddr("203.0.113.9")
	for i := range 3 {
		fmt.Println(i+1, g.Record(ip, "auth_failure"))
	}
	fmt.Println("banned:", g.Banned(ip))
	// Output:
	// 1 false
	// 2 false
	// 3 true
	// banned: true
}
