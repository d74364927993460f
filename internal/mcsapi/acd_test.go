package mcsapi

import (
	"context"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/acd"
	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/testenv/teststore"
)

// TestACDState: an interpreter's station session reads and sets its
// state; a customer's session is refused (403); only ready and not_ready
// may be asked for.
func TestACDState(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cu, err := e.st.CreateCustomer(ctx, store.Customer{Username: "ca1001", Role: store.RoleInterpreter, CAID: "1001"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.AddNumber(ctx, store.Number{Number: "ca-1001", CustomerID: cu.ID}); err != nil {
		t.Fatal(err)
	}
	tok := teststore.NewSession(t, e.st, store.Session{Kind: store.SessionMCS, CustomerID: cu.ID, Number: "ca-1001",
		ExpiresAt: time.Now().Add(time.Hour)})

	var st acdStateJSON
	e.do("GET", PathACDState, tok, "").want(t, 200).json(t, &st)
	if st.State != acd.NotReady || st.CAID != "1001" || st.QueueDepth != 0 {
		t.Errorf("state before sign-in %+v, want not_ready 1001 depth 0", st)
	}
	if err := e.st.Enqueue(ctx, acd.Entry{CallID: "c1", Node: "n", QueuedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	e.do("PUT", PathACDState, tok, `{"state":"ready"}`, "Content-Type", "application/json").want(t, 200).json(t, &st)
	if st.State != acd.Ready || st.Since.IsZero() || st.QueueDepth != 1 {
		t.Errorf("after PUT ready %+v, want ready with since, depth 1", st)
	}
	a, err := e.st.Agent(ctx, "1001")
	if err != nil || a.State != acd.Ready {
		t.Errorf("stored agent %+v %v, want ready", a, err)
	}
	e.do("PUT", PathACDState, tok, `{"state":"ready"}`, "Content-Type", "application/json").want(t, 200)
	if n := e.agentChanges.Load(); n != 1 {
		t.Errorf("dispatcher woken %d times after ready, ready again; want once", n)
	}
	e.do("PUT", PathACDState, tok, `{"state":"in_call"}`, "Content-Type", "application/json").want(t, 422)
	e.do("PUT", PathACDState, tok, `{"state":"not_ready"}`, "Content-Type", "application/json").want(t, 200).json(t, &st)
	if st.State != acd.NotReady {
		t.Errorf("after PUT not_ready %+v", st)
	}
	if n := e.agentChanges.Load(); n != 2 {
		t.Errorf("dispatcher woken %d times after not_ready, want 2", n)
	}

	// A customer is no interpreter.
	if got := e.do("GET", PathACDState, e.alice, "").want(t, 403).err(); got.Code != "not_interpreter" {
		t.Errorf("customer GET: %+v", got)
	}
	e.do("PUT", PathACDState, e.alice, `{"state":"ready"}`, "Content-Type", "application/json").want(t, 403)
	if _, err := e.st.Agent(ctx, "2025550100"); err == nil {
		t.Error("a customer's PUT made an agent")
	}
	e.do("GET", PathACDState, "", "").want(t, 401)
}
