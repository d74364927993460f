package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/acd"
	"github.com/z5vrs/z5/internal/store"
)

// RunACD runs the conformance cases of the interpreter center's queue and
// agents (acd.Store), with open as for Run.
func RunACD(t *testing.T, open func(t *testing.T) store.Store) {
	runCases(t, open, []conformanceCase{
		{"ACDAgents", testACDAgents},
		{"ACDQueueOrder", testACDQueueOrder},
		{"ACDClaim", testACDClaim},
		{"ACDEmergencyToAll", testACDEmergencyToAll},
		{"ACDClaimConcurrent", testACDClaimConcurrent},
		{"ACDWrapUp", testACDWrapUp},
		{"ChangeCallConcurrent", testChangeCallConcurrent},
	})
}

func testACDAgents(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.Agent(ctx, "1001")
	wantErr(t, "agent never seen", err, store.ErrNotFound)
	a := must[acd.Agent](t, "set ready")(s.SetAgentState(ctx, "1001", acd.Ready, "", t0))
	diff(t, "agent", acd.Agent{CAID: "1001", State: acd.Ready, Since: t0}, a)
	diff(t, "agent read back", a, must[acd.Agent](t, "agent")(s.Agent(ctx, "1001")))
	must[acd.Agent](t, "set not ready")(s.SetAgentState(ctx, "1001", acd.NotReady, "", t0.Add(time.Second)))
	must[acd.Agent](t, "second agent")(s.SetAgentState(ctx, "0999", acd.Ready, "", t0))
	as := must[[]acd.Agent](t, "agents")(s.Agents(ctx))
	diff(t, "agents", []acd.Agent{
		{CAID: "0999", State: acd.Ready, Since: t0},
		{CAID: "1001", State: acd.NotReady, Since: t0.Add(time.Second)},
	}, as)
	_, err = s.SetAgentState(ctx, "1001", "asleep", "", t0)
	wantSomeErr(t, "unknown state", err)
}

func testACDQueueOrder(t *testing.T, s store.Store) {
	ctx := t.Context()
	for i, e := range []acd.Entry{
		{CallID: "c2", Node: "a", QueuedAt: t0.Add(2 * time.Second), Direction: store.CallOutbound, Dialed: "2125550100", User: "5551230001"},
		{CallID: "c1", Node: "b", QueuedAt: t0.Add(time.Second), Direction: store.CallInbound, Caller: "2125550199"},
		{CallID: "911", Node: "a", QueuedAt: t0.Add(3 * time.Second), Priority: acd.PriorityEmergency, Direction: store.CallEmergency,
			Location: "1 Main St, Austin, TX 78701", UserIP: "198.18.0.5", Display: "Deaf User"},
	} {
		noErr(t, fmt.Sprintf("enqueue %d", i), s.Enqueue(ctx, e))
	}
	wantErr(t, "enqueue twice", s.Enqueue(ctx, acd.Entry{CallID: "c1", Node: "a", QueuedAt: t0}), store.ErrExists)
	q := must[[]acd.Entry](t, "queue")(s.Queue(ctx))
	var ids []string
	for _, e := range q {
		ids = append(ids, e.CallID)
		if e.State != acd.Waiting {
			t.Errorf("%s: state %q, want waiting", e.CallID, e.State)
		}
	}
	diff(t, "queue order", []string{"911", "c1", "c2"}, ids)
	diff(t, "911 entry", acd.Entry{CallID: "911", Node: "a", QueuedAt: t0.Add(3 * time.Second), Priority: acd.PriorityEmergency,
		State: acd.Waiting, Direction: store.CallEmergency, Location: "1 Main St, Austin, TX 78701", UserIP: "198.18.0.5",
		Display: "Deaf User"}, q[0])
	noErr(t, "dequeue", s.Dequeue(ctx, "c1"))
	noErr(t, "dequeue again", s.Dequeue(ctx, "c1"))
	if q := must[[]acd.Entry](t, "queue")(s.Queue(ctx)); len(q) != 2 {
		t.Errorf("queue after dequeue has %d entries, want 2", len(q))
	}
}

func testACDClaim(t *testing.T, s store.Store) {
	ctx := t.Context()
	noErr(t, "enqueue", s.Enqueue(ctx, acd.Entry{CallID: "c1", Node: "a", QueuedAt: t0}))
	must[acd.Agent](t, "ready")(s.SetAgentState(ctx, "1", acd.Ready, "", t0))
	must[acd.Agent](t, "not ready")(s.SetAgentState(ctx, "2", acd.NotReady, "", t0))
	_, err := s.ClaimOffer(ctx, "c1", []string{"2"}, t0)
	wantErr(t, "claim with no agent ready", err, acd.ErrTaken)
	_, err = s.ClaimOffer(ctx, "nope", []string{"1"}, t0)
	wantErr(t, "claim of a call not queued", err, acd.ErrTaken)
	got := must[[]string](t, "claim")(s.ClaimOffer(ctx, "c1", []string{"1", "2"}, t0.Add(time.Second)))
	diff(t, "claimed", []string{"1"}, got)
	_, err = s.ClaimOffer(ctx, "c1", []string{"1"}, t0)
	wantErr(t, "claim twice", err, acd.ErrTaken)
	diff(t, "offered agent", acd.Agent{CAID: "1", State: acd.Offered, Since: t0.Add(time.Second), CallID: "c1"},
		must[acd.Agent](t, "agent")(s.Agent(ctx, "1")))
	// Ring timeout: the agent goes not ready and the call waits again.
	noErr(t, "release", s.ReleaseOffer(ctx, "c1", "1", acd.NotReady, t0.Add(2*time.Second)))
	if q := must[[]acd.Entry](t, "queue")(s.Queue(ctx)); len(q) != 1 || q[0].State != acd.Waiting || !q[0].QueuedAt.Equal(t0) {
		t.Errorf("queue after release %+v, want c1 waiting at its place", q)
	}
	must[acd.Agent](t, "ready 2")(s.SetAgentState(ctx, "2", acd.Ready, "", t0))
	must[[]string](t, "claim 2")(s.ClaimOffer(ctx, "c1", []string{"2"}, t0.Add(3*time.Second)))
	wantErr(t, "answer by an agent not offered", s.AnswerOffer(ctx, "c1", "1", t0), acd.ErrTaken)
	noErr(t, "answer", s.AnswerOffer(ctx, "c1", "2", t0.Add(4*time.Second)))
	diff(t, "answering agent", acd.Agent{CAID: "2", State: acd.InCall, Since: t0.Add(4 * time.Second), CallID: "c1"},
		must[acd.Agent](t, "agent")(s.Agent(ctx, "2")))
	if q := must[[]acd.Entry](t, "queue")(s.Queue(ctx)); len(q) != 0 {
		t.Errorf("queue after answer %+v, want empty", q)
	}
}

func testACDEmergencyToAll(t *testing.T, s store.Store) {
	ctx := t.Context()
	noErr(t, "enqueue", s.Enqueue(ctx, acd.Entry{CallID: "911", Node: "a", QueuedAt: t0, Priority: acd.PriorityEmergency}))
	for _, id := range []string{"a", "b", "c"} {
		must[acd.Agent](t, "ready")(s.SetAgentState(ctx, id, acd.Ready, "", t0))
	}
	got := must[[]string](t, "claim")(s.ClaimOffer(ctx, "911", []string{"a", "b", "c"}, t0))
	diff(t, "claimed", []string{"a", "b", "c"}, got)
	// One rejects: the call is still being offered to the others.
	noErr(t, "release a", s.ReleaseOffer(ctx, "911", "a", acd.NotReady, t0))
	if q := must[[]acd.Entry](t, "queue")(s.Queue(ctx)); len(q) != 1 || q[0].State != acd.Offering {
		t.Errorf("queue after one release %+v, want 911 still offering", q)
	}
	noErr(t, "answer b", s.AnswerOffer(ctx, "911", "b", t0.Add(time.Second)))
	as := must[[]acd.Agent](t, "agents")(s.Agents(ctx))
	var states []string
	for _, a := range as {
		states = append(states, a.CAID+":"+a.State)
	}
	diff(t, "states", []string{"a:not_ready", "b:in_call", "c:ready"}, states)
}

// testACDClaimConcurrent: nodes racing for one interpreter: exactly one
// claim wins, and one call is never offered twice.
func testACDClaimConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const calls = 8
	for i := range calls {
		noErr(t, "enqueue", s.Enqueue(ctx, acd.Entry{CallID: fmt.Sprintf("c%d", i), Node: "a", QueuedAt: t0.Add(time.Duration(i))}))
	}
	must[acd.Agent](t, "ready")(s.SetAgentState(ctx, "only", acd.Ready, "", t0))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var won []string
	errs := make(chan error, calls)
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("c%d", i)
			_, err := s.ClaimOffer(ctx, id, []string{"only"}, t0)
			if err == nil {
				mu.Lock()
				won = append(won, id)
				mu.Unlock()
			} else if !errors.Is(err, acd.ErrTaken) {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("claim: %v", err)
	}
	if len(won) != 1 {
		t.Fatalf("%d claims won (%v), want exactly 1", len(won), won)
	}
	a := must[acd.Agent](t, "agent")(s.Agent(ctx, "only"))
	if a.State != acd.Offered || a.CallID != won[0] {
		t.Errorf("agent %+v, want offered %s", a, won[0])
	}
	var offering []string
	for _, e := range must[[]acd.Entry](t, "queue")(s.Queue(ctx)) {
		if e.State == acd.Offering {
			offering = append(offering, e.CallID)
		}
	}
	diff(t, "calls offering", won, offering)
}

func testACDWrapUp(t *testing.T, s store.Store) {
	ctx := t.Context()
	must[acd.Agent](t, "w1")(s.SetAgentState(ctx, "w1", acd.WrapUp, "c1", t0))
	must[acd.Agent](t, "w2")(s.SetAgentState(ctx, "w2", acd.WrapUp, "c2", t0.Add(10*time.Second)))
	must[acd.Agent](t, "r")(s.SetAgentState(ctx, "n", acd.NotReady, "", t0))
	n := must[int](t, "finish")(s.FinishWrapUp(ctx, t0.Add(5*time.Second), t0.Add(5*time.Second)))
	if n != 1 {
		t.Errorf("finished %d wrap-ups, want 1", n)
	}
	var states []string
	for _, a := range must[[]acd.Agent](t, "agents")(s.Agents(ctx)) {
		states = append(states, a.CAID+":"+a.State)
	}
	slices.Sort(states)
	diff(t, "states", []string{"n:not_ready", "w1:ready", "w2:wrap_up"}, states)
}

// testChangeCallConcurrent: both legs of a relay call completing its
// record at once keep each other's fields.
func testChangeCallConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	noErr(t, "create", s.CreateCall(ctx, store.Call{CallID: "r1", From: "5551230001", To: "2125550100", Node: "a", StartedAt: t0,
		Direction: store.CallOutbound}))
	wantErr(t, "change a missing call", s.ChangeCall(ctx, "nope", func(*store.Call) {}), store.ErrNotFound)
	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			noErr(t, "change", s.ChangeCall(ctx, "r1", func(c *store.Call) {
				c.MediaStats = append(c.MediaStats, store.StreamStats{Leg: fmt.Sprintf("leg%d", i), Media: "audio"})
				if i == 0 {
					c.ConversationEnd = t0.Add(time.Minute)
				}
			}))
		}()
	}
	wg.Wait()
	c := must[store.Call](t, "call")(s.Call(ctx, "r1"))
	if len(c.MediaStats) != n || !c.ConversationEnd.Equal(t0.Add(time.Minute)) || !c.StartedAt.Equal(t0) || c.Direction != store.CallOutbound {
		t.Errorf("after %d concurrent changes: %d stats, conversation end %v, started %v, direction %q", n, len(c.MediaStats), c.ConversationEnd, c.StartedAt, c.Direction)
	}
}
