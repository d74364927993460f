package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestCheckOnOpenNetwork: with nothing blocked, `z5 check` after login
// reports every rule ok (RTP through the MCS's authenticated echo) and
// that no SIP ALG rewrote the probe.
func TestCheckOnOpenNetwork(t *testing.T) {
	s := startStack(t)
	s.provision(t)
	home := t.TempDir()
	mustRun(t, "bob-secret-22\n", "z5", "--home", home, "login", "--profile", s.profilePath(), "--username", "bob", "--password-stdin")
	out := mustRun(t, "", "z5", "--home", home, "check", "--json")
	var rep struct {
		Results []struct {
			Line   string `json:"line"`
			Status string `json:"status"`
			Detail string `json:"detail"`
		} `json:"results"`
		ALG struct {
			Status string `json:"status"`
			Detail string `json:"detail"`
		} `json:"alg"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("z5 check --json: %v\n%s", err, out)
	}
	if len(rep.Results) == 0 {
		t.Fatalf("no results:\n%s", out)
	}
	rtp := 0
	for _, r := range rep.Results {
		switch r.Status {
		case "ok", "slow", "degraded":
		default:
			t.Errorf("%s: %s (%s)", r.Line, r.Status, r.Detail)
		}
		if strings.Contains(r.Line, "udp") && strings.Contains(r.Line, "-") {
			rtp++
		}
	}
	if rtp == 0 {
		t.Errorf("no RTP rule checked:\n%s", out)
	}
	if rep.ALG.Status != "not-detected" {
		t.Errorf("ALG: %q (%s), want not-detected", rep.ALG.Status, rep.ALG.Detail)
	}
}
