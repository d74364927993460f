package config

import (
	"strings"
	"testing"
)

// TestRelayRequireSRTP: [relay] require_srtp is off unless set, and the
// dev stack leaves it off (standard devices without SRTP still call).
func TestRelayRequireSRTP(t *testing.T) {
	if Dev(t.TempDir()).Relay.RequireSRTP {
		t.Error("dev stack requires SRTP")
	}
	for _, tc := range []struct {
		extra string
		want  bool
	}{
		{"", false},
		{"require_srtp = true\n", true},
		{"require_srtp = false\n", false},
	} {
		c, err := Parse("test.toml", withRelay(tc.extra))
		if err != nil {
			t.Fatalf("%q: %v", tc.extra, err)
		}
		if c.Relay.RequireSRTP != tc.want {
			t.Errorf("%q: require_srtp %t, want %t", tc.extra, c.Relay.RequireSRTP, tc.want)
		}
	}
	if _, err := Parse("test.toml", withRelay("require_srtp = \"yes\"\n")); err == nil {
		t.Error(`require_srtp = "yes" accepted`)
	}
}

// withRelay is the dev configuration with lines added to its [relay].
func withRelay(lines string) []byte {
	return []byte(strings.Replace(string(devTOML), "[relay]\n", "[relay]\n"+lines, 1))
}
