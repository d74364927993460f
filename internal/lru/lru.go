// Package lru is a map bounded to a maximum number of entries that evicts
// the least recently used one. The per-source and per-name state of the
// flood guard and of ZDial's login limits is keyed by whatever a sender
// chooses, so none of it may grow without bound. It is not safe for
// concurrent use (its owner's lock guards it) and not a cache with expiry:
// owners decide when an entry is stale.
package lru

import "container/list"

// Map holds at most Max entries; the zero value is not usable (New).
type Map[K comparable, V any] struct {
	max int
	ll  *list.List // of *entry; front is most recent
	m   map[K]*list.Element
}

type entry[K comparable, V any] struct {
	key K
	val V
}

// New returns an empty map of at most max entries (at least one).
func New[K comparable, V any](max int) *Map[K, V] {
	return &Map[K, V]{max: max, ll: list.New(), m: make(map[K]*list.Element)}
}

// Get returns the value for k and marks it recently used.
func (l *Map[K, V]) Get(k K) (V, bool) {
	e, ok := l.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	l.ll.MoveToFront(e)
	return e.Value.(*entry[K, V]).val, true
}

// Peek returns the value for k without marking it used.
func (l *Map[K, V]) Peek(k K) (V, bool) {
	e, ok := l.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	return e.Value.(*entry[K, V]).val, true
}

// Add inserts k, which must be absent, as the most recently used entry,
// evicting the least recently used one when full; it reports whether one
// was evicted.
func (l *Map[K, V]) Add(k K, v V) (evicted bool) {
	if l.ll.Len() >= l.max {
		l.RemoveOldest()
		evicted = true
	}
	l.m[k] = l.ll.PushFront(&entry[K, V]{key: k, val: v})
	return evicted
}

// GetOrAdd returns the value for k, marking it recently used, or, when k
// is absent, adds the value create makes (evicting as Add does) and
// returns that.
func (l *Map[K, V]) GetOrAdd(k K, create func() V) V {
	if v, ok := l.Get(k); ok {
		return v
	}
	v := create()
	l.Add(k, v)
	return v
}

// Oldest returns the least recently used entry without marking it used.
func (l *Map[K, V]) Oldest() (K, V, bool) {
	e := l.ll.Back()
	if e == nil {
		var k K
		var v V
		return k, v, false
	}
	ent := e.Value.(*entry[K, V])
	return ent.key, ent.val, true
}

// Remove drops k, if present.
func (l *Map[K, V]) Remove(k K) {
	if e, ok := l.m[k]; ok {
		l.ll.Remove(e)
		delete(l.m, k)
	}
}

// RemoveOldest drops the least recently used entry, if any.
func (l *Map[K, V]) RemoveOldest() {
	if e := l.ll.Back(); e != nil {
		l.ll.Remove(e)
		delete(l.m, e.Value.(*entry[K, V]).key)
	}
}

// Each calls f for every entry, from the most recently used.
func (l *Map[K, V]) Each(f func(K, V)) {
	for e := l.ll.Front(); e != nil; e = e.Next() {
		ent := e.Value.(*entry[K, V])
		f(ent.key, ent.val)
	}
}

// Len is the number of entries.
func (l *Map[K, V]) Len() int { return l.ll.Len() }
