package sipserver

import (
	"math"
	"math/bits"
	"sync/atomic"
)

// nonceSlotCount is how many nonces the replay table follows at once:
// 4 MiB. At 24,000 challenges a second a nonce keeps its slot for 22 s;
// one answered later is stale, and its client retries with a fresh one.
const nonceSlotCount = 1 << 19

// nonceCounts is the replay table: the highest nonce-count seen of each
// nonce (RFC 7616 §3.4.5). Every nonce carries an id, numbered as they are
// issued (newNonce, under the nonce's MAC), and owns slot id mod the
// table's size until a nonce issued later takes it; the slot holds the
// id's generation (id / size) beside the count, so a nonce whose slot has
// been taken is stale, never accepted again from nc=1. This is how
// Kamailio's auth module keeps its counts (nonce ids and nc_array): no
// map, no allocation, no lock, and no sweep, where a map of nonces had to
// find an entry to drop once full.
type nonceCounts struct {
	next  atomic.Uint64
	shift uint
	slots []atomic.Uint64 // generation<<32 | highest nonce-count seen
}

// newNonceCounts makes a table of n slots, n a power of two.
func newNonceCounts(n int) *nonceCounts {
	if n <= 0 || n&(n-1) != 0 {
		panic("nonceCounts: size must be a power of two")
	}
	return &nonceCounts{shift: uint(bits.TrailingZeros(uint(n))), slots: make([]atomic.Uint64, n)}
}

// issue numbers a new nonce and gives it its slot, with no count yet.
func (t *nonceCounts) issue() uint64 {
	id := t.next.Add(1) - 1
	t.slot(id).Store(t.gen(id) << 32)
	return id
}

func (t *nonceCounts) slot(id uint64) *atomic.Uint64 {
	return &t.slots[id&uint64(len(t.slots)-1)]
}

func (t *nonceCounts) gen(id uint64) uint64 { return uint64(uint32(id >> t.shift)) }

// use records that nonce id was used with count nc: nil when nc is higher
// than any seen, errDigestReplay when it is not, errDigestStale when a
// later nonce has taken the slot.
func (t *nonceCounts) use(id, nc uint64) error {
	if nc == 0 || nc > math.MaxUint32 {
		return errDigestReplay
	}
	s, gen := t.slot(id), t.gen(id)
	for {
		v := s.Load()
		switch {
		case v>>32 != gen:
			return errDigestStale
		case nc <= v&math.MaxUint32:
			return errDigestReplay
		case s.CompareAndSwap(v, gen<<32|nc):
			return nil
		}
	}
}
