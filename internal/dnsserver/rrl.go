package dnsserver

import (
	"net/netip"
	"sync"
	"time"
)

// rrlAction is the response rate limiter's verdict on one UDP response.
type rrlAction int

const (
	rrlAllow rrlAction = iota
	rrlSlip            // send it truncated (TC=1, no data)
	rrlDrop            // send nothing
)

// Response rate limiting defaults, after BIND's RRL: a limited client
// prefix gets every slip-th response truncated and the rest dropped.
const (
	rrlSlipEvery  = 2
	rrlMaxBuckets = 1 << 16
	// rrlSweepEvery bounds how often the table is scanned for idle
	// entries, so a flood of new prefixes cannot make every packet pay for
	// a full scan.
	rrlSweepEvery = time.Second
)

// limiter is a token bucket per client network. Spoofed floods come from
// addresses the attacker does not own; grouping per /24 (IPv4) and /56
// (IPv6, a typical end-site allocation) keeps one victim one bucket.
type limiter struct {
	rate  float64 // tokens per second
	burst float64
	max   int // bound on len(buckets)

	mu        sync.Mutex // guards the following
	buckets   map[netip.Prefix]*bucket
	overflow  bucket // shared by new prefixes while the table is full of busy ones
	lastSweep time.Time
}

type bucket struct {
	tokens  float64
	last    time.Time
	limited uint64 // over-limit responses so far, for the slip cadence
}

func newLimiter(perSecond int, maxBuckets int) *limiter {
	return &limiter{
		rate:    float64(perSecond),
		burst:   float64(perSecond), // one second's worth
		max:     maxBuckets,
		buckets: make(map[netip.Prefix]*bucket),
	}
}

// clientPrefix is the network a client address is accounted to.
func clientPrefix(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 56
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits) // the zero Prefix for an invalid address: one shared bucket
	return p
}

// take charges one response to client at time now.
func (l *limiter) take(client netip.Addr, now time.Time) rrlAction {
	key := clientPrefix(client)
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= time.Minute {
		// Let the table shrink after a burst of clients has gone.
		l.sweep(now)
	}
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.max && now.Sub(l.lastSweep) >= rrlSweepEvery {
			l.sweep(now)
		}
		if len(l.buckets) >= l.max {
			b = &l.overflow
			if b.last.IsZero() {
				b.tokens, b.last = l.burst, now
			}
		} else {
			b = &bucket{tokens: l.burst, last: now}
			l.buckets[key] = b
		}
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(l.burst, b.tokens+d.Seconds()*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return rrlAllow
	}
	b.limited++
	if b.limited%rrlSlipEvery == 0 {
		return rrlSlip
	}
	return rrlDrop
}

// sweep forgets the buckets that would be full by now: they carry no state
// a fresh bucket would not. Called with l.mu held.
func (l *limiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// size is the number of tracked prefixes, for tests.
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// rateLimit is the limiter's verdict for a response to client, counted in
// the metrics. TCP is never limited: a TCP client has proven its address.
func (s *Server) rateLimit(client netip.Addr, tcp bool) rrlAction {
	if tcp || s.rrl == nil {
		return rrlAllow
	}
	a := s.rrl.take(client, s.now())
	switch a {
	case rrlSlip:
		s.metrics.rateLimited.WithLabelValues("slip").Inc()
	case rrlDrop:
		s.metrics.rateLimited.WithLabelValues("drop").Inc()
	}
	return a
}
