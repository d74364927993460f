package zdial

import (
	"container/list"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// lru is a map bounded to max entries that evicts the least recently used.
// Per-address and per-username state is keyed by attacker-chosen values, so
// it must never grow without bound. Not safe for concurrent use.
type lru[K comparable, V any] struct {
	max int
	ll  *list.List // of *lruEntry; front is most recent
	m   map[K]*list.Element
}

type lruEntry[K comparable, V any] struct {
	key K
	val V
}

func newLRU[K comparable, V any](max int) *lru[K, V] {
	return &lru[K, V]{max: max, ll: list.New(), m: make(map[K]*list.Element)}
}

// get returns the value for k, marking it recently used.
func (l *lru[K, V]) get(k K) (*V, bool) {
	e, ok := l.m[k]
	if !ok {
		return nil, false
	}
	l.ll.MoveToFront(e)
	return &e.Value.(*lruEntry[K, V]).val, true
}

// add inserts k (which must be absent), evicting the oldest entry when full.
func (l *lru[K, V]) add(k K, v V) *V {
	if l.ll.Len() >= l.max {
		l.removeOldest()
	}
	ent := &lruEntry[K, V]{key: k, val: v}
	l.m[k] = l.ll.PushFront(ent)
	return &ent.val
}

// oldest returns the least recently used entry.
func (l *lru[K, V]) oldest() (K, *V, bool) {
	e := l.ll.Back()
	if e == nil {
		var zero K
		return zero, nil, false
	}
	ent := e.Value.(*lruEntry[K, V])
	return ent.key, &ent.val, true
}

func (l *lru[K, V]) removeOldest() {
	if e := l.ll.Back(); e != nil {
		l.ll.Remove(e)
		delete(l.m, e.Value.(*lruEntry[K, V]).key)
	}
}

func (l *lru[K, V]) len() int { return l.ll.Len() }

// ipLimiter is a token bucket per client address (per /64 for IPv6, since
// one host usually holds a whole /64). Buckets are kept in a bounded LRU;
// an idle bucket that has refilled is dropped, as a fresh one is the same.
type ipLimiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex // guards buckets
	buckets *lru[netip.Prefix, *rate.Limiter]
}

func newIPLimiter(limit rate.Limit, burst, max int) *ipLimiter {
	return &ipLimiter{limit: limit, burst: burst, buckets: newLRU[netip.Prefix, *rate.Limiter](max)}
}

// allow takes one token for ip at now, or reports how long to wait.
func (l *ipLimiter) allow(ip netip.Addr, now time.Time) (time.Duration, bool) {
	key := addrKey(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	// Drop at most one refilled bucket per call: keeps the map to active
	// addresses at O(1) cost.
	if k, lim, ok := l.buckets.oldest(); ok && k != key && (*lim).TokensAt(now) >= float64(l.burst) {
		l.buckets.removeOldest()
	}
	lim, ok := l.buckets.get(key)
	if !ok {
		lim = l.buckets.add(key, rate.NewLimiter(l.limit, l.burst))
	}
	r := (*lim).ReserveN(now, 1)
	if !r.OK() {
		return time.Minute, false
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

func addrKey(ip netip.Addr) netip.Prefix {
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p
	}
	p, _ := ip.Prefix(ip.BitLen())
	return p
}

// phantomLocks mirrors the store's per-account lockout for usernames that
// do not exist. Without it, failing MaxFailures times and then seeing (or
// not seeing) "account locked" would tell anyone which usernames are real.
type phantomLocks struct {
	maxFailures int
	lockout     time.Duration

	mu sync.Mutex // guards m
	m  *lru[string, phantom]
}

type phantom struct {
	failures    int
	lockedUntil time.Time
}

func newPhantomLocks(maxFailures int, lockout time.Duration, max int) *phantomLocks {
	return &phantomLocks{maxFailures: maxFailures, lockout: lockout, m: newLRU[string, phantom](max)}
}

// lockedFor reports how long username stays locked at now (0: not locked).
func (p *phantomLocks) lockedFor(username string, now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ph, ok := p.m.get(username); ok && ph.lockedUntil.After(now) {
		return ph.lockedUntil.Sub(now)
	}
	return 0
}

// fail counts a failed login for username, locking it like a real account.
func (p *phantomLocks) fail(username string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ph, ok := p.m.get(username)
	if !ok {
		ph = p.m.add(username, phantom{})
	}
	ph.failures++
	if ph.failures >= p.maxFailures {
		ph.failures = 0
		ph.lockedUntil = now.Add(p.lockout)
	}
}
