package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/devstack"
)

// opviewAnswer is `z5d admin registrations|calls --live --json`.
type opviewAnswer struct {
	Registrations []struct {
		Number     string `json:"number"`
		DeviceID   int64  `json:"device_id"`
		DeviceKind string `json:"device_kind"`
		Node       string `json:"node"`
		Transport  string `json:"transport"`
		Source     string `json:"source"`
		Since      string `json:"since"`
		Expires    string `json:"expires"`
	} `json:"registrations"`
	Calls []struct {
		CallID     string `json:"call_id"`
		From       string `json:"from"`
		To         string `json:"to"`
		Node       string `json:"node"`
		StartedAt  string `json:"started_at"`
		AnsweredAt string `json:"answered_at"`
		Streams    []struct {
			Leg     string `json:"leg"`
			Media   string `json:"media"`
			Packets uint64 `json:"packets"`
		} `json:"streams"`
	} `json:"calls"`
	Unanswered []struct {
		Node   string `json:"node"`
		Reason string `json:"reason"`
	} `json:"unanswered"`
}

// TestOperatorLiveView: with alice calling bob through a running z5d,
// `z5d admin registrations` and `z5d admin calls --live` show both
// clients and the call, read from the node; a second MCS node of the
// deployment that is down is reported as not answering, and the commands
// still succeed.
func TestOperatorLiveView(t *testing.T) {
	s := startStack(t)
	s.provision(t)
	alice := s.login(t, "alice", alicePass, aliceWork)
	bob := s.login(t, "bob", bobPass, "")

	// The operator's config names a second MCS node, on a loopback
	// address where nothing runs.
	down := loopbackIP(t)
	opDir := t.TempDir()
	opCfg := filepath.Join(opDir, "z5.toml")
	cfg := devstack.Deployment("Z5 e2e", s.dir, true, "", devstack.Site{Name: "a", Nodes: []devstack.Node{
		{Name: "n1", Roles: []string{"dns", "zdial", "mcs"}, Address: s.ip, Hosts: []string{"mcs1.mcs.z5.test"}},
		{Name: "n2", Roles: []string{"mcs"}, Address: down, Hosts: []string{"mcs2.mcs.z5.test"}},
	}})
	if err := os.WriteFile(opCfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	view := func(args ...string) (opviewAnswer, string) {
		t.Helper()
		out := mustRun(t, "", "z5d", append([]string{"admin", "--config", opCfg}, args...)...)
		var a opviewAnswer
		if strings.Contains(strings.Join(args, " "), "--json") {
			if err := json.Unmarshal([]byte(out), &a); err != nil {
				t.Fatalf("z5d admin %v: not JSON: %v\n%s", args, err, out)
			}
		}
		return a, out
	}

	lis := startZ5(t, bob, "listen", "--auto-answer", "--max-calls", "1")
	waitFor(t, lis, "listening as sip:"+bobNumber+"@mcs.z5.test", 15*time.Second)
	call := startZ5(t, alice, "call", bobNumber, "--duration", "8s")
	waitFor(t, call, "connected: media through relay", 20*time.Second)

	// Registrations: both clients, on n1, with where they come from.
	regs, _ := view("registrations", "--json")
	byNumber := map[string]int{}
	for _, r := range regs.Registrations {
		byNumber[r.Number]++
		if r.Node != "n1" || r.Transport == "" || !strings.HasPrefix(r.Source, "127.") || r.Since == "" || r.Expires == "" || r.DeviceID == 0 {
			t.Errorf("registration %+v", r)
		}
	}
	if byNumber[aliceWork] == 0 || byNumber[bobNumber] == 0 {
		t.Errorf("registrations by number %v, want alice's %s and bob's %s", byNumber, aliceWork, bobNumber)
	}
	if len(regs.Unanswered) != 1 || regs.Unanswered[0].Node != "n2" {
		t.Errorf("unanswered %+v, want n2", regs.Unanswered)
	}
	// The table says the same in words, and names the node that is down.
	_, table := view("registrations")
	for _, w := range []string{"NUMBER", "TRANSPORT", "SOURCE", aliceWork, bobNumber, "since ", "note: node n2 (" + down + ":9090) did not answer"} {
		if !strings.Contains(table, w) {
			t.Errorf("registrations table lacks %q:\n%s", w, table)
		}
	}

	// The call, live, with media counted on both legs. The relay's
	// counters grow while the call lasts: poll until both legs carry
	// packets.
	var live opviewAnswer
	deadline := time.Now().Add(10 * time.Second)
	for {
		live, _ = view("calls", "--live", "--json")
		legs := map[string]uint64{}
		if len(live.Calls) == 1 {
			for _, st := range live.Calls[0].Streams {
				legs[st.Leg] += st.Packets
			}
		}
		if legs["caller"] > 0 && legs["callee"] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no live call with media on both legs: %+v", live)
		}
		time.Sleep(200 * time.Millisecond)
	}
	c := live.Calls[0]
	if c.From != aliceWork || c.To != bobNumber || c.Node != "n1" || c.StartedAt == "" || c.AnsweredAt == "" || c.CallID == "" {
		t.Errorf("live call %+v", c)
	}
	if len(live.Unanswered) != 1 || live.Unanswered[0].Node != "n2" {
		t.Errorf("unanswered %+v, want n2", live.Unanswered)
	}
	_, table = view("calls", "--live")
	for _, w := range []string{aliceWork + " -> " + bobNumber, "answered since", "PACKETS", "JITTER", "caller", "callee", "note: node n2"} {
		if !strings.Contains(table, w) {
			t.Errorf("calls table lacks %q:\n%s", w, table)
		}
	}
	t.Logf("live view:\n%s", table)

	waitExit(t, call, 20*time.Second)
	waitExit(t, lis, 15*time.Second)
	if after, _ := view("calls", "--live", "--json"); len(after.Calls) != 0 {
		t.Errorf("calls after hang-up: %+v", after.Calls)
	}
}
