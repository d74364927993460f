package provider

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/sipserver"
	"github.com/z5vrs/z5/internal/store"
)

// sipStore satisfies sipserver.Store; New never calls it.
type sipStore struct{ store.Store }

func TestSIPConfig(t *testing.T) {
	c := config.Dev(t.TempDir())
	node, ok := c.Node(config.DevNode)
	if !ok {
		t.Fatal("dev node missing")
	}
	got := SIPConfig(c, node)
	got.Version = "test" // the build's, checked below
	want := sipserver.Config{
		SIP: config.SIP{
			Realm: "mcs.z5.test", NonceTTL: 5 * time.Minute, MinExpires: 60, MaxExpires: 3600, DefaultExpires: 600,
			NoAnswerTimeout: 3 * time.Minute, MaxMessageSize: 64 << 10, MaxHeaders: 128, MaxAuthFailures: 5,
			DigestAlgorithms: []string{"SHA-256", "SHA-512-256", "MD5"},
			MaxConnsPerIP:    256, MaxConns: 50000, IdleTimeout: 2 * time.Minute, MessageTimeout: 10 * time.Second,
			RateLimit: 200, RateBurst: 1000, MaxInFlight: 1024, MaxInFlightPerSource: 256, MaxAuthFailuresPerAccount: 50,
			MaxRegistrationsPerNumber: 32, MaxCallsPerNumber: 8,
			BanAuthFailures: 10, BanRateLimited: 2000, BanWindow: time.Minute, BanTime: 5 * time.Minute, BanMaxTime: 24 * time.Hour, BanForget: 24 * time.Hour,
			MaxTrackedSources: 65536, UDPUnauthBytesPerSec: 128 << 10, MaxUDPBindingsPerAddr: 16,
			DeviceCacheTTL: 10 * time.Second,
		},
		Node: "dev", Domain: "mcs.z5.test",
		Hosts:     []string{"mcs1.mcs.z5.test", "mcs2.mcs.z5.test"},
		Advertise: netip.MustParseAddr("127.0.0.1"),
		Allow:     []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		Version:   "test",
		ACD:       config.ACD{RingTimeout: 15 * time.Second, MaxWait: 10 * time.Minute, WrapUp: 5 * time.Second, RequeueWindow: time.Minute},
		Trunk: config.Trunk{Address: "sip:127.0.0.1:5080;transport=tcp", Allow: []string{"127.0.0.1/32"},
			Routes: []config.TrunkRoute{{Match: "911", Target: "sip:911@127.0.0.1:5080;transport=tcp"}}},
		RequireLocation: true,
	}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	if v := SIPConfig(c, node).Version; v == "" {
		t.Fatal("no version")
	}
	srv, err := sipserver.New(SIPConfig(c, node), sipserver.Deps{Store: sipStore{}})
	if err != nil {
		t.Fatalf("dev config rejected: %v", err)
	}
	srv.Close()
}

func TestSIPConfigPeers(t *testing.T) {
	c, err := config.Load("../../deploy/two-sites.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		node string
		want map[string]netip.AddrPort
	}{
		{"a-mcs", map[string]netip.AddrPort{"b-mcs": netip.MustParseAddrPort("208.95.32.21:5060")}},
		{"b-mcs", map[string]netip.AddrPort{"a-mcs": netip.MustParseAddrPort("208.94.16.21:5060")}},
	} {
		node, ok := c.Node(tt.node)
		if !ok {
			t.Fatalf("no node %s", tt.node)
		}
		got := SIPConfig(c, node).Peers
		if d := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); d != "" {
			t.Errorf("%s: peers (-want +got):\n%s", tt.node, d)
		}
	}
}
