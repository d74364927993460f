package floodguard

import (
	"math"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/z5vrs/z5/internal/lru"
)

// Limiter is a token bucket per source (Key: an IPv4 address or IPv6 /64):
// each source may send Rate requests per second with bursts of Burst, and
// one source over its rate does not slow any other. Buckets live in a
// bounded LRU; one that has refilled is the same as a fresh one and is
// dropped when it reaches the end of the list.
type Limiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex // guards buckets
	buckets *lru.Map[netip.Prefix, *rate.Limiter]
}

// NewLimiter returns a limiter of perSecond with burst per source, holding
// at most maxSources buckets (at least one). perSecond <= 0 means no
// limit: Allow always says yes.
func NewLimiter(perSecond float64, burst, maxSources int) *Limiter {
	lim := rate.Limit(perSecond)
	if perSecond <= 0 {
		lim = rate.Inf
	}
	return &Limiter{limit: lim, burst: max(burst, 1), buckets: lru.New[netip.Prefix, *rate.Limiter](maxSources)}
}

// Allow takes one token for ip now. When there is none it reports how long
// until there will be (the Retry-After a client is told).
func (l *Limiter) Allow(ip netip.Addr) (retryAfter time.Duration, ok bool) {
	if l.limit == rate.Inf {
		return 0, true
	}
	now := time.Now()
	key := Key(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	// Drop at most one refilled bucket per call: keeps the table to the
	// active sources at constant cost.
	if k, lim, ok := l.buckets.Oldest(); ok && k != key && lim.TokensAt(now) >= float64(l.burst) {
		l.buckets.RemoveOldest()
	}
	lim := l.buckets.GetOrAdd(key, func() *rate.Limiter { return rate.NewLimiter(l.limit, l.burst) })
	if lim.AllowN(now, 1) {
		return 0, true
	}
	// Time until one token: (1 - tokens) / rate.
	need := (1 - lim.TokensAt(now)) / float64(l.limit)
	return time.Duration(math.Ceil(need * float64(time.Second))), false
}

// Tracked is the number of buckets held.
func (l *Limiter) Tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buckets.Len()
}

// RetrySeconds is d rounded up to whole seconds, at least 1: the value of
// a Retry-After header (a client retrying at the floor would be refused
// again).
func RetrySeconds(d time.Duration) int {
	s := math.Ceil(d.Seconds())
	switch {
	case s < 1:
		return 1
	case s > math.MaxInt32:
		return math.MaxInt32
	}
	return int(s)
}
