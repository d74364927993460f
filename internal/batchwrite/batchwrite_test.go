package batchwrite

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/z5vrs/z5/internal/testenv"
)

// fakeStore records what it was asked to write, and when, and can fail
// or hold writes.
type fakeStore struct {
	begin time.Time
	fail  func(batch []string) error // nil: every write commits
	hold  chan struct{}              // when set, a write waits for it to close (or for its ctx)

	mu        sync.Mutex // guards the following
	tried     []string   // each write as "+offset:item,item", offset since begin
	committed []string
	gaveUp    []string // "item: error"
	retrying  []string // "item,item after wait"
}

func (f *fakeStore) write(ctx context.Context, batch []string) error {
	f.mu.Lock()
	f.tried = append(f.tried, fmt.Sprintf("+%s:%s", time.Since(f.begin), strings.Join(batch, ",")))
	hold := f.hold
	f.mu.Unlock()
	if err := testenv.Hold(ctx, hold); err != nil {
		return err
	}
	if f.fail != nil {
		if err := f.fail(batch); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.committed = append(f.committed, batch...)
	return nil
}

func (f *fakeStore) snapshot() (tried, committed, gaveUp, retrying []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.tried), slices.Clone(f.committed), slices.Clone(f.gaveUp), slices.Clone(f.retrying)
}

func (f *fakeStore) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.hold)
	f.hold = nil
}

// failFirst fails the first n writes.
func failFirst(n int) func([]string) error {
	return func([]string) error {
		if n > 0 {
			n--
			return errors.New("database is locked")
		}
		return nil
	}
}

// refuse fails every write that carries item.
func refuse(item string) func([]string) error {
	return func(batch []string) error {
		if slices.Contains(batch, item) {
			return errors.New("invalid input value")
		}
		return nil
	}
}

// base is the location writer's shape: one write of everything queued,
// retried until written.
var base = Config{Queue: 100, BackoffMin: 50 * time.Millisecond, BackoffMax: 5 * time.Second, FlushWithin: 5 * time.Second}

// records is the call record writer's shape.
var records = Config{Queue: 100, FullWait: 5 * time.Second, Batch: 256, Tries: 20,
	BackoffMin: 100 * time.Millisecond, BackoffMax: 5 * time.Second, FlushWithin: 5 * time.Second}

func newTestWriter(t *testing.T, cfg Config, f *fakeStore, merge func([]string) []string) *Writer[string] {
	t.Helper()
	f.begin = time.Now()
	w, err := New(cfg, Deps[string]{
		Write: f.write,
		Merge: merge,
		Retrying: func(batch []string, wait time.Duration, _ error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.retrying = append(f.retrying, fmt.Sprintf("%s after %s", strings.Join(batch, ","), wait))
		},
		GiveUp: func(items []string, err error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			for _, it := range items {
				f.gaveUp = append(f.gaveUp, fmt.Sprintf("%s: %v", it, err))
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// serve runs w until the test's function returns, then closes it.
func serve(w *Writer[string]) (stop func()) {
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		w.Run()
	}()
	return func() { w.Close(); <-ran }
}

func mustPut(t *testing.T, w *Writer[string], items ...string) {
	t.Helper()
	if err := w.Put(t.Context(), items...); err != nil {
		t.Fatalf("Put %q: %v", items, err)
	}
}

// lastOnly merges a queue of "key=value" items into the last value of
// each key, in the order of those last values.
func lastOnly(items []string) []string {
	last := map[string]int{}
	for i, it := range items {
		last[strings.Split(it, "=")[0]] = i
	}
	var out []string
	for i, it := range items {
		if last[strings.Split(it, "=")[0]] == i {
			out = append(out, it)
		}
	}
	return out
}

func TestBackoff(t *testing.T) {
	for _, tt := range []struct {
		name   string
		lo, hi time.Duration
		want   []time.Duration
	}{
		{"location rows", 50 * time.Millisecond, 5 * time.Second, []time.Duration{50 * time.Millisecond, 100 * time.Millisecond,
			200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond,
			3200 * time.Millisecond, 5 * time.Second, 5 * time.Second}},
		{"call records", 100 * time.Millisecond, 5 * time.Second, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond,
			400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond, 3200 * time.Millisecond,
			5 * time.Second, 5 * time.Second, 5 * time.Second}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got []time.Duration
			var d time.Duration
			for range tt.want {
				d = Backoff(d, tt.lo, tt.hi)
				got = append(got, d)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("backoff (-want +got):\n%s", d)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	write := func(context.Context, []string) error { return nil }
	for _, tt := range []struct {
		name string
		cfg  func(*Config)
		deps Deps[string]
	}{
		{"no queue", func(c *Config) { c.Queue = 0 }, Deps[string]{Write: write}},
		{"no flush time", func(c *Config) { c.FlushWithin = 0 }, Deps[string]{Write: write}},
		{"negative tries", func(c *Config) { c.Tries = -1 }, Deps[string]{Write: write}},
		{"no backoff", func(c *Config) { c.BackoffMin = 0 }, Deps[string]{Write: write}},
		{"backoff max below min", func(c *Config) { c.BackoffMax = c.BackoffMin / 2 }, Deps[string]{Write: write}},
		{"no write", func(*Config) {}, Deps[string]{}},
		{"merge with a batch limit", func(c *Config) { c.Batch = 10 }, Deps[string]{Write: write, Merge: lastOnly}},
		{"merge with tries", func(c *Config) { c.Tries = 3 }, Deps[string]{Write: write, Merge: lastOnly}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.cfg(&cfg)
			if _, err := New(cfg, tt.deps); err == nil {
				t.Errorf("New(%+v) accepted", cfg)
			}
		})
	}
}

// TestPutFull: a Put finding the queue full waits for room: it is
// queued once the writer takes the queue, or fails after FullWait or
// with its context.
func TestPutFull(t *testing.T) {
	for _, tt := range []struct {
		name     string
		fullWait time.Duration
		ctxWait  time.Duration // 0: none
		release  time.Duration // when the store takes the held write (and the queue); 0: never
		wantErr  []error       // nil: queued
		waited   time.Duration
	}{
		{"room within the wait", 5 * time.Second, 0, time.Second, nil, time.Second},
		{"no room within FullWait", 5 * time.Second, 0, 0, []error{ErrFull}, 5 * time.Second},
		{"no room before the context's deadline", 0, time.Second, 0, []error{ErrFull, context.DeadlineExceeded}, time.Second},
		{"context shorter than FullWait", 5 * time.Second, time.Second, 0, []error{context.DeadlineExceeded}, time.Second},
		{"no FullWait: room however long it takes", 0, 0, time.Minute, nil, time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeStore{hold: make(chan struct{})}
				cfg := records
				cfg.Queue, cfg.FullWait = 2, tt.fullWait
				w := newTestWriter(t, cfg, f, nil)
				stop := serve(w)
				defer stop()
				mustPut(t, w, "a")
				synctest.Wait() // "a" is being written, held
				mustPut(t, w, "b", "c")
				if tt.release > 0 {
					go func() {
						time.Sleep(tt.release)
						f.release()
					}()
				} else {
					defer f.release()
				}
				ctx := t.Context()
				if tt.ctxWait > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.ctxWait)
					defer cancel()
				}
				began := time.Now()
				err := w.Put(ctx, "d")
				if waited := time.Since(began); waited != tt.waited {
					t.Errorf("Put waited %s, want %s", waited, tt.waited)
				}
				for _, want := range tt.wantErr {
					if !errors.Is(err, want) {
						t.Errorf("Put: %v, want %v", err, want)
					}
				}
				if tt.wantErr == nil && err != nil {
					t.Errorf("Put: %v", err)
				}
			})
		})
	}
}

// TestMergeMakesRoom: with Merge, a full queue is merged before a Put
// waits, and what is written is the merged queue.
func TestMergeMakesRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeStore{hold: make(chan struct{})}
		cfg := base
		cfg.Queue = 2
		w := newTestWriter(t, cfg, f, lastOnly)
		stop := serve(w)
		mustPut(t, w, "a=1")
		synctest.Wait() // held
		mustPut(t, w, "b=1", "b=2")
		mustPut(t, w, "c=1") // room once b's two are one
		f.release()
		if err := w.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		stop()
		tried, committed, _, _ := f.snapshot()
		if d := cmp.Diff([]string{"+0s:a=1", "+0s:b=2,c=1"}, tried); d != "" {
			t.Errorf("writes (-want +got):\n%s", d)
		}
		if d := cmp.Diff([]string{"a=1", "b=2", "c=1"}, committed); d != "" {
			t.Errorf("committed (-want +got):\n%s", d)
		}
	})
}

// TestBatches: one write carries at most Batch items, in the order they
// were queued; 0 is no limit.
func TestBatches(t *testing.T) {
	for _, tt := range []struct {
		batch int
		want  []string
	}{
		{0, []string{"+0s:1,2,3,4,5,6,7"}},
		{3, []string{"+0s:1,2,3", "+0s:4,5,6", "+0s:7"}},
		{7, []string{"+0s:1,2,3,4,5,6,7"}},
		{1, []string{"+0s:1", "+0s:2", "+0s:3", "+0s:4", "+0s:5", "+0s:6", "+0s:7"}},
	} {
		t.Run(fmt.Sprint(tt.batch), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeStore{}
				cfg := records
				cfg.Batch = tt.batch
				w := newTestWriter(t, cfg, f, nil)
				mustPut(t, w, "1", "2", "3")
				mustPut(t, w, "4", "5", "6", "7")
				serve(w)()
				tried, _, _, _ := f.snapshot()
				if d := cmp.Diff(tt.want, tried); d != "" {
					t.Errorf("writes (-want +got):\n%s", d)
				}
			})
		})
	}
}

// TestLinger: with Linger, what is put while a write is lingering shares
// the next write, which starts Linger after the last one ended; an item
// put when the writer has been idle longer is written at once; Close
// does not linger.
func TestLinger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeStore{}
		cfg := base
		cfg.Linger = 10 * time.Millisecond
		w := newTestWriter(t, cfg, f, nil)
		stop := serve(w)
		mustPut(t, w, "1")
		synctest.Wait()
		for _, it := range []string{"2", "3", "4"} {
			time.Sleep(2 * time.Millisecond)
			mustPut(t, w, it)
		}
		time.Sleep(50 * time.Millisecond)
		mustPut(t, w, "5")
		synctest.Wait()
		mustPut(t, w, "6")
		start := time.Now()
		stop()
		if d := time.Since(start); d != 0 {
			t.Errorf("Close lingered %s", d)
		}
		tried, committed, _, _ := f.snapshot()
		if d := cmp.Diff([]string{"+0s:1", "+10ms:2,3,4", "+56ms:5", "+56ms:6"}, tried); d != "" {
			t.Errorf("writes (-want +got):\n%s", d)
		}
		if len(committed) != 6 {
			t.Errorf("committed %v", committed)
		}
	})
}

// TestRetries: a failed write is tried again after the backoff, per
// Tries: the whole batch with what queued behind it, or each item alone;
// nothing is lost and the order is kept.
func TestRetries(t *testing.T) {
	for _, tt := range []struct {
		name      string
		cfg       Config
		merge     func([]string) []string
		fail      func([]string) error
		tried     []string
		committed []string
		retrying  []string
	}{
		{"whole batch, merged with what queued behind", base, lastOnly, failFirst(3),
			[]string{"+0s:a=1,b=1", "+50ms:b=1,a=2,c=1", "+150ms:b=1,a=2,c=1", "+350ms:b=1,a=2,c=1"},
			[]string{"b=1", "a=2", "c=1"},
			[]string{"a=1,b=1 after 50ms", "b=1,a=2,c=1 after 100ms", "b=1,a=2,c=1 after 200ms"}},
		{"whole batch, no merge", base, nil, failFirst(1),
			[]string{"+0s:a=1,b=1", "+50ms:a=1,b=1,a=2,c=1"},
			[]string{"a=1", "b=1", "a=2", "c=1"},
			[]string{"a=1,b=1 after 50ms"}},
		// Each item after its own backoff (100 ms doubling); what queued
		// behind waits for them.
		{"each alone", records, nil, failFirst(3),
			[]string{"+0s:a=1,b=1", "+100ms:a=1", "+300ms:a=1", "+700ms:a=1", "+800ms:b=1", "+800ms:a=2,c=1"},
			[]string{"a=1", "b=1", "a=2", "c=1"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeStore{fail: tt.fail}
				w := newTestWriter(t, tt.cfg, f, tt.merge)
				stop := serve(w)
				mustPut(t, w, "a=1", "b=1")
				synctest.Wait() // failed once, backing off
				mustPut(t, w, "a=2", "c=1")
				if err := w.Wait(t.Context()); err != nil {
					t.Fatal(err)
				}
				stop()
				tried, committed, gaveUp, retrying := f.snapshot()
				if d := cmp.Diff(tt.tried, tried); d != "" {
					t.Errorf("writes (-want +got):\n%s", d)
				}
				if d := cmp.Diff(tt.committed, committed); d != "" {
					t.Errorf("committed (-want +got):\n%s", d)
				}
				if d := cmp.Diff(tt.retrying, retrying); d != "" {
					t.Errorf("Retrying (-want +got):\n%s", d)
				}
				if len(gaveUp) != 0 {
					t.Errorf("gave up %q", gaveUp)
				}
			})
		})
	}
}

// TestGiveUp: with Tries, an item the store always refuses is given up
// after them, with the store's error; the items around it are written,
// and Wait reports the loss to whoever waits for it.
func TestGiveUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeStore{fail: refuse("bad")}
		cfg := records
		cfg.Tries = 3
		w := newTestWriter(t, cfg, f, nil)
		stop := serve(w)
		defer stop()
		mustPut(t, w, "a")
		if err := w.Wait(t.Context()); err != nil {
			t.Fatalf("Wait before the loss: %v", err)
		}
		mustPut(t, w, "bad", "b")
		if err := w.Wait(t.Context()); !errors.Is(err, ErrLost) {
			t.Errorf("Wait over the loss: %v, want %v", err, ErrLost)
		}
		tried, committed, gaveUp, _ := f.snapshot()
		want := []string{"+0s:a", "+0s:bad,b", "+100ms:bad", "+300ms:bad", "+700ms:bad", "+800ms:b"}
		if d := cmp.Diff(want, tried); d != "" {
			t.Errorf("writes (-want +got):\n%s", d)
		}
		if d := cmp.Diff([]string{"a", "b"}, committed); d != "" {
			t.Errorf("committed (-want +got):\n%s", d)
		}
		if d := cmp.Diff([]string{"bad: invalid input value"}, gaveUp); d != "" {
			t.Errorf("given up (-want +got):\n%s", d)
		}
	})
}

// TestCloseFlushes: Close writes what is queued, the write under way and
// what queued behind it, before it returns, whether Run ran or not; a Put
// waiting for room when Close came is written too; a Put after Close is
// refused, and Close again returns at once.
func TestCloseFlushes(t *testing.T) {
	for _, tt := range []struct {
		name  string
		run   bool
		tried []string
	}{
		{"running", true, []string{"+0s:a", "+1s:b,c", "+1s:d"}},
		{"never ran", false, []string{"+0s:a,b", "+1s:d"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeStore{hold: make(chan struct{})}
				cfg := base
				cfg.Queue = 2
				w := newTestWriter(t, cfg, f, nil)
				stop := w.Close
				if tt.run {
					stop = serve(w)
					mustPut(t, w, "a")
					synctest.Wait() // "a" is being written, held
					mustPut(t, w, "b", "c")
				} else {
					mustPut(t, w, "a", "b")
				}
				waited := make(chan error, 1)
				go func() { waited <- w.Put(context.Background(), "d") }()
				synctest.Wait() // d waits for room
				go func() {
					time.Sleep(time.Second)
					f.release()
				}()
				stop()
				if took := time.Since(f.begin); took != time.Second {
					t.Errorf("Close returned after %s, want when the store took the held write (1s)", took)
				}
				if err := <-waited; err != nil {
					t.Errorf("Put waiting at Close: %v", err)
				}
				if err := w.Put(t.Context(), "late"); !errors.Is(err, ErrClosed) {
					t.Errorf("Put after Close: %v, want %v", err, ErrClosed)
				}
				w.Close()
				if err := w.Wait(t.Context()); err != nil {
					t.Errorf("Wait after Close: %v", err)
				}
				tried, _, gaveUp, _ := f.snapshot()
				if d := cmp.Diff(tt.tried, tried); d != "" {
					t.Errorf("writes (-want +got):\n%s", d)
				}
				if len(gaveUp) != 0 {
					t.Errorf("gave up %q", gaveUp)
				}
			})
		})
	}
}

// TestCloseGivesUp: Close writes for FlushWithin at most. Without Tries,
// the write under way then is cancelled (its ctx), a retry then fails,
// and the whole queue is given up with the last error; with Tries, an
// item whose next try would come later is given up with the store's
// error, and one not tried by then with ErrClosed.
func TestCloseGivesUp(t *testing.T) {
	slowFailing := func([]string) error {
		time.Sleep(3 * time.Second) // a store call that does not heed its ctx
		return errors.New("database is locked")
	}
	eachAlone := records
	eachAlone.Batch = 1
	for _, tt := range []struct {
		name   string
		cfg    Config
		hold   bool
		fail   func([]string) error
		took   time.Duration
		gaveUp []string
	}{
		{"whole queue, store hung", base, true, nil, 5 * time.Second,
			[]string{"a: context canceled", "b: context canceled", "c: context canceled"}},
		// Backoffs to 3.15 s, the next (5 s) cut short.
		{"whole queue, store failing", base, false, failFirst(1000), 5 * time.Second,
			[]string{"a: database is locked", "b: database is locked", "c: database is locked"}},
		// a is tried at 0 and 0.1 to 3.1 s, its next try (6.3 s) would be
		// past 5 s; b at 3.1 to 4.6 s (next 6.2 s); c at 4.6 to 4.9 s
		// (next 5.3 s).
		{"each alone, store failing", eachAlone, false, failFirst(1000), 4900 * time.Millisecond,
			[]string{"a: database is locked", "b: database is locked", "c: database is locked"}},
		// a fails at 3 s and 6.1 s; its next try would be past 5 s. b and
		// c are not tried.
		{"each alone, slow store", eachAlone, false, slowFailing, 6100 * time.Millisecond,
			[]string{"a: database is locked", "b: writer closed", "c: writer closed"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeStore{fail: tt.fail}
				if tt.hold {
					f.hold = make(chan struct{})
				}
				w := newTestWriter(t, tt.cfg, f, nil)
				stop := serve(w)
				mustPut(t, w, "a", "b", "c")
				synctest.Wait()
				began := time.Now()
				stop()
				if took := time.Since(began); took != tt.took {
					t.Errorf("Close returned after %s, want %s", took, tt.took)
				}
				if err := w.Wait(t.Context()); !errors.Is(err, ErrLost) {
					t.Errorf("Wait after the loss: %v, want %v", err, ErrLost)
				}
				_, committed, gaveUp, _ := f.snapshot()
				if len(committed) != 0 {
					t.Errorf("committed %q", committed)
				}
				if d := cmp.Diff(tt.gaveUp, gaveUp); d != "" {
					t.Errorf("given up (-want +got):\n%s", d)
				}
			})
		})
	}
}

// TestQueued: the Queued hook follows the items queued or being written.
func TestQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeStore{hold: make(chan struct{})}
		var mu sync.Mutex
		var last int
		w, err := New(base, Deps[string]{Write: f.write, Queued: func(n int) { mu.Lock(); last = n; mu.Unlock() }})
		if err != nil {
			t.Fatal(err)
		}
		queued := func() int { mu.Lock(); defer mu.Unlock(); return last }
		stop := serve(w)
		mustPut(t, w, "a", "b")
		synctest.Wait()
		mustPut(t, w, "c")
		if n := queued(); n != 3 {
			t.Errorf("queued %d while a and b are written and c waits, want 3", n)
		}
		f.release()
		if err := w.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := queued(); n != 0 {
			t.Errorf("queued %d once all is written, want 0", n)
		}
		stop()
	})
}
