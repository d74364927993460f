package floodguard

import "container/list"

// lru is a map bounded to max entries that evicts the least recently used.
// Every key here is chosen by whoever sends packets, so no map may grow
// without bound. Not safe for concurrent use: the owner's lock guards it.
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

// get returns the value for k and marks it recently used.
func (l *lru[K, V]) get(k K) (V, bool) {
	e, ok := l.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	l.ll.MoveToFront(e)
	return e.Value.(*lruEntry[K, V]).val, true
}

// peek returns the value for k without marking it used.
func (l *lru[K, V]) peek(k K) (V, bool) {
	e, ok := l.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	return e.Value.(*lruEntry[K, V]).val, true
}

// add inserts k, which must be absent, evicting the least recently used
// entry when full; it reports whether one was evicted.
func (l *lru[K, V]) add(k K, v V) (V, bool) {
	evicted := false
	if l.ll.Len() >= l.max {
		l.removeOldest()
		evicted = true
	}
	l.m[k] = l.ll.PushFront(&lruEntry[K, V]{key: k, val: v})
	return v, evicted
}

// oldest returns the least recently used entry.
func (l *lru[K, V]) oldest() (K, V, bool) {
	e := l.ll.Back()
	if e == nil {
		var k K
		var v V
		return k, v, false
	}
	ent := e.Value.(*lruEntry[K, V])
	return ent.key, ent.val, true
}

func (l *lru[K, V]) removeOldest() {
	if e := l.ll.Back(); e != nil {
		l.ll.Remove(e)
		delete(l.m, e.Value.(*lruEntry[K, V]).key)
	}
}

func (l *lru[K, V]) each(f func(K, V)) {
	for e := l.ll.Front(); e != nil; e = e.Next() {
		ent := e.Value.(*lruEntry[K, V])
		f(ent.key, ent.val)
	}
}

func (l *lru[K, V]) len() int { return l.ll.Len() }
