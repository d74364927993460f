package sipserver

import (
	"strings"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/config"
)

// testConfig is a node of domain mcs.z5.test on the defaults of
// internal/config (the dev deployment's [sip] section, all defaults).
func testConfig() Config {
	return Config{
		SIP:    config.Dev("").SIP,
		Node:   "test",
		Domain: testDomain,
		Hosts:  []string{"mcs1.mcs.z5.test"},
		// Not the build's: tests compare the Server header.
		Version: "test",
	}
}

func TestConfigDefaultsAccepted(t *testing.T) {
	srv, err := New(testConfig(), Deps{Store: fuzzStore{}})
	if err != nil {
		t.Fatalf("the defaults of internal/config rejected: %v", err)
	}
	srv.Close()
}

// TestConfigValidation: New fills in nothing; a zero or out-of-range value
// is an error naming it.
func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no domain", func(c *Config) { c.Domain = "" }, "Domain is required"},
		{"no realm", func(c *Config) { c.Realm = "" }, "Realm is required"},
		{"no version", func(c *Config) { c.Version = "" }, "Version is required"},
		{"zero config", func(c *Config) { *c = Config{Domain: "d"} }, "NonceTTL 0s"},
		{"min above max", func(c *Config) { c.MinExpires, c.MaxExpires, c.DefaultExpires = 100, 10, 50 }, "MinExpires"},
		{"tiny messages", func(c *Config) { c.MaxMessageSize = 100 }, "MaxMessageSize 100"},
		{"no header cap", func(c *Config) { c.MaxHeaders = 0 }, "MaxHeaders 0"},
		{"no failure cap", func(c *Config) { c.MaxAuthFailures = 0 }, "MaxAuthFailures 0"},
		{"no digest", func(c *Config) { c.DigestAlgorithms = nil }, "DigestAlgorithms is empty"},
		{"unknown digest", func(c *Config) { c.DigestAlgorithms = []string{"SHA-1"} }, `"SHA-1"`},
		{"lower-case alg", func(c *Config) { c.DigestAlgorithms = []string{"md5"} }, `"md5"`},
		{"default too long", func(c *Config) { c.DefaultExpires = 99999 }, "DefaultExpires 99999"},
		{"rate unset", func(c *Config) { c.RateLimit = 0 }, "RateLimit 0"},
		{"burst", func(c *Config) { c.RateBurst = -1 }, "RateBurst -1"},
		{"in flight", func(c *Config) { c.MaxInFlight = -1 }, "MaxInFlight -1"},
		{"per source above all", func(c *Config) { c.MaxInFlight, c.MaxInFlightPerSource = 4, 8 }, "MaxInFlightPerSource 8"},
		{"account failures unset", func(c *Config) { c.MaxAuthFailuresPerAccount = 0 }, "MaxAuthFailuresPerAccount 0"},
		{"calls", func(c *Config) { c.MaxCallsPerNumber = -2 }, "MaxCallsPerNumber -2"},
		{"ban threshold unset", func(c *Config) { c.BanAuthFailures = 0 }, "BanAuthFailures 0"},
		{"ban times", func(c *Config) { c.BanTime, c.BanMaxTime = time.Hour, time.Minute }, "BanMaxTime"},
		{"ban window", func(c *Config) { c.BanWindow = -time.Second }, "BanWindow"},
		{"sources", func(c *Config) { c.MaxTrackedSources = 0 }, "MaxTrackedSources 0"},
		{"udp budget", func(c *Config) { c.UDPUnauthBytesPerSec = 0 }, "UDPUnauthBytesPerSec 0"},
	} {
		cfg := testConfig()
		tc.mod(&cfg)
		_, err := New(cfg, Deps{Store: fuzzStore{}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", tc.name, err, tc.want)
		}
	}
	if _, err := New(testConfig(), Deps{}); err == nil {
		t.Error("no store: accepted")
	}
}
