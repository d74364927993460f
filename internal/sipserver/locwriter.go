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

	"github.com/z5vrs/z5/internal/batchwrite"
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
	// locLinger is the least time between two writes. A commit costs
	// about the same for one row as for fifty (SQLite's fsync; a
	// PostgreSQL round trip), and devices connecting afresh for each
	// REGISTER add two rows each (the binding, then its removal when the
	// connection closes): at 1,000/s without it the node spent half its
	// CPU committing a row or two at a time. Other nodes see a row at
	// most this much later.
	locLinger = 10 * time.Millisecond
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

// errWriterStopped: the writer stopped before what was waited for was
// written.
var errWriterStopped = errors.New("location writer stopped")

// locWriter queues location-table changes and writes them from one
// goroutine (batchwrite), started with the first change and stopped by
// close, which first writes what is queued (for up to flushWithin).
// Queued changes of one row are coalesced into its last; a failed write
// is retried, with what queued behind it, until the node stops.
type locWriter struct {
	store       locationStore
	log         *slog.Logger
	failures    prometheus.Counter
	flushWithin time.Duration
	q           *batchwrite.Writer[store.RegistrationChange]
	start       sync.Once
}

func newLocWriter(st locationStore, log *slog.Logger, failures prometheus.Counter, queued prometheus.Gauge) *locWriter {
	return newLocWriterQueue(st, log, failures, queued, locQueueMax)
}

// newLocWriterQueue is newLocWriter with a queue of queue changes.
func newLocWriterQueue(st locationStore, log *slog.Logger, failures prometheus.Counter, queued prometheus.Gauge, queue int) *locWriter {
	w := &locWriter{store: st, log: log, failures: failures, flushWithin: locFlushWithin}
	q, err := batchwrite.New(batchwrite.Config{
		Queue: queue, BackoffMin: locBackoffMin, BackoffMax: locBackoffMax, FlushWithin: locFlushWithin,
		Linger: locLinger,
	}, batchwrite.Deps[store.RegistrationChange]{
		Write:    w.write,
		Merge:    coalesce,
		Retrying: w.retrying,
		GiveUp:   w.lost,
		Queued:   func(n int) { queued.Set(float64(n)) },
	})
	if err != nil {
		panic("location writer: " + err.Error()) // constants: a build defect, caught by tests
	}
	w.q = q
	return w
}

// enqueue queues ops (in order) for the writer, waiting while the queue
// is full; all or none are queued. Once the writer is closed they are
// written here and now.
func (w *locWriter) enqueue(ctx context.Context, ops []store.RegistrationChange) error {
	if len(ops) == 0 {
		return nil
	}
	err := w.q.Put(ctx, ops...)
	switch {
	case errors.Is(err, batchwrite.ErrClosed):
		return w.store.ChangeRegistrations(ctx, coalesce(ops))
	case err != nil:
		return fmt.Errorf("location table: %w", err)
	}
	w.start.Do(func() { go w.q.Run() })
	return nil
}

// sync waits until every change queued before it was called is written.
func (w *locWriter) sync(ctx context.Context) error {
	err := w.q.Wait(ctx)
	if errors.Is(err, batchwrite.ErrLost) {
		return fmt.Errorf("%w: %w", errWriterStopped, err)
	}
	return err
}

// write is one store call for a batch.
func (w *locWriter) write(ctx context.Context, batch []store.RegistrationChange) error {
	ctx, cancel := context.WithTimeout(ctx, locWriteTimeout)
	defer cancel()
	err := w.store.ChangeRegistrations(ctx, batch)
	if err != nil {
		w.failures.Inc()
	}
	return err
}

func (w *locWriter) retrying(batch []store.RegistrationChange, wait time.Duration, err error) {
	w.log.Warn("location table write failed, retrying", "rows", len(batch), "duration", wait, "error", err)
}

func (w *locWriter) lost(rows []store.RegistrationChange, err error) {
	w.log.Error("location table changes lost at shutdown", "rows", len(rows), "error", err)
}

// close writes what is queued, for up to flushWithin, and stops the
// writer. Later changes are written by enqueue itself.
func (w *locWriter) close() {
	ctx, cancel := context.WithTimeout(context.Background(), w.flushWithin)
	defer cancel()
	w.q.Shutdown(ctx)
}
