// Package batchwrite takes writes to a store off the request path: items
// are queued and one goroutine commits them in order, as many as are
// queued in one write (one transaction), so a burst costs one commit, not
// one per item. The queue is bounded (a full one holds the producer back),
// a failed write is retried with backoff, and Close writes what is left
// for a bounded time.
//
// What a write is, how queued items merge and who is told of an outcome
// stay with the owner, as the hooks in Deps: the node's location rows
// (coalesced, never given up while the node runs) and its call records
// (in order, each retried alone and given up, logged, after its tries).
package batchwrite

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Config is the writer's limits; the owner's constants.
type Config struct {
	// Queue is the most items waiting; a Put finding that many waits for
	// room (all its items are queued or none).
	Queue int
	// FullWait bounds that wait (ErrFull); 0: the Put's context alone.
	FullWait time.Duration
	// Batch is the most items one write carries; 0: all that are queued.
	Batch int
	// Tries says what a failed write leads to. 0: its items go back to the
	// head of the queue and are written again, with what queued behind
	// them, until written or Close's flush time is up. Above 0: each item
	// is retried alone, so that one the store refuses cannot hold up the
	// others, up to Tries times, and then given up.
	Tries int
	// BackoffMin, BackoffMax: the pause before a retry, doubled per
	// failure in a row (Backoff).
	BackoffMin, BackoffMax time.Duration
	// FlushWithin bounds Close's flush of what is queued.
	FlushWithin time.Duration
	// Linger is the least time between the end of one write and the
	// start of the next: what queues meanwhile shares the next commit.
	// 0: the next write starts as soon as there is something to write.
	// A store whose commit costs the same for one item as for many (an
	// fsync) then commits at most 1/Linger times a second however fast
	// items come; an item waits at most Linger more.
	Linger time.Duration
}

// Deps is the owner's part. Write, Retrying and GiveUp are called from
// the writing loop, one at a time; Merge and Queued from the loop or a
// Put, with the writer's lock held.
type Deps[T any] struct {
	// Write commits batch, in order, in one transaction, and tells whoever
	// waits for its items. ctx ends when Close's flush time is up.
	Write func(ctx context.Context, batch []T) error
	// Merge, optional, returns queued as fewer items that write the same
	// (the last change of a row). It is given the whole queue, which is
	// then written at once, and its items are never given up while the
	// writer runs: it needs Batch 0 and Tries 0.
	Merge func(queued []T) []T
	// Retrying, optional: batch failed with err and is written again
	// after wait.
	Retrying func(batch []T, wait time.Duration, err error)
	// GiveUp, optional: items will never be written. err is the last
	// write's error, or wraps ErrClosed when Close's flush time was up
	// before they were tried.
	GiveUp func(items []T, err error)
	// Queued, optional: the items queued or being written, after each
	// change.
	Queued func(n int)
}

// Writer is the queue and its writing loop, which Run (or else Close)
// runs.
type Writer[T any] struct {
	cfg    Config
	deps   Deps[T]
	ctx    context.Context // ends when Close's flush time is up
	cancel context.CancelFunc
	wake   chan struct{} // something was queued, or a Put stopped waiting
	stop   chan struct{} // closed by Close: write what is left, then return
	exited chan struct{} // the loop has returned

	mu        sync.Mutex // guards the following
	pending   []T
	pendingN  uint64        // items Put that pending stands for (more than its length once merged)
	inFlight  int           // items being written
	queuedN   uint64        // items ever Put
	settledN  uint64        // of those, the first settledN are written or given up
	firstLost uint64        // 1 + the position of the first item given up; 0: none
	waiting   int           // Puts waiting for room: the flush waits for them
	changed   chan struct{} // closed and replaced when items are taken or settled, or the loop returns
	running   bool          // Run or Close has the loop
	closed    bool
	done      bool      // the loop has returned
	deadline  time.Time // Close's flush ends then; zero: at its context's end
}

// New returns a writer with an empty queue; nothing runs until Run.
func New[T any](cfg Config, deps Deps[T]) (*Writer[T], error) {
	switch {
	case cfg.Queue < 1:
		return nil, fmt.Errorf("queue of %d items: want at least 1", cfg.Queue)
	case cfg.Batch < 0 || cfg.Tries < 0 || cfg.FullWait < 0 || cfg.Linger < 0 || cfg.FlushWithin <= 0:
		return nil, fmt.Errorf("batch %d, tries %d, full wait %s, linger %s, flush within %s: want none negative and a flush time",
			cfg.Batch, cfg.Tries, cfg.FullWait, cfg.Linger, cfg.FlushWithin)
	case cfg.BackoffMin <= 0 || cfg.BackoffMax < cfg.BackoffMin:
		return nil, fmt.Errorf("backoff %s to %s: want 0 < min <= max", cfg.BackoffMin, cfg.BackoffMax)
	case deps.Write == nil:
		return nil, errors.New("no Write")
	case deps.Merge != nil && (cfg.Batch != 0 || cfg.Tries != 0):
		return nil, errors.New("Merge needs the whole queue written at once and never given up (Batch 0, Tries 0)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Writer[T]{cfg: cfg, deps: deps, ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), exited: make(chan struct{}),
		changed: make(chan struct{})}, nil
}

// Backoff is the pause after a failed write, given the one before (zero
// after a success): lo, doubled per failure in a row up to hi.
func Backoff(prev, lo, hi time.Duration) time.Duration {
	if prev < lo {
		return lo
	}
	return min(2*prev, hi)
}

// Put queues items, in order, waiting while the queue is full. It
// returns ErrClosed after Close (nothing is queued), or, when no room
// came, an error wrapping ErrFull or ctx's.
func (w *Writer[T]) Put(ctx context.Context, items ...T) error {
	if len(items) == 0 {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if err := w.roomLocked(ctx); err != nil {
		return err
	}
	w.pending = append(w.pending, items...)
	w.pendingN += uint64(len(items))
	w.queuedN += uint64(len(items))
	w.reportLocked()
	w.signal()
	return nil
}

// roomLocked waits, w.mu held but released while it waits, until the
// queue has room. A Put already waiting when Close is called goes on
// waiting: the flush makes room and writes it too.
func (w *Writer[T]) roomLocked(ctx context.Context) error {
	if len(w.pending) < w.cfg.Queue {
		return nil
	}
	var full <-chan time.Time
	if w.cfg.FullWait > 0 {
		t := time.NewTimer(w.cfg.FullWait)
		defer t.Stop()
		full = t.C
	}
	w.waiting++
	defer func() {
		w.waiting--
		w.signal() // a flush may be waiting for the last Put
	}()
	for {
		if w.deps.Merge != nil {
			w.pending = w.deps.Merge(w.pending)
		}
		switch {
		case len(w.pending) < w.cfg.Queue:
			return nil
		case w.done:
			return ErrClosed
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ch:
			w.mu.Lock()
		case <-full:
			w.mu.Lock()
			return fmt.Errorf("%w: %d items waited %s", ErrFull, w.cfg.Queue, w.cfg.FullWait)
		case <-ctx.Done():
			w.mu.Lock()
			return fmt.Errorf("%w: %w", ErrFull, ctx.Err())
		}
	}
}

// Wait returns once every item Put before it is written; ErrLost when
// one of them was given up.
func (w *Writer[T]) Wait(ctx context.Context) error {
	w.mu.Lock()
	target := w.queuedN
	for w.settledN < target {
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		w.mu.Lock()
	}
	lost := w.firstLost != 0 && w.firstLost <= target
	w.mu.Unlock()
	if lost {
		return ErrLost
	}
	return nil
}

// Run writes the queue until Close, then what is left (Close). It
// returns at once after Close or while another Run runs. It takes no
// context: the queue must outlive its last producer, so only its owner's
// Close, after that, ends it.
func (w *Writer[T]) Run() {
	w.mu.Lock()
	if w.running || w.closed {
		w.mu.Unlock()
		return
	}
	w.running = true
	w.mu.Unlock()
	w.loop()
}

// Close stops Put and writes what is queued, for up to FlushWithin,
// itself when Run never ran; it returns when that is done. Safe to call
// more than once.
func (w *Writer[T]) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.FlushWithin)
	defer cancel()
	w.Shutdown(ctx)
}

// Shutdown is Close with the flush bounded by ctx instead. When ctx
// ends, so does Write's, and no retry is waited for past it: what is not
// written by then is given up (GiveUp).
func (w *Writer[T]) Shutdown(ctx context.Context) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.exited
		return
	}
	w.closed = true
	w.deadline, _ = ctx.Deadline()
	self := !w.running
	w.running = true
	w.mu.Unlock()
	defer w.cancel()
	defer context.AfterFunc(ctx, w.cancel)()
	close(w.stop)
	if self {
		w.loop()
	}
	<-w.exited
}

// loop writes batch after batch until next reports the end; a failed
// one is retried as Config.Tries says.
func (w *Writer[T]) loop() {
	defer func() {
		w.mu.Lock()
		w.done = true
		w.notifyLocked()
		w.mu.Unlock()
		close(w.exited)
	}()
	var backoff time.Duration
	for {
		batch, covers, ok := w.next()
		if !ok {
			return
		}
		// An item that may be given up is not tried past the flush time.
		// Without Tries the write goes ahead with its ctx ended, and fails
		// unless the store has no use for it.
		if w.cfg.Tries > 0 && w.expired(time.Now()) {
			w.giveUp(batch, covers, ErrClosed)
			continue
		}
		err := w.deps.Write(w.ctx, batch)
		if err == nil {
			w.settle(len(batch), covers)
			backoff = 0
			if w.cfg.Linger > 0 {
				w.linger()
			}
			continue
		}
		if w.cfg.Tries > 0 {
			w.retryEach(batch, err)
			continue
		}
		backoff = Backoff(backoff, w.cfg.BackoffMin, w.cfg.BackoffMax)
		if w.requeue(batch, covers, err) {
			return // Close's flush time is up
		}
		if w.deps.Retrying != nil {
			w.deps.Retrying(batch, backoff, err)
		}
		w.pause(backoff)
	}
}

// next waits for the next batch; false once Close has been called and
// nothing is left (or waiting) to be written.
func (w *Writer[T]) next() (batch []T, covers uint64, ok bool) {
	for {
		w.mu.Lock()
		if len(w.pending) > 0 {
			batch, covers = w.takeLocked()
			w.mu.Unlock()
			return batch, covers, true
		}
		closed, idle := w.closed, w.waiting == 0
		w.mu.Unlock()
		switch {
		case closed && idle:
			return nil, 0, false
		case closed:
			<-w.wake // a waiting Put queues or gives up
		default:
			select {
			case <-w.wake:
			case <-w.stop:
			}
		}
	}
}

// takeLocked removes the next batch from the queue; covers is how many
// items Put it stands for.
func (w *Writer[T]) takeLocked() (batch []T, covers uint64) {
	if w.deps.Merge != nil {
		w.pending = w.deps.Merge(w.pending)
	}
	n := len(w.pending)
	if w.cfg.Batch > 0 {
		n = min(n, w.cfg.Batch)
	}
	batch, covers = w.pending[:n:n], uint64(n)
	if n == len(w.pending) {
		covers, w.pending = w.pendingN, nil
	} else {
		w.pending = w.pending[n:]
	}
	w.pendingN -= covers
	w.inFlight = n
	w.notifyLocked()
	return batch, covers
}

// settle counts n items being written, standing for covers items Put,
// as written.
func (w *Writer[T]) settle(n int, covers uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.settleLocked(n, covers)
}

func (w *Writer[T]) settleLocked(n int, covers uint64) {
	w.settledN += covers
	w.inFlight -= n
	w.notifyLocked()
}

// giveUp settles items being written, standing for covers items Put, as
// never to be written.
func (w *Writer[T]) giveUp(items []T, covers uint64, err error) {
	w.mu.Lock()
	w.loseLocked(len(items), covers)
	w.mu.Unlock()
	if w.deps.GiveUp != nil {
		w.deps.GiveUp(items, err)
	}
}

func (w *Writer[T]) loseLocked(n int, covers uint64) {
	if w.firstLost == 0 {
		w.firstLost = w.settledN + 1
	}
	w.settleLocked(n, covers)
}

// requeue puts batch back at the head of the queue after it failed with
// err. When Close's flush time is up it gives up the whole queue instead
// and reports true.
func (w *Writer[T]) requeue(batch []T, covers uint64, err error) (gaveUp bool) {
	w.mu.Lock()
	w.pending = append(batch, w.pending...)
	w.pendingN += covers
	w.inFlight = 0
	if w.ctx.Err() == nil {
		w.notifyLocked()
		w.mu.Unlock()
		return false
	}
	left, leftN := w.pending, w.pendingN
	w.pending, w.pendingN = nil, 0
	w.loseLocked(0, leftN)
	w.mu.Unlock()
	if w.deps.GiveUp != nil {
		w.deps.GiveUp(left, err)
	}
	return true
}

// retryEach writes the items of a failed batch one at a time, in order,
// each after a backoff and up to Tries times, and gives up those still
// failing, or whose next backoff would end past Close's flush time.
func (w *Writer[T]) retryEach(batch []T, batchErr error) {
	for i := range batch {
		one := batch[i : i+1 : i+1]
		err := batchErr
		var backoff time.Duration
		for range w.cfg.Tries {
			backoff = Backoff(backoff, w.cfg.BackoffMin, w.cfg.BackoffMax)
			if w.expired(time.Now().Add(backoff)) {
				break
			}
			w.pause(backoff)
			if err = w.deps.Write(w.ctx, one); err == nil {
				break
			}
		}
		if err == nil {
			w.settle(1, 1)
		} else {
			w.giveUp(one, 1, err)
		}
	}
}

// expired reports whether Close's flush time is up at t.
func (w *Writer[T]) expired(t time.Time) bool {
	w.mu.Lock()
	closed, deadline := w.closed, w.deadline
	w.mu.Unlock()
	if !closed {
		return false
	}
	if deadline.IsZero() {
		return w.ctx.Err() != nil
	}
	return t.After(deadline)
}

// pause waits d, or until Close's flush time is up.
func (w *Writer[T]) pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-w.ctx.Done():
	}
}

// linger waits Linger, or until Close begins: the flush does not wait.
func (w *Writer[T]) linger() {
	t := time.NewTimer(w.cfg.Linger)
	defer t.Stop()
	select {
	case <-t.C:
	case <-w.stop:
	}
}

// signal wakes the loop, if it is not already woken.
func (w *Writer[T]) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// notifyLocked wakes whoever waits for room or for a write, and reports
// the items queued or being written.
func (w *Writer[T]) notifyLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
	w.reportLocked()
}

func (w *Writer[T]) reportLocked() {
	if w.deps.Queued != nil {
		w.deps.Queued(len(w.pending) + w.inFlight)
	}
}
