package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/store"
)

// RunRecords runs the conformance cases of the MCS's batched call record
// writes and the node-lost sweep, with open as for Run.
func RunRecords(t *testing.T, open func(t *testing.T) store.Store) {
	runCases(t, open, []conformanceCase{
		{"WriteCalls", testWriteCalls},
		{"CloseLostCalls", testCloseLostCalls},
		{"CloseLostCallsConcurrent", testCloseLostCallsConcurrent},
	})
}

func testWriteCalls(t *testing.T, s store.Store) {
	ctx := t.Context()
	skipped, err := s.WriteCalls(ctx, nil)
	noErr(t, "WriteCalls(none)", err)
	diff(t, "skipped of none", []int(nil), skipped)

	p2p := store.Call{CallID: "p2p", From: "2025550101", To: "2025550102", Node: "a", StartedAt: t0}
	answered := p2p
	answered.AnsweredAt, answered.Status = t0.Add(time.Second), 200
	ended := answered
	ended.EndedAt, ended.EndReason = t0.Add(time.Minute), "bye"
	ended.MediaStats = []store.StreamStats{{Leg: "caller", Media: "video", Packets: 10, Bytes: 12000}}
	relay := store.Call{CallID: "relay", From: "2025550103", To: "3125550100", Node: "a", StartedAt: t0,
		Direction: store.CallOutbound, Dialed: "3125550100", UserNumber: "2025550103", QueuedAt: t0}

	// A whole call's writes in one batch, in order, and a second call's
	// insert and change: each applies over the one before.
	skipped, err = s.WriteCalls(ctx, []store.CallWrite{
		{Kind: store.CallInsert, Call: p2p},
		{Kind: store.CallInsert, Call: relay},
		{Kind: store.CallReplace, Call: answered},
		{Kind: store.CallChange, Call: store.Call{CallID: "relay"}, Change: func(c *store.Call) { c.CAID = "1001" }},
		{Kind: store.CallReplace, Call: ended},
	})
	noErr(t, "WriteCalls", err)
	diff(t, "skipped", []int(nil), skipped)
	diff(t, "p2p record", ended, must[store.Call](t, "Call(p2p)")(s.Call(ctx, "p2p")))
	wantRelay := relay
	wantRelay.CAID = "1001"
	diff(t, "relay record", wantRelay, must[store.Call](t, "Call(relay)")(s.Call(ctx, "relay")))

	// Written again (a batch whose commit was not seen): the inserts
	// change nothing and fail nothing; writes of a missing record are
	// skipped, not errors, and the rest of the batch still applies.
	dup := p2p
	dup.From = "9995550000"
	changed := ended
	changed.Status = 486
	skipped, err = s.WriteCalls(ctx, []store.CallWrite{
		{Kind: store.CallInsert, Call: dup},
		{Kind: store.CallReplace, Call: store.Call{CallID: "missing", StartedAt: t0}},
		{Kind: store.CallChange, Call: store.Call{CallID: "missing"}, Change: func(c *store.Call) { c.CAID = "x" }},
		{Kind: store.CallReplace, Call: changed},
	})
	noErr(t, "WriteCalls(again)", err)
	diff(t, "skipped again", []int{0, 1, 2}, skipped)
	diff(t, "p2p record after", changed, must[store.Call](t, "Call(p2p)")(s.Call(ctx, "p2p")))
	_, err = s.Call(ctx, "missing")
	wantErr(t, "Call(missing)", err, store.ErrNotFound)

	_, err = s.WriteCalls(ctx, []store.CallWrite{{Kind: store.CallInsert, Call: store.Call{From: "x"}}})
	wantSomeErr(t, "WriteCalls(empty call id)", err)
}

func testCloseLostCalls(t *testing.T, s store.Store) {
	ctx := t.Context()
	lastSeen := t0.Add(time.Minute) // node a's last heartbeat
	recs := []store.Call{
		// Answered before a's last heartbeat: ends then.
		{CallID: "answered", From: "2025550101", To: "2025550102", Node: "a", StartedAt: t0, AnsweredAt: t0.Add(time.Second), Status: 200},
		// Ringing when a died: ends then, unanswered, status kept.
		{CallID: "ringing", From: "2025550101", To: "2025550103", Node: "a", StartedAt: t0.Add(2 * time.Second), Status: 180},
		// Answered after a's last heartbeat: never ends before its answer.
		{CallID: "late", From: "2025550104", To: "2025550105", Node: "a", StartedAt: lastSeen, AnsweredAt: lastSeen.Add(time.Second), Status: 200},
		// A relay call mid-conversation: session and conversation end too.
		{CallID: "relay", From: "2025550106", To: "3125550100", Node: "a", StartedAt: t0, AnsweredAt: t0.Add(3 * time.Second), Status: 200,
			Direction: store.CallOutbound, CAID: "1001", QueuedAt: t0, SessionStart: t0.Add(3 * time.Second), ConversationStart: t0.Add(9 * time.Second)},
		// Ended already, another node's, started after the sweep's bound:
		// left alone.
		{CallID: "done", From: "2025550101", To: "2025550102", Node: "a", StartedAt: t0, AnsweredAt: t0.Add(time.Second),
			EndedAt: t0.Add(5 * time.Second), EndReason: "bye", Status: 200},
		{CallID: "other", From: "2025550101", To: "2025550102", Node: "b", StartedAt: t0},
		{CallID: "new", From: "2025550101", To: "2025550102", Node: "a", StartedAt: t0.Add(time.Hour)},
	}
	for _, c := range recs {
		noErr(t, "CreateCall "+c.CallID, s.CreateCall(ctx, c))
	}
	closed := must[[]string](t, "CloseLostCalls")(s.CloseLostCalls(ctx, "a", t0.Add(30*time.Minute), lastSeen))
	slices.Sort(closed)
	diff(t, "closed", []string{"answered", "late", "relay", "ringing"}, closed)

	want := map[string]store.Call{}
	for _, c := range recs {
		want[c.CallID] = c
	}
	end := func(id string, at time.Time) {
		c := want[id]
		c.EndedAt, c.EndReason = at, store.EndNodeLost
		want[id] = c
	}
	end("answered", lastSeen)
	end("ringing", lastSeen)
	end("late", lastSeen.Add(time.Second))
	end("relay", lastSeen)
	r := want["relay"]
	r.SessionEnd, r.ConversationEnd = lastSeen, lastSeen
	want["relay"] = r
	for _, c := range recs {
		diff(t, "record "+c.CallID, want[c.CallID], must[store.Call](t, "Call")(s.Call(ctx, c.CallID)))
	}
	// A second sweep (another node's, or the same one's next) finds
	// nothing left to close.
	again := must[[]string](t, "CloseLostCalls(again)")(s.CloseLostCalls(ctx, "a", t0.Add(30*time.Minute), lastSeen.Add(time.Hour)))
	diff(t, "closed again", []string(nil), again)
	diff(t, "record answered after", want["answered"], must[store.Call](t, "Call")(s.Call(ctx, "answered")))
}

// testCloseLostCallsConcurrent: two nodes sweeping a dead node's records at
// once close each record once.
func testCloseLostCallsConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	var ids []string
	for i := range 20 {
		id := "c" + string(rune('a'+i))
		ids = append(ids, id)
		noErr(t, "CreateCall", s.CreateCall(ctx, store.Call{CallID: id, From: "2025550101", To: "2025550102", Node: "dead",
			StartedAt: t0, AnsweredAt: t0.Add(time.Second), Status: 200}))
	}
	var mu sync.Mutex
	var all []string
	errs := parallel(4, func(int) error {
		got, err := s.CloseLostCalls(ctx, "dead", t0.Add(time.Hour), t0.Add(time.Minute))
		mu.Lock()
		all = append(all, got...)
		mu.Unlock()
		return err
	})
	for _, err := range errs {
		noErr(t, "CloseLostCalls", err)
	}
	slices.Sort(all)
	diff(t, "closed once each", ids, all)
}
