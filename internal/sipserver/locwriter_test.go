package sipserver

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/testenv"
)

func rowPut(number string, dev int64, flow, contact string) store.RegistrationChange {
	return store.RegistrationChange{Registration: store.Registration{Number: number, DeviceID: dev, Node: "n1", FlowID: flow, Contact: contact}}
}

func rowDel(number string, dev int64, flow string) store.RegistrationChange {
	return store.RegistrationChange{Delete: true, Registration: store.Registration{Number: number, DeviceID: dev, Node: "n1", FlowID: flow}}
}

func TestCoalesce(t *testing.T) {
	a1, a2 := rowPut("5552340001", 1, "f1", "sip:a@one"), rowPut("5552340001", 1, "f1", "sip:a@two")
	aDel := rowDel("5552340001", 1, "f1")
	aOther := rowPut("5552340001", 1, "f2", "sip:a@other") // same device, another flow: another row
	aDev2 := rowPut("5552340001", 2, "f1", "sip:a2@one")   // another device on the flow
	b := rowPut("5552340002", 3, "f9", "sip:b@one")
	for _, tt := range []struct {
		name string
		ops  []store.RegistrationChange
		want []store.RegistrationChange
	}{
		{"none", nil, []store.RegistrationChange{}},
		{"one", []store.RegistrationChange{a1}, []store.RegistrationChange{a1}},
		{"later put replaces", []store.RegistrationChange{a1, a2}, []store.RegistrationChange{a2}},
		{"delete after put", []store.RegistrationChange{a1, aDel}, []store.RegistrationChange{aDel}},
		{"put after delete", []store.RegistrationChange{aDel, a2}, []store.RegistrationChange{a2}},
		{"put, delete, put", []store.RegistrationChange{a1, aDel, a2}, []store.RegistrationChange{a2}},
		{"rows kept apart, in row order", []store.RegistrationChange{b, aOther, aDev2, a1},
			[]store.RegistrationChange{a1, aOther, aDev2, b}},
		{"each row its own last change", []store.RegistrationChange{a1, b, aOther, aDel, rowDel("5552340002", 3, "f9"), a2},
			[]store.RegistrationChange{a2, aOther, rowDel("5552340002", 3, "f9")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if d := cmp.Diff(tt.want, coalesce(tt.ops)); d != "" {
				t.Errorf("coalesce (-want +got):\n%s", d)
			}
		})
	}
}

// fakeLocations is a location table in memory that can fail or hold
// its writes.
type fakeLocations struct {
	mu      sync.Mutex
	rows    map[locKey]store.Registration
	fail    int           // this many calls fail next
	hold    chan struct{} // when set, a call waits for it to close
	batches [][]store.RegistrationChange
}

func (f *fakeLocations) ChangeRegistrations(ctx context.Context, cs []store.RegistrationChange) error {
	f.mu.Lock()
	hold := f.hold
	f.mu.Unlock()
	if err := testenv.Hold(ctx, hold); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return errors.New("database is locked")
	}
	f.batches = append(f.batches, cs)
	if f.rows == nil {
		f.rows = map[locKey]store.Registration{}
	}
	for _, c := range cs {
		if c.Delete {
			delete(f.rows, keyOf(c))
		} else {
			f.rows[keyOf(c)] = c.Registration
		}
	}
	return nil
}

func (f *fakeLocations) contacts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.rows {
		out = append(out, r.Contact)
	}
	slices.Sort(out)
	return out
}

func newTestWriter(st locationStore, logs *testenv.SyncBuffer) (*locWriter, prometheus.Counter) {
	return newTestWriterQueue(st, logs, locQueueMax)
}

func newTestWriterQueue(st locationStore, logs *testenv.SyncBuffer, queue int) (*locWriter, prometheus.Counter) {
	failures := prometheus.NewCounter(prometheus.CounterOpts{Name: "failures"})
	log := slog.New(slog.NewTextHandler(logs, nil))
	return newLocWriterQueue(st, log, failures, prometheus.NewGauge(prometheus.GaugeOpts{Name: "queued"}), queue), failures
}

func counted(c prometheus.Counter) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

func mustEnqueue(t *testing.T, w *locWriter, ops ...store.RegistrationChange) {
	t.Helper()
	if err := w.enqueue(t.Context(), ops); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
}

// Close writes what is queued, the batch in flight and what queued
// behind it, before it returns.
func TestLocWriterCloseFlushes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hold := make(chan struct{})
		st := &fakeLocations{hold: hold}
		w, _ := newTestWriter(st, &testenv.SyncBuffer{})
		mustEnqueue(t, w, rowPut("5552340001", 1, "f1", "sip:a@one"))
		synctest.Wait() // the first batch is in flight, held
		mustEnqueue(t, w, rowPut("5552340002", 2, "f2", "sip:b@one"), rowPut("5552340003", 3, "f3", "sip:c@one"))
		mustEnqueue(t, w, rowDel("5552340003", 3, "f3"), rowPut("5552340001", 1, "f1", "sip:a@two"))
		go func() {
			time.Sleep(time.Second)
			close(hold)
		}()
		began := time.Now()
		w.close()
		if took := time.Since(began); took != time.Second {
			t.Errorf("close returned after %v, want when the held write went through (1s)", took)
		}
		if got, want := st.contacts(), []string{"sip:a@two", "sip:b@one"}; !slices.Equal(got, want) {
			t.Errorf("rows after close %q, want %q", got, want)
		}
		if len(st.batches) != 2 {
			t.Errorf("%d store calls, want 2 (the held one, then the rest in one)", len(st.batches))
		}
		// A change after close is written at once.
		mustEnqueue(t, w, rowDel("5552340002", 2, "f2"))
		if got := st.contacts(); !slices.Equal(got, []string{"sip:a@two"}) {
			t.Errorf("rows after a change past close %q", got)
		}
		if err := w.sync(t.Context()); err != nil {
			t.Errorf("sync after close: %v", err)
		}
	})
}

// A store that fails and recovers gets every row, each row as last
// queued, and every failure is counted and logged.
func TestLocWriterRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeLocations{fail: 3}
		logs := &testenv.SyncBuffer{}
		w, failures := newTestWriter(st, logs)
		defer w.close()
		mustEnqueue(t, w, rowPut("5552340001", 1, "f1", "sip:a@one"), rowPut("5552340002", 2, "f2", "sip:b@one"))
		synctest.Wait() // failed once, backing off
		if counted(failures) != 1 || len(st.contacts()) != 0 {
			t.Fatalf("after the first failure: %v failures, rows %q", counted(failures), st.contacts())
		}
		// Queued behind the failed batch: a's row changes again, b's goes.
		mustEnqueue(t, w, rowPut("5552340001", 1, "f1", "sip:a@two"), rowDel("5552340002", 2, "f2"))
		began := time.Now()
		if err := w.sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(began); took != 350*time.Millisecond {
			t.Errorf("written after %v, want after the backoffs (50+100+200 ms)", took)
		}
		if got := st.contacts(); !slices.Equal(got, []string{"sip:a@two"}) {
			t.Errorf("rows %q, want a's last", got)
		}
		if n := counted(failures); n != 3 {
			t.Errorf("failures counted %v, want 3", n)
		}
		if n := strings.Count(logs.String(), "location table write failed"); n != 3 {
			t.Errorf("%d failures logged, want 3:\n%s", n, logs.String())
		}
	})
}

// A full queue makes the caller wait until the writer takes it, or give
// up with its context.
func TestLocWriterQueueBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hold := make(chan struct{})
		st := &fakeLocations{hold: hold}
		w, _ := newTestWriterQueue(st, &testenv.SyncBuffer{}, 2)
		defer w.close()
		mustEnqueue(t, w, rowPut("5552340001", 1, "f1", "sip:a@one"))
		synctest.Wait() // in flight, held; the queue is empty again
		mustEnqueue(t, w, rowPut("5552340002", 2, "f2", "sip:b@one"), rowPut("5552340003", 3, "f3", "sip:c@one"))
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if err := w.enqueue(ctx, []store.RegistrationChange{rowPut("5552340004", 4, "f4", "sip:d@one")}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("enqueue on a full queue: %v, want the context's deadline", err)
		}
		queued := make(chan error, 1)
		go func() {
			queued <- w.enqueue(context.Background(), []store.RegistrationChange{rowPut("5552340004", 4, "f4", "sip:d@two")})
		}()
		synctest.Wait()
		select {
		case err := <-queued:
			t.Fatalf("enqueue on a full queue returned %v before the writer took it", err)
		default:
		}
		close(hold)
		if err := <-queued; err != nil {
			t.Fatal(err)
		}
		if err := w.sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		want := []string{"sip:a@one", "sip:b@one", "sip:c@one", "sip:d@two"}
		if got := st.contacts(); !slices.Equal(got, want) {
			t.Errorf("rows %q, want %q", got, want)
		}
	})
}

// A writer stopped before it could write (the store never answered, as
// when the node dies) loses its queue and says so; sync does not wait
// for it forever.
func TestLocWriterGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeLocations{hold: make(chan struct{})}
		logs := &testenv.SyncBuffer{}
		w, _ := newTestWriter(st, logs)
		mustEnqueue(t, w, rowPut("5552340001", 1, "f1", "sip:a@one"))
		synctest.Wait()
		mustEnqueue(t, w, rowPut("5552340002", 2, "f2", "sip:b@one"))
		began := time.Now()
		w.close()
		if took := time.Since(began); took != locFlushWithin {
			t.Errorf("close gave up after %v, want %v", took, locFlushWithin)
		}
		if got := st.contacts(); len(got) != 0 {
			t.Errorf("rows %q written by a store that never answered", got)
		}
		if err := w.sync(t.Context()); !errors.Is(err, errWriterStopped) {
			t.Errorf("sync after the writer gave up: %v", err)
		}
		if !strings.Contains(logs.String(), "location table changes lost at shutdown") || !strings.Contains(logs.String(), "rows=2") {
			t.Errorf("loss not logged:\n%s", logs.String())
		}
	})
}

// heldLocations is a store whose location-table writes never complete:
// the node's writer is stuck, as in the moment before the node dies.
type heldLocations struct{ store.Store }

func (heldLocations) ChangeRegistrations(ctx context.Context, _ []store.RegistrationChange) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestRegistrationLostInCrash: a REGISTER is answered before its row is
// written, and this node routes to the binding at once. The node dies
// before the row is written: what is lost is the row alone (other nodes
// cannot find the device, as they could not before it registered), and
// the device registering again restores routing.
func TestRegistrationLostInCrash(t *testing.T) {
	n := newTwoNodes(t, func(t *testing.T) (store.Store, store.Store) {
		st, _ := sqliteStores(t)
		return st, heldLocations{st}
	}, nodeOptions{}, nodeOptions{})
	ctx := context.Background()
	provisionOn(t, n.st, alice, store.DeviceSIP, "alice", "secret-a")
	provisionOn(t, n.st, bob, store.DeviceSIP, "bob", "secret-b")
	provisionOn(t, n.st, "5552340003", store.DeviceSIP, "carol", "secret-c")
	noFlush := func(context.Context) error { return nil } // node b never writes
	bobB := newPhone(t, n.b, bob, "bob", "secret-b")
	carolB := newPhone(t, n.b, "5552340003", "carol", "secret-c")
	bobB.flushed, carolB.flushed = noFlush, noFlush
	aliceA := newPhone(t, n.a, alice, "alice", "secret-a")
	for _, p := range []*phone{bobB, carolB, aliceA} {
		if res := p.register(600); res.StatusCode != 200 {
			t.Fatalf("%s: REGISTER %d %s", p.user, res.StatusCode, res.Reason)
		}
	}
	if regs, err := n.st.Registrations(ctx, bob, time.Now()); err != nil || len(regs) != 0 {
		t.Fatalf("bob's rows before node b wrote any: %+v %v", regs, err)
	}
	if got := metricValue(n.b, "z5_sip_location_queue"); got != 2 {
		t.Errorf("node b's queue %v, want bob's and carol's rows", got)
	}

	// Node b routes to bob from memory: carol's call reaches him.
	done, ic := ring(ctx, carolB, bobB)
	ic.dlg.Respond(486, "Busy Here", nil)
	ic.finish()
	if res := wait(t, done, "carol's call"); statusOf(res.err) != 486 {
		t.Fatalf("carol's call to bob on the same node: %v, want bob's 486", res.err)
	}
	// Node a reads the location table, which does not have bob yet.
	if _, err := aliceA.invite(ctx, bob); statusOf(err) != 480 {
		t.Fatalf("alice's call before bob's row was written: %v, want 480", err)
	}

	// Node b dies with its queue unwritten.
	n.b.srv.reg.w.flushWithin = 10 * time.Millisecond
	n.b.srv.Close()
	if !strings.Contains(n.b.logs.String(), "location table changes lost at shutdown") {
		t.Errorf("node b did not log its lost rows:\n%s", n.b.logs.String())
	}
	if regs, err := n.st.Registrations(ctx, bob, time.Now()); err != nil || len(regs) != 0 {
		t.Fatalf("bob's rows after node b died: %+v %v", regs, err)
	}
	if dev, err := n.st.DeviceBySIPUser(ctx, "bob"); err != nil || dev.Number != bob {
		t.Fatalf("bob's device after node b died: %+v %v", dev, err)
	}

	// Bob's device registers again, on node a: alice reaches him, and the
	// row is there for other nodes.
	bobA := newPhone(t, n.a, bob, "bob", "secret-b")
	if res := bobA.register(600); res.StatusCode != 200 {
		t.Fatalf("bob again: REGISTER %d %s", res.StatusCode, res.Reason)
	}
	regs, err := n.st.Registrations(ctx, bob, time.Now())
	if err != nil || len(regs) != 1 || regs[0].Node != "a" {
		t.Fatalf("bob's rows after registering on node a: %+v %v", regs, err)
	}
	done, ic = ring(ctx, aliceA, bobA)
	ic.dlg.Respond(486, "Busy Here", nil)
	ic.finish()
	if res := wait(t, done, "alice's call"); statusOf(res.err) != 486 {
		t.Fatalf("alice's call after bob registered again: %v, want bob's 486", res.err)
	}
}
