package sipserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/store"
)

// The location writer takes the registrar's row changes off the request
// path: a REGISTER is answered once its binding is in this node's memory,
// which is all this node's own routing reads (registrar.lookup); the row
// other nodes read (Registrations, for peerForks) is written a few
// milliseconds later by one goroutine, everything queued since its last
// write in one store call (one commit).
//
// What a crash loses is the queue: rows of new bindings never written and
// rows of removed bindings never deleted. Both describe flows to the
// crashed node, which died with it: their devices register again (on
// another node, or on this one once it is back) and that writes the row
// anew; rows left behind are skipped by other nodes once membership
// counts the node as dead (sipcore.PeerTargets) and expire with their
// lease. No call is routed wrongly by the loss; for those few
// milliseconds a call reaching another node does not find the device
// (480), as it would not have found it a moment before it registered.

const (
	// locQueueMax bounds the changes waiting to be written. Past it a
	// REGISTER waits for the writer, as it waited for its own row before
	// the writer existed: a store that cannot keep up slows registration
	// down rather than let the queue, and what a crash would lose, grow
	// without end.
	locQueueMax = 4096
	// locWriteTimeout bounds one store call; a hung database fails it and
	// the batch is retried.
	locWriteTimeout = 5 * time.Second
	// locFlushWithin is how long Close keeps writing what is queued.
	locFlushWithin = 5 * time.Second
	// locBackoffMin, locBackoffMax: the pause after a failed write,
	// doubled per failure in a row.
	locBackoffMin = 50 * time.Millisecond
	locBackoffMax = 5 * time.Second
)

// locationStore is the part of the store the registrar writes: the
// shared location table.
type locationStore interface {
	ChangeRegistrations(ctx context.Context, cs []store.RegistrationChange) error
}

// locKey names one location-table row.
type locKey struct {
	number   string
	deviceID int64
	node     string
	flow     string
}

func keyOf(c store.RegistrationChange) locKey {
	return locKey{c.Number, c.DeviceID, c.Node, c.FlowID}
}

// coalesce returns ops, queued in order, as one change per row: the last
// one queued for it (a put after a delete writes the row, a delete after
// a put removes it). Rows are independent, so the result is in row order,
// which also makes two nodes' batches lock shared rows in the same order.
func coalesce(ops []store.RegistrationChange) []store.RegistrationChange {
	last := make(map[locKey]int, len(ops))
	for i, c := range ops {
		last[keyOf(c)] = i
	}
	out := make([]store.RegistrationChange, 0, len(last))
	for i, c := range ops {
		if last[keyOf(c)] == i {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b store.RegistrationChange) int {
		return cmp.Or(cmp.Compare(a.Number, b.Number), cmp.Compare(a.DeviceID, b.DeviceID),
			cmp.Compare(a.Node, b.Node), cmp.Compare(a.FlowID, b.FlowID))
	})
	return out
}

// nextBackoff is the pause after a failed write, given the previous one
// (zero after a success).
func nextBackoff(prev time.Duration) time.Duration {
	if prev < locBackoffMin {
		return locBackoffMin
	}
	return min(2*prev, locBackoffMax)
}

// errWriterStopped: the writer stopped before what was waited for was
// written.
var errWriterStopped = errors.New("location writer stopped")

// locWriter queues location-table changes and writes them from one
// goroutine, started with the first change and stopped by close, which
// first writes what is queued (for up to flushWithin).
type locWriter struct {
	store       locationStore
	log         *slog.Logger
	failures    prometheus.Counter
	queued      prometheus.Gauge
	max         int
	flushWithin time.Duration

	ctx    context.Context // cancelled when close gives up on the queue
	cancel context.CancelFunc
	wake   chan struct{} // something was queued
	stop   chan struct{} // closed by close: write what is left, then exit
	exited chan struct{}

	mu       sync.Mutex // guards the following
	pending  []store.RegistrationChange
	inFlight int           // rows being written
	queuedN  uint64        // changes ever queued
	doneN    uint64        // of those, the first doneN are written
	changed  chan struct{} // closed and replaced when the queue is taken, doneN moves or the writer exits
	started  bool
	closed   bool
	finished bool // the goroutine exited
}

func newLocWriter(st locationStore, log *slog.Logger, failures prometheus.Counter, queued prometheus.Gauge) *locWriter {
	ctx, cancel := context.WithCancel(context.Background())
	return &locWriter{store: st, log: log, failures: failures, queued: queued,
		max: locQueueMax, flushWithin: locFlushWithin, ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), exited: make(chan struct{}),
		changed: make(chan struct{})}
}

// notifyLocked wakes those waiting for room or for a write, and updates
// the gauge of rows not yet written.
func (w *locWriter) notifyLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
	w.queued.Set(float64(len(w.pending) + w.inFlight))
}

// enqueue queues ops (in order) for the writer, waiting while the queue
// is full; all or none are queued. Once the writer is closed they are
// written here and now.
func (w *locWriter) enqueue(ctx context.Context, ops []store.RegistrationChange) error {
	if len(ops) == 0 {
		return nil
	}
	w.mu.Lock()
	for !w.closed && len(w.pending) >= w.max {
		w.pending = coalesce(w.pending)
		if len(w.pending) < w.max {
			break
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("location queue full: %w", ctx.Err())
		}
		w.mu.Lock()
	}
	if w.closed {
		w.mu.Unlock()
		return w.store.ChangeRegistrations(ctx, coalesce(ops))
	}
	w.pending = append(w.pending, ops...)
	w.queuedN += uint64(len(ops))
	w.queued.Set(float64(len(w.pending) + w.inFlight))
	if !w.started {
		w.started = true
		go w.run()
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return nil
}

// sync waits until every change queued before it was called is written.
func (w *locWriter) sync(ctx context.Context) error {
	w.mu.Lock()
	target := w.queuedN
	for w.doneN < target {
		if w.finished {
			w.mu.Unlock()
			return errWriterStopped
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		w.mu.Lock()
	}
	w.mu.Unlock()
	return nil
}

// take removes the queue, coalesced, for one write; upTo counts the
// changes it covers.
func (w *locWriter) take() (batch []store.RegistrationChange, upTo uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) == 0 {
		return nil, 0
	}
	batch, upTo = coalesce(w.pending), w.queuedN
	w.pending, w.inFlight = nil, len(batch)
	w.notifyLocked()
	return batch, upTo
}

// settle records the outcome of writing batch: written up to upTo, or
// put back ahead of what was queued since, to be written again.
func (w *locWriter) settle(batch []store.RegistrationChange, upTo uint64, err error) (left int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		w.doneN = upTo
	} else {
		w.pending = append(batch, w.pending...)
	}
	w.inFlight = 0
	w.notifyLocked()
	return len(w.pending)
}

func (w *locWriter) run() {
	defer func() {
		w.mu.Lock()
		w.finished = true
		w.notifyLocked()
		w.mu.Unlock()
		close(w.exited)
	}()
	var backoff time.Duration
	for {
		batch, upTo := w.take()
		if len(batch) == 0 {
			select {
			case <-w.wake:
				continue
			case <-w.stop:
				return // everything queued is written
			}
		}
		ctx, cancel := context.WithTimeout(w.ctx, locWriteTimeout)
		err := w.store.ChangeRegistrations(ctx, batch)
		cancel()
		left := w.settle(batch, upTo, err)
		if err == nil {
			backoff = 0
			continue
		}
		w.failures.Inc()
		backoff = nextBackoff(backoff)
		if w.ctx.Err() != nil {
			w.log.Error("location table changes lost at shutdown", "rows", left, "error", err)
			return
		}
		w.log.Warn("location table write failed, retrying", "rows", len(batch), "duration", backoff, "error", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-w.ctx.Done():
			t.Stop()
		}
	}
}

// close writes what is queued, for up to flushWithin, and stops the
// writer. Later changes are written by enqueue itself.
func (w *locWriter) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	started := w.started
	w.mu.Unlock()
	defer w.cancel()
	if !started {
		return
	}
	close(w.stop)
	give := time.AfterFunc(w.flushWithin, w.cancel)
	defer give.Stop()
	<-w.exited
}
