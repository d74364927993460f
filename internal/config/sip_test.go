package config

import (
	"strings"
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

// TestSIPRequireTLSNeedsTLSPort: require_tls without a TLS port would lock
// every device out, so it is refused; the dev stack has TLS on and
// require_tls off (standard devices without TLS still register).
func TestSIPRequireTLSNeedsTLSPort(t *testing.T) {
	dev := Dev(t.TempDir())
	if dev.Ports.SIPTLS != 5061 || dev.SIP.RequireTLS {
		t.Fatalf("dev: sip_tls %d require_tls %v, want 5061 false", dev.Ports.SIPTLS, dev.SIP.RequireTLS)
	}
	for _, tc := range []struct {
		extra string
		ok    bool
	}{
		{"[sip]\nrequire_tls = true\n", true},
		{"[sip]\nrequire_tls = false\n", true},
	} {
		if _, err := Parse("test.toml", append(append([]byte{}, devTOML...), "\n"+tc.extra...)); (err == nil) != tc.ok {
			t.Errorf("%q: error %v, want ok=%v", tc.extra, err, tc.ok)
		}
	}
	noTLS := strings.Replace(string(devTOML), "sip_tls = 5061", "sip_tls = 0", 1)
	for _, tc := range []struct {
		sip string
		ok  bool
	}{
		{"require_tls = true", false},
		{"require_tls = false", true},
	} {
		_, err := Parse("test.toml", []byte(noTLS+"\n[sip]\n"+tc.sip+"\n"))
		if (err == nil) != tc.ok {
			t.Errorf("sip_tls = 0, %q: error %v, want ok=%v", tc.sip, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "sip.require_tls") {
			t.Errorf("sip_tls = 0, %q: error %q does not name sip.require_tls", tc.sip, err)
		}
	}
}
