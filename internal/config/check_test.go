package config

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestRangeMessages: a value out of range is reported with its key, the
// value the file gave and the range, durations written as in the file.
func TestRangeMessages(t *testing.T) {
	for _, tc := range []struct{ extra, want string }{
		{"[zdial]\nmax_failures = -1\n", "zdial.max_failures: -1: must be at least 1"},
		{"[zdial]\nsession_ttl = \"30s\"\n", "zdial.session_ttl: 30s: must be at least 1m"},
		{"[mcs]\nrate_limit = -2\n", "mcs.rate_limit: -2: must be positive, or -1 for no limit"},
		{"[sip]\nmax_headers = 8\n", "sip.max_headers: 8: must be at least 16"},
		{"[webphone]\nmax_tabs_per_number = 65\n", "webphone.max_tabs_per_number: 65: must be 1 to 64"},
		{"[acd]\nring_timeout = \"10m\"\n", "acd.ring_timeout: 10m: must be 1s to 5m"},
		{"[webphone]\nidle_timeout = \"2h\"\n", "webphone.idle_timeout: 2h: must be 30s to 1h"},
		{"[sip]\nban_allow = [\"10.0.0.0/33\"]\n", "sip.ban_allow: \"10.0.0.0/33\" is neither an address nor a CIDR network"},
	} {
		src := append(devWithoutTrunk(t), "\n"+tc.extra...)
		_, err := Parse("test.toml", src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.extra, err, tc.want)
		}
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Minute: "1m", time.Hour: "1h", 90 * time.Second: "1m30s", 10 * time.Millisecond: "10ms",
		24 * time.Hour: "24h", 5*time.Minute + time.Second: "5m1s", 0: "0s",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestDNSRateLimitOff: -1 turns the DNS response rate limit off; left
// out, it is 50 a second.
func TestDNSRateLimitOff(t *testing.T) {
	withRate := func(v string) []byte {
		return bytes.Replace(devWithoutTrunk(t), []byte("[dns]\n"), []byte("[dns]\nrate_limit = "+v+"\n"), 1)
	}
	if c, err := Parse("test.toml", withRate("-1")); err != nil || c.DNS.RateLimit != -1 {
		t.Fatalf("rate_limit = -1: %v, %+v", err, c)
	}
	if _, err := Parse("test.toml", withRate("-2")); err == nil || !strings.Contains(err.Error(), "dns.rate_limit: -2: must be positive, or -1 for no limit") {
		t.Fatalf("rate_limit = -2: %v", err)
	}
	if c, err := Parse("test.toml", devWithoutTrunk(t)); err != nil || c.DNS.RateLimit != 50 {
		t.Fatalf("rate_limit left out: %v, %+v; want 50", err, c)
	}
}
