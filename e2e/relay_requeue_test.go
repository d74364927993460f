package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/client"
)

// TestRelayRequeue: the interpreter's `z5 interpret` is killed in the
// middle of alice's relay call. The MCS ends alice's leg with the notice
// and a re-queue token; her `z5 call` says so, calls the same number
// again at once with the token and reaches a second station, which calls
// the hearing party again. The records show both calls: the first ended
// interpreter-lost with the first CA ID, the second names the first
// (requeue_of) and has the second CA ID. Like TestRelayCalls it runs in
// a loopback-only network namespace when it can.
func TestRelayRequeue(t *testing.T) {
	if relayInNetns(t, "^TestRelayRequeue$") {
		return
	}
	s := startRelayStack(t, `wrap_up = "1s"`)
	peer := startTrunkPeer(t, s.trunk, nil)
	terp1 := s.interpreter(t, "terp1", "1001")
	terp2 := s.interpreter(t, "terp2", "1002")
	st1 := startStation(t, terp1)

	alice := s.login(t, "alice", alicePass, aliceWork)
	rec := t.TempDir()
	call := startZ5(t, alice, "--json", "call", hearingNumber, "--duration", "4s", "--record", rec)
	first := waitEvent(t, st1, "the hearing leg up at station 1001", 20*time.Second, func(ev client.StationEvent) bool {
		return ev.Event == client.EvConnected && ev.Leg == client.LegHearing
	})
	st2 := startStation(t, terp2)
	time.Sleep(time.Second) // some media in the first call
	st1.kill9()             // the interpreter vanishes mid-call

	second := waitEvent(t, st2, "the re-queued call at station 1002", 20*time.Second, func(ev client.StationEvent) bool {
		return ev.Event == client.EvOffered
	})
	waitExit(t, call, 40*time.Second)
	out := call.Output()
	var sums []struct {
		callSummary
		Requeued string `json:"requeued"`
	}
	dec := json.NewDecoder(strings.NewReader(out[max(strings.Index(out, "{"), 0):]))
	for dec.More() {
		var s struct {
			callSummary
			Requeued string `json:"requeued"`
		}
		if err := dec.Decode(&s); err != nil {
			break
		}
		sums = append(sums, s)
	}
	if len(sums) != 2 {
		t.Fatalf("z5 call printed %d call summaries, want 2 (lost, then reconnected):\n%s", len(sums), out)
	}
	t.Logf("alice: first call %s ended %q (%q) after %.1f s; second call %s set up in %.0f ms, ended %q",
		sums[0].CallID, sums[0].EndReason, sums[0].Requeued, sums[0].DurationS, sums[1].CallID, sums[1].SetupMs, sums[1].EndReason)
	if !strings.Contains(sums[0].Requeued, "reconnecting you to the next interpreter") || sums[1].Requeued != "" ||
		sums[1].EndReason != "duration reached" || sums[0].CallID == sums[1].CallID {
		t.Errorf("alice's calls: %+v", sums)
	}
	if second.RelayCall != sums[1].CallID || second.Direction != "outbound" || second.Dialed != hearingNumber {
		t.Errorf("station 1002's offer: %+v, want alice's second call %s, outbound to %s", second, sums[1].CallID, hearingNumber)
	}
	var rx uint64
	for _, st := range sums[1].Streams {
		if st.Kind == "video" {
			rx = st.PacketsReceived
		}
	}
	if rx < 50 {
		t.Errorf("alice received %d video packets from the second interpreter", rx)
	}
	for _, f := range []string{"call.mkv", "call-again1.mkv"} {
		if _, err := os.Stat(filepath.Join(rec, f)); err != nil {
			t.Errorf("recording: %v", err)
		}
	}
	if n := len(peer.Calls()); n != 2 {
		t.Errorf("the hearing party got %d calls, want 2 (one per interpreter)", n)
	}

	type record struct {
		CallID     string     `json:"call_id"`
		CAID       string     `json:"ca_id"`
		EndReason  string     `json:"end_reason"`
		Direction  string     `json:"direction"`
		RequeueOf  string     `json:"requeue_of"`
		SessionEnd *time.Time `json:"session_end"`
	}
	byID := map[string]record{}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var recs []record
		if err := json.Unmarshal([]byte(s.admin(t, "", "--json", "calls", "--number", aliceWork)), &recs); err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			byID[r.CallID] = r
		}
		if byID[sums[1].CallID].SessionEnd != nil || time.Now().After(deadline) {
			break
		}
	}
	r1, r2 := byID[first.RelayCall], byID[sums[1].CallID]
	t.Logf("records: %+v; %+v", r1, r2)
	if first.RelayCall != sums[0].CallID || r1.CAID != "1001" || r1.EndReason != "interpreter-lost" || r1.RequeueOf != "" {
		t.Errorf("the lost call's record: %+v (want CA 1001, interpreter-lost)", r1)
	}
	if r2.CAID != "1002" || r2.RequeueOf != r1.CallID || r2.Direction != "outbound" || r2.SessionEnd == nil {
		t.Errorf("the re-queued call's record: %+v (want CA 1002, requeue_of %s)", r2, r1.CallID)
	}
}
