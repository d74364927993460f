package sipserver

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/z5vrs/z5/internal/floodguard"
)

// Connection admission. A customer's whole office usually reaches us from
// one public address (NAT), so a plain cap on connections per address
// either locks the office out or is too high to stop anything. Instead:
//
//   - only connections not yet authenticated count against the cap of
//     their source (floodguard.Key: an IPv4 address or an IPv6 /64); once
//     a digest-authenticated registration is bound to a connection it
//     leaves that count;
//   - when a source is at its cap, the connection of that source that
//     has made no progress for the longest (no complete message since it
//     was accepted or since its last one: a slow sender, a silent
//     connection) is closed to make room. A slow sender thus costs only
//     its own connection, never a newcomer's;
//   - an overall cap bounds the memory and file descriptors all
//     connections take, authenticated or not.

// connTable counts the server's TCP and TLS connections.
type connTable struct {
	maxUnauth int // per source, connections without an authenticated registration
	maxTotal  int // all connections

	mu     sync.Mutex // guards the following
	total  int
	unauth map[netip.Prefix]map[*connSlot]struct{}
}

func newConnTable(maxUnauth, maxTotal int) *connTable {
	return &connTable{maxUnauth: maxUnauth, maxTotal: maxTotal, unauth: map[netip.Prefix]map[*connSlot]struct{}{}}
}

// connSlot is one admitted connection's place in the table.
type connSlot struct {
	t        *connTable
	key      netip.Prefix
	progress atomic.Int64 // unix nanoseconds: accepted, or last complete message
	closer   func()       // closes the connection (eviction)

	// Under t.mu.
	counted  bool // in t.unauth
	released bool
}

// admit takes a slot for a connection from ip. At the source's cap it
// also returns the slot to evict (its connection is to be closed by the
// caller); at the overall cap it refuses (nil).
func (t *connTable) admit(ip netip.Addr, now time.Time, closer func()) (slot, evict *connSlot) {
	key := floodguard.Key(ip)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.total >= t.maxTotal {
		return nil, nil
	}
	set := t.unauth[key]
	if len(set) >= t.maxUnauth {
		evict = stalest(set)
		delete(set, evict)
		evict.counted = false
	}
	if set == nil {
		set = map[*connSlot]struct{}{}
		t.unauth[key] = set
	}
	slot = &connSlot{t: t, key: key, closer: closer, counted: true}
	slot.progress.Store(now.UnixNano())
	set[slot] = struct{}{}
	t.total++
	return slot, evict
}

// stalest is the slot that made no progress for the longest.
func stalest(set map[*connSlot]struct{}) *connSlot {
	var out *connSlot
	for s := range set {
		if out == nil || s.progress.Load() < out.progress.Load() {
			out = s
		}
	}
	return out
}

// touch records a complete message on the connection.
func (s *connSlot) touch(now time.Time) {
	if s != nil {
		s.progress.Store(now.UnixNano())
	}
}

// authenticate takes the connection out of its source's count: a
// digest-authenticated registration is bound to it.
func (s *connSlot) authenticate() {
	if s == nil {
		return
	}
	t := s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	t.uncountLocked(s)
}

// release frees the slot when the connection closes; safe to repeat.
func (s *connSlot) release() {
	t := s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.released {
		return
	}
	s.released = true
	t.total--
	t.uncountLocked(s)
}

func (t *connTable) uncountLocked(s *connSlot) {
	if !s.counted {
		return
	}
	s.counted = false
	set := t.unauth[s.key]
	delete(set, s)
	if len(set) == 0 {
		delete(t.unauth, s.key)
	}
}

// unauthenticated is the number of connections counted against ip's
// source cap.
func (t *connTable) unauthenticated(ip netip.Addr) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.unauth[floodguard.Key(ip)])
}

// size is the number of open connections.
func (t *connTable) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total
}
