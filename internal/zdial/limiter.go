package zdial

import (
	"net/netip"
	"sync"
	"time"

	"github.com/z5vrs/z5/internal/lru"
)

// sourceKey is the source a client address counts as: the address itself
// for IPv4, its /64 for IPv6 (one host or one home usually holds a whole
// /64, and rotating within it must not buy fresh limits). IPv4-mapped
// addresses count as IPv4; a zone is dropped.
func sourceKey(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap().WithZone("")
	bits := ip.BitLen()
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// buckets is a leaky bucket per key: each take adds one to the key's level,
// which drains at rate per second; a take that would lift the level above
// capacity is refused with the time until it would fit. It is a token
// bucket turned upside down, with one thing a token bucket lacks: giveBack
// undoes a take, so a limit on failures can reserve a failure before a
// password is checked and release it when the password was right.
// Buckets live in a bounded LRU; a drained bucket is the same as a fresh
// one and is dropped when it reaches the end of the list.
type buckets[K comparable] struct {
	capacity float64
	rate     float64 // drained per second

	mu sync.Mutex // guards m
	m  *lru.Map[K, *level]
}

type level struct {
	n  float64
	at time.Time // when n was last brought up to date
}

// newBuckets allows capacity takes at once per key, refilled at perSecond.
func newBuckets[K comparable](capacity int, perSecond float64, maxKeys int) *buckets[K] {
	return &buckets[K]{capacity: float64(capacity), rate: perSecond, m: lru.New[K, *level](maxKeys)}
}

func (b *buckets[K]) drain(l *level, now time.Time) {
	if d := now.Sub(l.at); d > 0 {
		l.n = max(0, l.n-d.Seconds()*b.rate)
		l.at = now
	}
}

// take adds one to k's level at now, or reports how long until it could.
func (b *buckets[K]) take(k K, now time.Time) (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Drop at most one drained bucket per call: keeps the table to the
	// active keys at constant cost.
	if old, l, found := b.m.Oldest(); found && old != k {
		if b.drain(l, now); l.n == 0 {
			b.m.RemoveOldest()
		}
	}
	l := b.m.GetOrAdd(k, func() *level { return &level{at: now} })
	b.drain(l, now)
	if over := l.n + 1 - b.capacity; over > 1e-9 {
		return time.Duration(over / b.rate * float64(time.Second)), false
	}
	l.n++
	return 0, true
}

// wouldTake reports whether take would succeed now, taking nothing.
func (b *buckets[K]) wouldTake(k K, now time.Time) (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.m.Get(k)
	if !ok {
		return 0, true
	}
	b.drain(l, now)
	if over := l.n + 1 - b.capacity; over > 1e-9 {
		return time.Duration(over / b.rate * float64(time.Second)), false
	}
	return 0, true
}

// giveBack undoes one take of k.
func (b *buckets[K]) giveBack(k K, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l, ok := b.m.Get(k); ok {
		b.drain(l, now)
		l.n = max(0, l.n-1)
	}
}

// locks counts failed logins per key and locks a key for lockout once it
// has maxFailures; the count starts again when a lock runs out, and a
// success clears it. Keys are usernames that do not exist (mirroring the
// store's per-account lock, so "account locked" does not tell anyone which
// names are real) and (source, username) pairs.
//
// An attempt is counted before its password is checked (reserve), so
// concurrent guesses cannot all pass the check while the first ones are
// still hashing: exactly maxFailures passwords are checked per lock.
type locks struct {
	maxFailures int
	lockout     time.Duration

	mu sync.Mutex // guards m
	m  *lru.Map[string, *lockState]
}

type lockState struct {
	failures    int
	lockedUntil time.Time
}

func newLocks(maxFailures int, lockout time.Duration, maxKeys int) *locks {
	return &locks{maxFailures: maxFailures, lockout: lockout, m: lru.New[string, *lockState](maxKeys)}
}

// lockedFor reports how long key stays locked at now (0: not locked).
func (t *locks) lockedFor(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st, ok := t.m.Get(key); ok && st.lockedUntil.After(now) {
		return st.lockedUntil.Sub(now)
	}
	return 0
}

// reserve counts one failure for key at now and reports 0, or, when key is
// locked, counts nothing and reports how long the lock lasts. The attempt
// that reaches maxFailures sets the lock and is still let through.
func (t *locks) reserve(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.m.GetOrAdd(key, func() *lockState { return &lockState{} })
	if !st.lockedUntil.IsZero() {
		if now.Before(st.lockedUntil) {
			return st.lockedUntil.Sub(now)
		}
		*st = lockState{}
	}
	st.failures++
	if st.failures >= t.maxFailures {
		st.lockedUntil = now.Add(t.lockout)
	}
	return 0
}

// undo takes back a reservation whose password was never checked.
func (t *locks) undo(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st, ok := t.m.Get(key); ok && st.failures > 0 {
		st.failures--
		if st.failures < t.maxFailures {
			st.lockedUntil = time.Time{}
		}
	}
}

// clear forgets key's failures after a successful login.
func (t *locks) clear(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st, ok := t.m.Get(key); ok {
		*st = lockState{}
	}
}
