package sipserver

import (
	"strings"
	"sync"
	"time"
)

// maxTrackedNonces bounds the replay table (about 100 bytes a nonce).
const maxTrackedNonces = 1 << 18

// nonceCounts is the replay table: the highest nonce-count seen of each
// nonce in use (RFC 7616 §3.4.5). It holds at most max nonces in two
// generations: new nonces go into the current one, and when that is
// half of max the previous generation is dropped whole and the current
// one takes its place. Dropping a generation costs nothing per request,
// where finding the single oldest nonce meant a scan of the whole table
// under its lock on every new nonce once it was full: at 12,000
// REGISTERs a second the table filled in under a minute and every
// REGISTER then waited for that scan.
//
// A nonce whose count was dropped must not be accepted again from
// nc=1 (a replay), so the table keeps a floor: the latest issue time of
// any nonce dropped. A nonce not in the table and issued at or before the
// floor is stale; its client is challenged again (stale=true) and answers
// with a fresh one, which RFC 7616 §3.3 clients do without asking anyone.
type nonceCounts struct {
	max int

	mu       sync.Mutex // guards the following
	cur, old map[string]*nonceUse
	// curNewest and oldNewest are the latest issue times in each
	// generation.
	curNewest, oldNewest time.Time
	floor                time.Time
}

type nonceUse struct {
	count   uint64
	expires time.Time
}

func newNonceCounts(max int) *nonceCounts {
	return &nonceCounts{max: max, cur: map[string]*nonceUse{}, old: map[string]*nonceUse{}}
}

// use records that nonce, issued at issued and good until expires, was
// used with count nc: nil when the count is new and higher than any seen,
// errDigestReplay when it is not, errDigestStale when the nonce's count
// may have been dropped.
func (t *nonceCounts) use(nonce string, nc uint64, issued, expires time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	u, tracked := t.cur[nonce]
	if !tracked {
		u, tracked = t.old[nonce]
	}
	if tracked {
		if nc <= u.count {
			return errDigestReplay
		}
		u.count = nc // through the pointer: the key stays as it was
		return nil
	}
	if !t.floor.IsZero() && !issued.After(t.floor) {
		return errDigestStale
	}
	if len(t.cur) >= max(t.max/2, 1) {
		t.rotateLocked()
	}
	// The nonce is a slice of the request's Authorization header; the key
	// outlives the request, so it gets a copy of its own rather than
	// keeping the whole header (about 300 bytes per nonce) alive.
	t.cur[strings.Clone(nonce)] = &nonceUse{count: nc, expires: expires}
	if issued.After(t.curNewest) {
		t.curNewest = issued
	}
	return nil
}

// rotateLocked drops the previous generation, raising the floor to its
// newest nonce, and starts a new current one.
func (t *nonceCounts) rotateLocked() {
	if len(t.old) > 0 && t.oldNewest.After(t.floor) {
		t.floor = t.oldNewest
	}
	t.old, t.oldNewest = t.cur, t.curNewest
	t.cur, t.curNewest = make(map[string]*nonceUse, len(t.old)), time.Time{}
}

// sweep forgets nonces past their expiry: they draw a stale challenge
// whether tracked or not.
func (t *nonceCounts) sweep(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range []map[string]*nonceUse{t.cur, t.old} {
		for k, u := range m {
			if now.After(u.expires) {
				delete(m, k)
			}
		}
	}
}

// len is how many nonces the table holds.
func (t *nonceCounts) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.cur) + len(t.old)
}

// keys are the nonces the table holds (tests).
func (t *nonceCounts) keys() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, m := range []map[string]*nonceUse{t.cur, t.old} {
		for k := range m {
			out = append(out, k)
		}
	}
	return out
}
