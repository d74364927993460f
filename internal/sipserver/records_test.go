package sipserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
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
	"github.com/z5vrs/z5/internal/store/sqlite"
	"github.com/z5vrs/z5/internal/testenv"
)

// fakeRecords is a recordStore that keeps what it committed, as
// "kind:call-id" strings, and the size of each committed batch.
type fakeRecords struct {
	hold chan struct{} // when set, the first WriteCalls waits for it to close
	fail func(ws []store.CallWrite) error

	mu      sync.Mutex // guards the following
	calls   int
	written []string
	batches []int
}

func (f *fakeRecords) WriteCalls(ctx context.Context, ws []store.CallWrite) ([]int, error) {
	f.mu.Lock()
	f.calls++
	first := f.calls == 1
	f.mu.Unlock()
	if first && f.hold != nil {
		<-f.hold
	}
	if f.fail != nil {
		if err := f.fail(ws); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, w := range ws {
		f.written = append(f.written, recordKind(w.Kind)+":"+w.Call.CallID)
	}
	f.batches = append(f.batches, len(ws))
	return nil, nil
}

func (f *fakeRecords) got() ([]string, []int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.written), slices.Clone(f.batches)
}

func newTestRecordWriter(t *testing.T, st recordStore) (*recordWriter, *testenv.SyncBuffer) {
	t.Helper()
	m, err := newRecordMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	logs := &testenv.SyncBuffer{}
	return newRecordWriter(st, slog.New(slog.NewTextHandler(logs, nil)), m), logs
}

// runWriter runs w as Serve does; the returned stop closes it as Close
// does and waits for run.
func runWriter(w *recordWriter) (stop func()) {
	if !w.start() {
		panic("writer not started")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run()
	}()
	return func() { w.close(); <-done }
}

func insertOf(id string) store.CallWrite {
	return store.CallWrite{Kind: store.CallInsert, Call: store.Call{CallID: id}}
}

func replaceOf(id string) store.CallWrite {
	return store.CallWrite{Kind: store.CallReplace, Call: store.Call{CallID: id}}
}

// TestRecordWriterBatchesInOrder: writes queued while a transaction is in
// flight go in the next one, in the order they were queued, and an
// answer's commit returns only once its write (and those before it) is
// committed.
func TestRecordWriterBatchesInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeRecords{hold: make(chan struct{})}
		w, _ := newTestRecordWriter(t, st)
		stop := runWriter(w)
		w.insert(store.Call{CallID: "a"})
		synctest.Wait() // "a" is in flight, held
		w.insert(store.Call{CallID: "b"})
		w.change("a", func(*store.Call) {})
		committed := make(chan error, 1)
		go func() { committed <- w.commit(replaceOf("b")) }()
		synctest.Wait()
		select {
		case err := <-committed:
			t.Fatalf("commit returned (%v) before its write was committed", err)
		default:
		}
		w.replace(store.Call{CallID: "a"})
		close(st.hold)
		if err := <-committed; err != nil {
			t.Fatalf("commit: %v", err)
		}
		stop()
		written, batches := st.got()
		want := []string{"insert:a", "insert:b", "change:a", "replace:b", "replace:a"}
		if d := cmp.Diff(want, written); d != "" {
			t.Errorf("written (-want +got):\n%s", d)
		}
		if d := cmp.Diff([]int{1, 4}, batches); d != "" {
			t.Errorf("batches (-want +got):\n%s", d)
		}
		if n := counterValue(w.m.written); n != 5 {
			t.Errorf("written_total = %v, want 5", n)
		}
	})
}

// TestRecordWriterRetries: a store failing for a while loses nothing and
// keeps the order; each failure is counted.
func TestRecordWriterRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		failures := 3
		st := &fakeRecords{hold: make(chan struct{})}
		st.fail = func([]store.CallWrite) error {
			if failures > 0 {
				failures--
				return errors.New("database is locked")
			}
			return nil
		}
		w, logs := newTestRecordWriter(t, st)
		stop := runWriter(w)
		w.insert(store.Call{CallID: "a"})
		synctest.Wait()
		w.replace(store.Call{CallID: "a"})
		w.insert(store.Call{CallID: "b"})
		close(st.hold)
		if err := w.commit(replaceOf("b")); err != nil {
			t.Fatalf("commit: %v", err)
		}
		stop()
		written, _ := st.got()
		want := []string{"insert:a", "replace:a", "insert:b", "replace:b"}
		if d := cmp.Diff(want, written); d != "" {
			t.Errorf("written (-want +got):\n%s", d)
		}
		if n := counterValue(w.m.failures); n != 3 {
			t.Errorf("write_failures_total = %v, want 3", n)
		}
		for _, reason := range []string{"queue-full", "gave-up", "closed"} {
			if n := counterValue(w.m.lost.WithLabelValues(reason)); n != 0 {
				t.Errorf("lost_total{%s} = %v, want 0", reason, n)
			}
		}
		if !strings.Contains(logs.String(), "database is locked") {
			t.Errorf("failure not logged:\n%s", logs.String())
		}
	})
}

// TestRecordWriterPoison: one write the store always refuses is given up
// after its tries, logged with its record and counted; the writes around
// it are committed.
func TestRecordWriterPoison(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeRecords{hold: make(chan struct{})}
		st.fail = func(ws []store.CallWrite) error {
			for _, w := range ws {
				if w.Call.CallID == "bad" {
					return errors.New("invalid input value")
				}
			}
			return nil
		}
		w, logs := newTestRecordWriter(t, st)
		stop := runWriter(w)
		w.insert(store.Call{CallID: "a"})
		synctest.Wait()
		w.insert(store.Call{CallID: "bad", From: "2025550100"})
		w.insert(store.Call{CallID: "b"})
		close(st.hold)
		// Not commit: the poisoned write takes its tries, longer than an
		// answer waits.
		if err := <-w.put(replaceOf("b"), true); err != nil {
			t.Fatalf("replace b: %v", err)
		}
		stop()
		written, _ := st.got()
		if d := cmp.Diff([]string{"insert:a", "insert:b", "replace:b"}, written); d != "" {
			t.Errorf("written (-want +got):\n%s", d)
		}
		if n := counterValue(w.m.lost.WithLabelValues("gave-up")); n != 1 {
			t.Errorf("lost_total{gave-up} = %v, want 1", n)
		}
		if !strings.Contains(logs.String(), "call record write lost") || !strings.Contains(logs.String(), "2025550100") {
			t.Errorf("lost record not logged in full:\n%s", logs.String())
		}
	})
}

// TestRecordWriterClose: Close flushes what is queued, even when Serve
// never ran; a write after Close is counted lost and its commit fails.
func TestRecordWriterClose(t *testing.T) {
	st := &fakeRecords{}
	w, _ := newTestRecordWriter(t, st)
	for i := range 3 {
		w.insert(store.Call{CallID: fmt.Sprint(i)})
	}
	w.close()
	w.close() // idempotent
	written, _ := st.got()
	if d := cmp.Diff([]string{"insert:0", "insert:1", "insert:2"}, written); d != "" {
		t.Errorf("written (-want +got):\n%s", d)
	}
	if w.start() {
		t.Error("a closed writer started")
	}
	if err := w.commit(insertOf("late")); !errors.Is(err, errRecordsClosed) {
		t.Errorf("commit after close: %v, want %v", err, errRecordsClosed)
	}
	if n := counterValue(w.m.lost.WithLabelValues("closed")); n != 1 {
		t.Errorf("lost_total{closed} = %v, want 1", n)
	}
}

// TestRecordWriterQueueFull: past recordQueue a write waits for room
// (the store is behind) and is queued once the writer makes some; a write
// that finds no room within recordCommitWait is dropped and counted, not
// held on the request path for ever.
func TestRecordWriterQueueFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeRecords{}
		w, _ := newTestRecordWriter(t, st)
		for i := range recordQueue {
			w.insert(store.Call{CallID: fmt.Sprint(i)})
		}
		start := time.Now()
		w.insert(store.Call{CallID: "late"}) // nobody drains: waits, then is dropped
		if waited := time.Since(start); waited != recordCommitWait {
			t.Errorf("write into a full queue waited %s, want %s", waited, recordCommitWait)
		}
		if n := counterValue(w.m.lost.WithLabelValues("queue-full")); n != 1 {
			t.Errorf("lost_total{queue-full} = %v, want 1", n)
		}

		// With the writer running, a write that finds the queue full
		// waits for room and is written.
		hold := make(chan struct{})
		st.hold = hold
		stop := runWriter(w)
		queued := make(chan struct{})
		go func() {
			for i := range recordQueue + 1 {
				w.insert(store.Call{CallID: fmt.Sprint("b", i)})
			}
			close(queued)
		}()
		time.Sleep(time.Second)
		close(hold)
		<-queued
		stop()
		if n := counterValue(w.m.lost.WithLabelValues("queue-full")); n != 1 {
			t.Errorf("lost_total{queue-full} = %v after the writer drained, want still 1", n)
		}
		if written, _ := st.got(); len(written) != 2*recordQueue+1 {
			t.Errorf("%d written, want %d", len(written), 2*recordQueue+1)
		}
	})
}

func TestLostNodes(t *testing.T) {
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	nodes := []store.NodeStatus{{Name: "a", LastSeen: t0}, {Name: "b", LastSeen: t0}, {Name: "self", LastSeen: t0}, {Name: "c", LastSeen: t0}}
	all := map[string]time.Time{"a": t0, "b": t0, "self": t0, "c": t0}
	alive := map[string]bool{"b": true}
	for _, tt := range []struct {
		name    string
		prev    map[string]time.Time
		healthy func(string) bool
		want    []string
	}{
		{"dead peers", all, func(n string) bool { return alive[n] }, []string{"a", "c"}},
		{"all alive", all, func(string) bool { return true }, nil},
		// Never self, even when membership has not seen it yet.
		{"none alive", all, func(string) bool { return false }, []string{"a", "b", "c"}},
		// The first sweep has nothing to compare with.
		{"first sweep", nil, func(string) bool { return false }, nil},
		// a beat since the sweep before (started again): membership's
		// copy is behind the table.
		{"beat since", map[string]time.Time{"a": t0.Add(-time.Second), "c": t0}, func(string) bool { return false }, []string{"c"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, n := range lostNodes(nodes, tt.prev, "self", tt.healthy) {
				got = append(got, n.Name)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// sweepFixture is a SQLite store holding calls and node heartbeats, for
// the node-lost sweep tests.
func sweepFixture(t *testing.T, calls []store.Call, nodes []store.NodeStatus) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "z5.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, c := range calls {
		if err := st.CreateCall(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		if err := st.Heartbeat(t.Context(), n); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// serveSweeping serves srv until the test ends.
func serveSweeping(t *testing.T, srv *Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	served := listenAndServe(t, ctx, srv, netip.MustParseAddrPort("127.0.0.1:0"))
	t.Cleanup(func() {
		cancel()
		if err := served(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

// waitEnded waits (10 s at most) for callID's record to be ended, and
// returns it as it then is.
func waitEnded(t *testing.T, st *sqlite.Store, callID string) store.Call {
	t.Helper()
	var got store.Call
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var err error
		if got, err = st.Call(t.Context(), callID); err != nil {
			t.Fatal(err)
		}
		if !got.EndedAt.IsZero() {
			break
		}
	}
	return got
}

// wantNodeLost waits for the sweep to close record and checks that it
// ended at its node's last heartbeat lastSeen, as node lost, and is
// otherwise as it was.
func wantNodeLost(t *testing.T, st *sqlite.Store, record store.Call, lastSeen time.Time) {
	t.Helper()
	got := waitEnded(t, st, record.CallID)
	want := record
	want.EndedAt, want.EndReason = lastSeen, store.EndNodeLost
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("record %s (-want +got):\n%s", record.CallID, d)
	}
}

// TestRecordsOfPreviousRunClosed: a node starting again under its name
// closes the records its previous run left open (killed mid-call) at that
// run's last heartbeat, and leaves the others alone.
func TestRecordsOfPreviousRunClosed(t *testing.T) {
	lastSeen := time.Now().Add(-time.Minute).UTC().Truncate(time.Microsecond)
	answered := store.Call{CallID: "answered", From: "2025550101", To: "2025550102", Node: "test",
		StartedAt: lastSeen.Add(-time.Minute), AnsweredAt: lastSeen.Add(-50 * time.Second), Status: 200}
	peers := store.Call{CallID: "peers", From: "2025550101", To: "2025550102", Node: "other", StartedAt: lastSeen.Add(-time.Minute)}
	st := sweepFixture(t, []store.Call{answered, peers}, []store.NodeStatus{{Name: "test", Healthy: true, LastSeen: lastSeen}})
	srv, err := New(testConfig(), Deps{Store: st, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	serveSweeping(t, srv)
	wantNodeLost(t, st, answered, lastSeen)
	if got, _ := st.Call(t.Context(), "peers"); !got.EndedAt.IsZero() {
		t.Errorf("another node's record closed: %+v", got)
	}
	// The sweep counts the records once the store has closed them: the
	// count may come a moment after the record reads closed.
	n := counterValue(srv.records.m.nodeLost)
	for deadline := time.Now().Add(5 * time.Second); n == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		n = counterValue(srv.records.m.nodeLost)
	}
	if n != 1 {
		t.Errorf("node_lost_total = %v, want 1", n)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

// healthMap is membership as a test sets it.
type healthMap map[string]bool

func (h healthMap) Healthy(node string) bool { return h[node] }

// TestDeadPeerRecordsClosed: a live node closes the open records of a
// node membership counts as dead once it has missed a whole sweep
// interval of heartbeats, at its last heartbeat; a peer that is alive, or
// still beating, keeps its records open.
func TestDeadPeerRecordsClosed(t *testing.T) {
	lastSeen := time.Now().Add(-time.Minute).UTC().Truncate(time.Microsecond)
	dead := store.Call{CallID: "dead", From: "2025550101", To: "2025550102", Node: "a",
		StartedAt: lastSeen.Add(-time.Minute), AnsweredAt: lastSeen.Add(-50 * time.Second), Status: 200}
	alive := store.Call{CallID: "alive", From: "2025550103", To: "2025550104", Node: "b", StartedAt: lastSeen.Add(-time.Minute)}
	st := sweepFixture(t, []store.Call{dead, alive},
		[]store.NodeStatus{{Name: "a", Healthy: true, LastSeen: lastSeen}, {Name: "b", Healthy: true, LastSeen: lastSeen}})
	srv, err := New(testConfig(), Deps{Store: st, Registerer: prometheus.NewRegistry(), Health: healthMap{"b": true}})
	if err != nil {
		t.Fatal(err)
	}
	srv.sweepEvery = 20 * time.Millisecond
	serveSweeping(t, srv)
	wantNodeLost(t, st, dead, lastSeen)
	if got, _ := st.Call(t.Context(), "alive"); !got.EndedAt.IsZero() {
		t.Errorf("a live node's record closed: %+v", got)
	}
}
