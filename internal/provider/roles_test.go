package provider

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/mcsapi"
	"github.com/z5vrs/z5/internal/zdial"
)

func TestZDialConfig(t *testing.T) {
	c := config.Dev(t.TempDir())
	got := ZDialConfig(c)
	want := zdial.Config{
		SIPDomain: "mcs.z5.test", LBMCS: "lb.mcs.z5.test",
		MCSHosts: []string{"mcs1.mcs.z5.test", "mcs2.mcs.z5.test"},
		SIPPort:  5060, Realm: "mcs.z5.test",
		SessionTTL: c.ZDial.SessionTTL, MaxFailures: 5, AccountMaxFailures: 20, SourceMaxFailures: 30,
		Lockout: 15 * time.Minute, PerIPRate: 300, PerIPBurst: 250, MCSTokenTTL: c.ZDial.SessionTTL,
		RateLimit: 20, RateBurst: 500,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ZDialConfig(dev) (-want +got):\n%s", d)
	}
}

func TestMCSAPIConfig(t *testing.T) {
	c := config.Dev(t.TempDir())
	got := MCSAPIConfig(c)
	want := mcsapi.Config{
		LicenseTTL: c.MCS.LicenseTTL, Features: c.MCS.Features, Issuer: "mcs.z5.test",
		MaxContacts: c.MCS.MaxContacts, MaxBody: int64(c.MCS.MaxBody), Provider: c.Provider.Name,
		RateLimit: float64(c.MCS.RateLimit), RateBurst: c.MCS.RateBurst, MaxTrackedSources: 65536,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("MCSAPIConfig(dev) (-want +got):\n%s", d)
	}
}

// TestRelayConfig: every [relay] value reaches the relay, so none needs a
// default of its own there.
func TestRelayConfig(t *testing.T) {
	c := config.Dev(t.TempDir())
	node, _ := c.Node(config.DevNode)
	got := RelayConfig(c, node)
	if got.MediaTimeout != c.Relay.MediaTimeout || got.ProbeRate != c.Relay.ProbeRate || got.MaxStreams != c.Relay.MaxStreams ||
		got.MaxPortsPerCustomer != c.Relay.MaxPortsPerCustomer || got.MaxPortsPerSource != c.Relay.MaxPortsPerSource ||
		got.Ports != c.Ports.RTP || got.Bind != node.BindAddr() || got.Advertise != node.Addr() {
		t.Errorf("RelayConfig(dev) = %+v, want the [relay] section of %+v", got, c.Relay)
	}
}
