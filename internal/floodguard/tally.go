package floodguard

import (
	"sync"
	"time"

	"github.com/z5vrs/z5/internal/lru"
)

// Tally counts events per string key in a sliding window, for limits
// whose key is not just a source address: failures per account, per
// (source, user) pair. Like Guard it holds at most MaxSources keys, the
// least recently active evicted first, and reads time from time.Now.
type Tally struct {
	window time.Duration

	mu   sync.Mutex // guards keys
	keys *lru.Map[string, *window]
}

// NewTally returns a tally over a window of size, holding at most maxKeys
// keys (at least one).
func NewTally(size time.Duration, maxKeys int) *Tally {
	return &Tally{window: size, keys: lru.New[string, *window](maxKeys)}
}

// Add counts one event for key now and returns the events in the window
// ending now, this one included.
func (t *Tally) Add(key string) float64 {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.keys.GetOrAdd(key, func() *window { return &window{} })
	return w.add(now, t.window)
}

// Count returns the events for key in the window ending now.
func (t *Tally) Count(key string) float64 {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	w, ok := t.keys.Peek(key)
	if !ok {
		return 0
	}
	return w.count(now, t.window)
}

// Reset forgets key's events.
func (t *Tally) Reset(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if w, ok := t.keys.Peek(key); ok {
		*w = window{}
	}
}

// Tracked is the number of keys held.
func (t *Tally) Tracked() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.keys.Len()
}

// count returns the events in the sliding window ending at now without
// adding one.
func (w *window) count(now time.Time, size time.Duration) float64 {
	elapsed := now.Sub(w.start)
	switch {
	case w.start.IsZero() || elapsed >= 2*size || elapsed < 0:
		return 0
	case elapsed >= size:
		// The current fixed window is now the previous one.
		overlap := 1 - float64(elapsed-size)/float64(size)
		return float64(w.cur) * max(overlap, 0)
	}
	overlap := 1 - float64(elapsed)/float64(size)
	return float64(w.prev)*max(overlap, 0) + float64(w.cur)
}
