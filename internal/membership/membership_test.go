package membership

import (
	"context"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/testenv"
	"github.com/z5vrs/z5/internal/testenv/teststore"
)

func TestAlive(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, tt := range []struct {
		n    store.NodeStatus
		want bool
	}{
		{store.NodeStatus{Healthy: true, LastSeen: now.Add(-2 * time.Second)}, true},
		{store.NodeStatus{Healthy: true, LastSeen: now.Add(-6 * time.Second)}, false},
		{store.NodeStatus{Healthy: false, LastSeen: now}, false},
	} {
		if got := Alive(tt.n, now, 5*time.Second); got != tt.want {
			t.Errorf("Alive(%+v) = %v", tt.n, got)
		}
	}
}

func TestHeartbeatsAndLeave(t *testing.T) {
	ctx := context.Background()
	st := teststore.SQLite(t)
	a, err := New(Config{Self: store.NodeStatus{Name: "a-mcs", Site: "a", Address: "127.0.0.1"},
		Heartbeat: 20 * time.Millisecond, DeadAfter: 60 * time.Millisecond}, Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	dns, _ := New(Config{Heartbeat: 20 * time.Millisecond, DeadAfter: 60 * time.Millisecond}, Deps{Store: st})
	actx, stopA := context.WithCancel(ctx)
	dctx, stopD := context.WithCancel(ctx)
	doneA, doneD := make(chan error), make(chan error)
	go func() { doneA <- a.Serve(actx) }()
	go func() { doneD <- dns.Serve(dctx) }()
	defer func() { stopD(); <-doneD }()
	testenv.WaitFor(t, 3*time.Second, "a-mcs healthy", func() bool { return dns.Healthy("a-mcs") })
	if dns.Healthy("b-mcs") {
		t.Fatal("unknown node healthy")
	}
	stopA()
	<-doneA
	testenv.WaitFor(t, 3*time.Second, "a-mcs gone after leaving", func() bool { return !dns.Healthy("a-mcs") })
}
