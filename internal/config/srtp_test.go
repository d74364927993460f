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

// TestRelayKernelForwarding: auto unless set to off; nothing else is
// accepted.
func TestRelayKernelForwarding(t *testing.T) {
	for _, tc := range []struct {
		extra, want, err string
	}{
		{"", "auto", ""},
		{"kernel_forwarding = \"off\"\n", "off", ""},
		{"kernel_forwarding = \"auto\"\n", "auto", ""},
		{"kernel_forwarding = \"on\"\n", "", `relay.kernel_forwarding: "on": want auto or off`},
	} {
		if c := parseWant(t, tc.extra, withRelay(tc.extra), tc.err); c != nil && c.Relay.KernelForwarding != tc.want {
			t.Errorf("%q: kernel_forwarding %q, want %q", tc.extra, c.Relay.KernelForwarding, tc.want)
		}
	}
}
