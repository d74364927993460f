package sipserver

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/store"
)

// heldStore holds every device lookup of one SIP user until gate closes,
// counting the lookups waiting.
type heldStore struct {
	Store
	user    string
	waiting atomic.Int32
	gate    chan struct{}
}

func (s *heldStore) DeviceBySIPUser(ctx context.Context, user string) (store.Device, error) {
	if user == s.user {
		s.waiting.Add(1)
		select {
		case <-s.gate:
		case <-ctx.Done():
		}
	}
	return s.Store.DeviceBySIPUser(ctx, user)
}

// TestStatelessBackpressure: of REGISTERs pipelined on one connection, at
// most statelessPerFlow are handled at once; the connection's reader
// waits for one to finish before it reads on (TCP slows the client), the
// node's other connections are answered meanwhile, and once the store
// answers every REGISTER is answered, none shed.
func TestStatelessBackpressure(t *testing.T) {
	held := &heldStore{user: "slow", gate: make(chan struct{})}
	e := newEnvWith(t, nil, func(d *Deps) { held.Store = d.Store; d.Store = held })
	e.provision(alice, store.DeviceSIP, "alice", "secret-a")
	e.provision("5552340003", store.DeviceSIP, "slow", "secret-s")
	opened := false
	t.Cleanup(func() {
		if !opened {
			close(held.gate)
		}
	})

	const n = statelessPerFlow + 8
	var batch strings.Builder
	for i := range n {
		batch.WriteString(registerText("slow", fmt.Sprint("held-", i), 1, ""))
	}
	busy := dialFrom(t, "127.0.0.61", e.addr)
	busy.send(t, batch.String())
	waitFor(t, "the flow's slots taken", func() bool { return held.waiting.Load() >= statelessPerFlow })

	other := dialFrom(t, "127.0.0.62", e.addr)
	other.send(t, registerText(alice, "other-1", 1, ""))
	if m, _ := other.read(5 * time.Second); status(m) != 401 {
		t.Fatalf("another connection while the first is held: %v", m)
	}
	if w := held.waiting.Load(); w != statelessPerFlow {
		t.Fatalf("%d REGISTERs of one connection handled at once, want %d", w, statelessPerFlow)
	}

	close(held.gate)
	opened = true
	msgs, closed := busy.readAll(t, n, 5*time.Second)
	if closed || len(msgs) != n {
		t.Fatalf("%d of %d answered (closed %t)", len(msgs), n, closed)
	}
	for i, m := range msgs {
		if status(m) != 401 {
			t.Fatalf("answer %d: %v, want 401", i, m)
		}
	}
}
