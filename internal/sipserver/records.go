package sipserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/batchwrite"
	"github.com/z5vrs/z5/internal/promset"
	"github.com/z5vrs/z5/internal/store"
)

// Call records are written off the request path: the INVITE is forwarded
// while its record's insert waits in the writer's queue, and a call's end
// is queued the same way. One goroutine writes the queue in order (a
// call's insert before its answer before its end) and in batches, one
// transaction each, so a burst of calls costs one commit, not one per
// call. The exception is the answer: billing starts there, so the 200 OK
// is relayed to the caller only once the record with its answer time is
// committed (recordCommitWait bounds that wait; a call is never refused
// for its record).
//
// What a crash (kill -9, power) still loses: the writes queued and not
// yet committed, at most a batch's worth of milliseconds in normal
// running: the insert of a call set up but not yet answered, and the end
// of a call that ended just before. A record inserted and answered but
// never ended is closed by the node-lost sweep below.

const (
	// recordQueue bounds the writes waiting. Past it the store is behind:
	// a new write waits up to recordCommitWait for room (back-pressure on
	// the request path) before it is dropped, logged with the whole record
	// and counted.
	recordQueue = 8192
	// recordBatch is the most writes one transaction carries.
	recordBatch = 256
	// recordWriteTimeout bounds one transaction.
	recordWriteTimeout = 5 * time.Second
	// recordCommitWait bounds how long an answer waits for its record.
	recordCommitWait = 5 * time.Second
	// recordTries is how often one write is tried before it is given up
	// (logged in full and counted): about a minute and a half of backoff.
	recordTries = 20
	// recordBackoffMin, recordBackoffMax: the pause before a retry,
	// doubled per try.
	recordBackoffMin = 100 * time.Millisecond
	recordBackoffMax = 5 * time.Second
	// recordCloseWait bounds the final flush at Close.
	recordCloseWait = 5 * time.Second
	// sweepEvery is how often the open records of dead nodes are looked
	// for.
	sweepEvery = 30 * time.Second
)

// errRecordsClosed answers a write queued after the writer stopped.
var errRecordsClosed = errors.New("call record writer closed")

// recordStore is what the writer needs of the store.
type recordStore interface {
	WriteCalls(ctx context.Context, ws []store.CallWrite) ([]int, error)
}

// recordOp is one queued write.
type recordOp struct {
	w    store.CallWrite
	done chan error // nil: nobody waits; else gets the outcome once
}

func (op *recordOp) finish(err error) {
	if op.done != nil {
		op.done <- err
	}
}

type recordMetrics struct {
	written  prometheus.Counter
	failures prometheus.Counter
	lost     *prometheus.CounterVec // by reason
	nodeLost prometheus.Counter
}

func newRecordMetrics(reg prometheus.Registerer) (*recordMetrics, error) {
	s := promset.New("z5", "call_records")
	m := &recordMetrics{
		written:  s.Counter("written_total", "Call record writes committed (inserts, answers, ends)."),
		failures: s.Counter("write_failures_total", "Call record transactions the store failed; their writes are retried."),
		lost: s.CounterVec("lost_total",
			"Call record writes given up, by reason (queue-full, gave-up, closed); each is logged with its record.", "reason"),
		nodeLost: s.Counter("node_lost_total", "Open call records of a dead node (or of this node's previous run) closed by the sweep."),
	}
	if err := s.Register(reg); err != nil {
		return nil, fmt.Errorf("call record metrics: %w", err)
	}
	return m, nil
}

// recordWriter is the queue of call record writes and the goroutine that
// writes it (batchwrite): in order, up to recordBatch writes a
// transaction, a failed transaction's writes retried one at a time, each
// given up after recordTries. The server starts it in Serve and stops it
// in Close, after every call has ended, flushing what is queued.
type recordWriter struct {
	st  recordStore
	log *slog.Logger
	m   *recordMetrics
	q   *batchwrite.Writer[*recordOp]

	mu      sync.Mutex // guards the following
	running bool
	stopped bool
}

func newRecordWriter(st recordStore, log *slog.Logger, m *recordMetrics) *recordWriter {
	w := &recordWriter{st: st, log: log, m: m}
	q, err := batchwrite.New(batchwrite.Config{
		Queue: recordQueue, FullWait: recordCommitWait, Batch: recordBatch, Tries: recordTries,
		BackoffMin: recordBackoffMin, BackoffMax: recordBackoffMax, FlushWithin: recordCloseWait,
	}, batchwrite.Deps[*recordOp]{Write: w.try, GiveUp: w.giveUp})
	if err != nil {
		panic("call record writer: " + err.Error()) // constants: a build defect, caught by tests
	}
	w.q = q
	return w
}

// insert queues a new record.
func (w *recordWriter) insert(c store.Call) {
	w.put(store.CallWrite{Kind: store.CallInsert, Call: c}, false)
}

// replace queues a record's new content (UpdateCall).
func (w *recordWriter) replace(c store.Call) {
	w.put(store.CallWrite{Kind: store.CallReplace, Call: c}, false)
}

// change queues a change of the stored record (ChangeCall): a relay
// record both legs complete, perhaps at two nodes.
func (w *recordWriter) change(callID string, f func(*store.Call)) {
	w.put(store.CallWrite{Kind: store.CallChange, Call: store.Call{CallID: callID}, Change: f}, false)
}

// commit queues cw and waits until it is committed, with every write
// queued before it, or until recordCommitWait has passed.
func (w *recordWriter) commit(cw store.CallWrite) error {
	done := w.put(cw, true)
	t := time.NewTimer(recordCommitWait)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("not committed within %s (still queued)", recordCommitWait)
	}
}

// put queues cw; with wait, the returned channel gets its outcome. While
// the store is behind, a full queue holds it back (recordCommitWait at
// most) rather than drop a billing write.
func (w *recordWriter) put(cw store.CallWrite, wait bool) <-chan error {
	op := &recordOp{w: cw}
	if wait {
		op.done = make(chan error, 1)
	}
	switch err := w.q.Put(context.Background(), op); {
	case errors.Is(err, batchwrite.ErrClosed):
		w.lose(op, "closed", errRecordsClosed)
	case err != nil:
		w.lose(op, "queue-full", fmt.Errorf("%d writes queued for %s", recordQueue, recordCommitWait))
	}
	return op.done
}

// start reports whether the caller should run the writer (once, and not
// after close).
func (w *recordWriter) start() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running || w.stopped {
		return false
	}
	w.running = true
	return true
}

// run writes the queue until close, then flushes it.
func (w *recordWriter) run() { w.q.Run() }

// close stops queueing, writes what is queued (trying for up to
// recordCloseWait) and returns when done. Safe to call more than once.
func (w *recordWriter) close() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	w.q.Close()
}

// try writes ops in one transaction.
func (w *recordWriter) try(ctx context.Context, ops []*recordOp) error {
	ws := make([]store.CallWrite, len(ops))
	for i, op := range ops {
		ws[i] = op.w
	}
	// A transaction under way when the final flush's time is up is let
	// finish: it may commit, and each of its records is billing.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordWriteTimeout)
	skipped, err := w.st.WriteCalls(ctx, ws)
	cancel()
	if err != nil {
		w.m.failures.Inc()
		w.log.Warn("call records not written; retrying", "records", len(ops), "error", err)
		return err
	}
	for _, i := range skipped {
		if ws[i].Kind == store.CallInsert {
			// Written already: a retried batch, or a Call-ID reused.
			w.log.Warn("call record already stored", "call_id", ws[i].Call.CallID)
		} else {
			w.log.Error("call record missing; change not written", "call_id", ws[i].Call.CallID)
		}
	}
	w.m.written.Add(float64(len(ops)))
	for _, op := range ops {
		op.finish(nil)
	}
	return nil
}

// giveUp loses ops the writer gave up: their tries failed, or the final
// flush's time was up before they were tried.
func (w *recordWriter) giveUp(ops []*recordOp, err error) {
	reason := "gave-up"
	if errors.Is(err, batchwrite.ErrClosed) {
		reason, err = "closed", errRecordsClosed
	}
	for _, op := range ops {
		w.lose(op, reason, err)
	}
}

// lose gives op up: counted, and logged with what it would have written so
// that an operator can still bill the call.
func (w *recordWriter) lose(op *recordOp, reason string, err error) {
	w.m.lost.WithLabelValues(reason).Inc()
	c := op.w.Call
	w.log.Error("call record write lost", "call_id", c.CallID, "reason", reason, "error", err,
		"write", recordKind(op.w.Kind), "record", c)
	op.finish(fmt.Errorf("call record %s lost (%s): %w", c.CallID, reason, err))
}

func recordKind(k store.CallWriteKind) string {
	switch k {
	case store.CallInsert:
		return "insert"
	case store.CallReplace:
		return "replace"
	default:
		return "change"
	}
}

// lostNodes are the nodes whose open records the sweep closes: every node
// but self that membership does not count as alive and whose last
// heartbeat is the one the previous sweep read (prev). The second test
// is on the table as read now, not membership's copy of it: a node that
// has just started again beats before it takes calls, and its new
// records must not be closed for its old run's death.
func lostNodes(nodes []store.NodeStatus, prev map[string]time.Time, self string, healthy func(string) bool) []store.NodeStatus {
	var out []store.NodeStatus
	for _, n := range nodes {
		last, seen := prev[n.Name]
		if n.Name != self && !healthy(n.Name) && seen && last.Equal(n.LastSeen) {
			out = append(out, n)
		}
	}
	return out
}

// ownLastSeen is this node's heartbeat of its previous run, read before
// this run's first (Listen comes before membership's Serve): when that run
// died, its records still open ended no earlier than this.
func (s *Server) ownLastSeen(ctx context.Context) (store.NodeStatus, bool) {
	nodes, err := s.store.Nodes(ctx)
	if err != nil {
		s.log.Warn("node table not read; records of a previous run left open stay open", "error", err)
		return store.NodeStatus{}, false
	}
	for _, n := range nodes {
		if n.Name == s.cfg.Node {
			return n, true
		}
	}
	return store.NodeStatus{}, false
}

// sweep closes, at start-up, the records this node's previous run left
// open, then every s.sweepEvery those of nodes membership counts as dead and
// that have not beaten since the sweep before, until the server closes.
func (s *Server) sweep(prev store.NodeStatus, havePrev bool) {
	if havePrev {
		if prev.LastSeen.Before(s.started) {
			s.closeLost(prev.Name, s.started, prev.LastSeen)
		} else {
			// Not this node's previous run's beat: closing at it would
			// bill minutes nobody talked.
			s.log.Warn("own heartbeat newer than this run's start; records of a previous run left open stay open",
				"last_seen", prev.LastSeen)
		}
	}
	if s.health == nil {
		return
	}
	t := time.NewTicker(s.sweepEvery)
	defer t.Stop()
	var prevSeen map[string]time.Time
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		// Records a node that starts again after this read makes start
		// after it.
		readAt := s.now()
		ctx, cancel := context.WithTimeout(s.ctx, recordWriteTimeout)
		nodes, err := s.store.Nodes(ctx)
		cancel()
		if err != nil {
			s.log.Warn("node table not read for the node-lost sweep", "error", err)
			continue
		}
		for _, n := range lostNodes(nodes, prevSeen, s.cfg.Node, s.health.Healthy) {
			s.closeLost(n.Name, readAt, n.LastSeen)
		}
		prevSeen = make(map[string]time.Time, len(nodes))
		for _, n := range nodes {
			prevSeen[n.Name] = n.LastSeen
		}
	}
}

// closeLost ends node's open records started before startedBefore at
// lastKnown (store.CloseLostCalls).
func (s *Server) closeLost(node string, startedBefore, lastKnown time.Time) {
	ctx, cancel := context.WithTimeout(s.ctx, recordWriteTimeout)
	defer cancel()
	ids, err := s.store.CloseLostCalls(ctx, node, startedBefore, lastKnown)
	if err != nil {
		s.log.Warn("node-lost sweep failed", "peer_node", node, "error", err)
		return
	}
	s.records.m.nodeLost.Add(float64(len(ids)))
	for _, id := range ids {
		s.log.Warn("call record closed: its node was lost", "call_id", id, "peer_node", node, "last_seen", lastKnown)
	}
}
