package config

import (
	"testing"
	"time"
)

// TestSIPBanMaxTimeFollowsBanTime: a ban_time above a day without a
// ban_max_time is valid, the maximum being the ban time itself (the
// default was once a fixed day here and the ban time's maximum elsewhere).
func TestSIPBanMaxTimeFollowsBanTime(t *testing.T) {
	for _, tc := range []struct {
		sip  string
		want time.Duration
	}{
		{"", 24 * time.Hour},
		{`ban_time = "48h"`, 48 * time.Hour},
		{"ban_time = \"1h\"\nban_max_time = \"2h\"", 2 * time.Hour},
	} {
		c, err := Parse("test.toml", append(append([]byte{}, devTOML...), "\n[sip]\n"+tc.sip+"\n"...))
		if err != nil {
			t.Fatalf("%q: %v", tc.sip, err)
		}
		if c.SIP.BanMaxTime != tc.want {
			t.Errorf("%q: ban_max_time %s, want %s", tc.sip, c.SIP.BanMaxTime, tc.want)
		}
	}
}

func TestSIPNewKeysValidated(t *testing.T) {
	for _, sip := range []string{
		"max_headers = 4",
		"max_auth_failures = -1",
		`digest_algorithms = ["SHA-1"]`,
	} {
		if _, err := Parse("test.toml", append(append([]byte{}, devTOML...), "\n[sip]\n"+sip+"\n"...)); err == nil {
			t.Errorf("%q accepted", sip)
		}
	}
}
