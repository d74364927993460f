package sipserver

import (
	"slices"
	"sync"
)

// calls are the calls through this node by Call-ID.
type calls struct {
	mu   sync.Mutex // guards byID
	byID map[string]*call
}

func newCalls() *calls { return &calls{byID: map[string]*call{}} }

func (cs *calls) get(callID string) *call {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.byID[callID]
}

// add records c unless a call with its Call-ID exists.
func (cs *calls) add(c *call) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if _, dup := cs.byID[c.id]; dup {
		return false
	}
	cs.byID[c.id] = c
	return true
}

// remove forgets c (not a later call that reused its Call-ID).
func (cs *calls) remove(c *call) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.byID[c.id] == c {
		delete(cs.byID, c.id)
	}
}

func (cs *calls) all() []*call {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := make([]*call, 0, len(cs.byID))
	for _, c := range cs.byID {
		out = append(out, c)
	}
	return out
}

// countOf counts the calls each number takes part in.
func (cs *calls) countOf(a, b string) (na, nb int) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, c := range cs.byID {
		// From and To are set when the call is made and never change.
		parties := []string{c.record.From, c.record.To}
		if a != "" && slices.Contains(parties, a) {
			na++
		}
		if b != "" && slices.Contains(parties, b) {
			nb++
		}
	}
	return na, nb
}
