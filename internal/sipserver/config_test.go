package sipserver

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/z5vrs/z5/internal/config"
)

func TestConfigFrom(t *testing.T) {
	c := config.Dev(t.TempDir())
	node, ok := c.Node(config.DevNode)
	if !ok {
		t.Fatal("dev node missing")
	}
	got := ConfigFrom(c, node)
	want := Config{
		Node: "dev", Realm: "mcs.z5.test", Domain: "mcs.z5.test",
		Hosts:     []string{"mcs1.mcs.z5.test", "mcs2.mcs.z5.test"},
		Advertise: netip.MustParseAddr("127.0.0.1"),
		NonceTTL:  5 * time.Minute, MinExpires: 60, MaxExpires: 3600, DefaultExpires: 600,
		NoAnswerTimeout: 3 * time.Minute, MaxMessageSize: 64 << 10, MaxConnsPerIP: 256, MaxConns: 50000, IdleTimeout: 2 * time.Minute,
		MessageTimeout: 10 * time.Second, UDPUnauthBytesPerSec: 128 << 10, MaxUDPBindingsPerAddr: 16,
		Limits: Limits{RateLimit: 200, RateBurst: 1000, MaxInFlight: 1024, MaxInFlightPerSource: 256, MaxAccountFailures: 50, MaxRegistrationsPerNumber: 32, MaxCallsPerNumber: 8,
			BanAuthFailures: 10, BanRateLimited: 2000, BanWindow: time.Minute, BanTime: 5 * time.Minute, BanMaxTime: 24 * time.Hour,
			Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, MaxSources: 65536},
	}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	srv, err := New(got, Deps{Store: fuzzStore{}})
	if err != nil {
		t.Fatalf("dev config rejected: %v", err)
	}
	srv.Close()
}

func TestConfigValidation(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no domain":        {},
		"min above max":    {Domain: "d", MinExpires: 100, MaxExpires: 10, DefaultExpires: 50},
		"tiny messages":    {Domain: "d", MaxMessageSize: 100},
		"unknown digest":   {Domain: "d", DigestAlgorithms: []string{"SHA-1"}},
		"lower-case alg":   {Domain: "d", DigestAlgorithms: []string{"md5"}},
		"default too long": {Domain: "d", DefaultExpires: 99999},
	} {
		if _, err := New(cfg, Deps{Store: fuzzStore{}}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(Config{Domain: "d"}, Deps{}); err == nil {
		t.Error("no store: accepted")
	}
}
