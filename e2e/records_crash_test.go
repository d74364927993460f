package e2e

import (
	"encoding/json"
	"testing"
	"time"
)

// crashRecord is the part of `z5d admin --json calls` the crash test
// reads.
type crashRecord struct {
	CallID     string    `json:"call_id"`
	From       string    `json:"from"`
	To         string    `json:"to"`
	Node       string    `json:"node"`
	StartedAt  time.Time `json:"started_at"`
	AnsweredAt time.Time `json:"answered_at"`
	EndedAt    time.Time `json:"ended_at"`
	EndReason  string    `json:"end_reason"`
	Status     int       `json:"status"`
}

// callRecords lists the stored records of calls from or to number (the
// latest 1,000).
func (s *stack) callRecords(t *testing.T, number string) []crashRecord {
	t.Helper()
	out := s.admin(t, "", "--json", "calls", "--number", number, "--limit", "1000")
	var recs []crashRecord
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatalf("z5d admin --json calls: %v\n%s", err, out)
	}
	return recs
}

// waitCallRecord polls the call log of number until ok holds for its only
// record, and returns that record.
func (s *stack) waitCallRecord(t *testing.T, number, what string, ok func(crashRecord) bool) crashRecord {
	t.Helper()
	var recs []crashRecord
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		recs = s.callRecords(t, number)
		if len(recs) == 1 && ok(recs[0]) {
			return recs[0]
		}
	}
	t.Fatalf("no single record of a call to %s %s; the call log holds:\n%+v", number, what, recs)
	return crashRecord{}
}

// TestRecordsCrash: an answered call's node is killed (SIGKILL) mid-call
// and started again on the same data directory (SQLite). The call's record
// is there once, answered, and closed by the restarted node with end
// reason node-lost at the dead run's last heartbeat: the conversation
// minutes up to the crash are billed, none after it.
func TestRecordsCrash(t *testing.T) {
	s := &stack{ip: loopbackIP(t), dir: t.TempDir()}
	// Beats every half second, so the last one before the kill is close
	// to it.
	s.cfg = stackConfig(t, s.dir, s.ip, "\n[health]\nheartbeat = \"500ms\"\n")
	s.start(t)
	s.provision(t)
	alice := s.login(t, "alice", alicePass, aliceWork)
	bob := s.login(t, "bob", bobPass, "")
	lis := startZ5(t, bob, "listen", "--auto-answer")
	waitFor(t, lis, "listening as", 15*time.Second)
	start(t, "z5", "--home", alice, "call", bobNumber, "--duration", "2m")
	waitFor(t, lis, "answering call from "+aliceWork, 15*time.Second)

	// The answer is committed before the caller hears of it.
	live := s.waitCallRecord(t, bobNumber, "answered", func(r crashRecord) bool { return !r.AnsweredAt.IsZero() })
	if !live.EndedAt.IsZero() {
		t.Fatalf("the live call's record has ended: %+v", live)
	}
	// Let the call run across a few heartbeats, then crash the node.
	time.Sleep(3 * time.Second)
	s.proc.kill9()
	killedAt := time.Now()
	if recs := s.callRecords(t, bobNumber); len(recs) != 1 || !recs[0].EndedAt.IsZero() {
		t.Fatalf("after the kill, want the one record still open; the call log holds:\n%+v", recs)
	}

	s.start(t)
	rec := s.waitCallRecord(t, bobNumber, "closed by the restarted node", func(r crashRecord) bool { return !r.EndedAt.IsZero() })
	billed := rec.EndedAt.Sub(rec.AnsweredAt)
	t.Logf("record after the restart: %s -> %s, answered %s, ended %s (%s), billed %s; killed %s after the answer",
		rec.From, rec.To, rec.AnsweredAt.Format(time.RFC3339Nano), rec.EndedAt.Format(time.RFC3339Nano), rec.EndReason,
		billed, killedAt.Sub(rec.AnsweredAt).Round(time.Millisecond))
	for _, c := range []struct {
		what string
		ok   bool
	}{
		{"the same call", rec.CallID == live.CallID && rec.From == aliceWork && rec.To == bobNumber && rec.Node == "n1"},
		{"answered as before the crash", rec.AnsweredAt.Equal(live.AnsweredAt) && rec.Status == 200},
		{"end reason node-lost", rec.EndReason == "node-lost"},
		{"a conversation of more than zero", billed > 0},
		// The end is the last heartbeat before the kill: never after it.
		{"no end after the kill", !rec.EndedAt.After(killedAt)},
	} {
		if !c.ok {
			t.Errorf("%s: %+v", c.what, rec)
		}
	}
	if n := s.metric(t, "z5_call_records_node_lost_total"); n != 1 {
		t.Errorf("z5_call_records_node_lost_total = %v, want 1", n)
	}
}
