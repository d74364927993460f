package sipserver

import (
	"slices"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/relay"
	"github.com/z5vrs/z5/internal/sipcore"
	"github.com/z5vrs/z5/internal/store"
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

// empty reports whether no call goes through this node.
func (cs *calls) empty() bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.byID) == 0
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

// Ends of a call, as recorded in the call detail record.
const (
	endBye          = sipcore.EndBye
	endCancel       = sipcore.EndCancel
	endBusy         = sipcore.EndBusy
	endUnavailable  = sipcore.EndUnavailable
	endNoAnswer     = sipcore.EndNoAnswer
	endMediaTimeout = sipcore.EndMediaTimeout
	endError        = sipcore.EndError
)

// call is one call through the proxy, from INVITE to its end.
type call struct {
	id     string // Call-ID
	rc     *relay.Call
	record store.Call
	// transit: a call another node forwarded here. That node anchors the
	// media and keeps the call record; this one only routes to its own
	// client (rc is nil, record unused).
	transit bool
	// relay: the first leg of a relay call (relaycall.go); leg2: a
	// station's second leg (trunk.go), which keeps no record of its own.
	relay *relayLeg
	leg2  *secondLeg
	// decorate, when set, finishes each INVITE the call forks (trunk.go:
	// the calling number, the 911 location).
	decorate func(*sipmsg.Request)
	// trunkAuth: the call's forks go to a trunk with digest credentials.
	trunkAuth bool

	mu        sync.Mutex // guards the following
	callerTag string
	calleeTag string
	caller    party
	callee    party
	early     map[string]party // early dialogs by callee To tag
	answered  bool
	ended     bool
	acked     chan struct{} // closed once the caller's ACK of the 2xx is forwarded
}

// ackDone is closed once the ACK for the call's 2xx has been forwarded.
func (c *call) ackDone() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.acked == nil {
		c.acked = make(chan struct{})
	}
	return c.acked
}

func (c *call) markAcked() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.acked == nil {
		c.acked = make(chan struct{})
	}
	select {
	case <-c.acked:
	default:
		close(c.acked)
	}
}

// ackWait bounds how long a caller's BYE waits for its ACK to go first.
const ackWait = 500 * time.Millisecond

// party is one end of a call as the proxy needs it to route and to speak
// for the other end (BYE on media timeout).
type party struct {
	flow     flowRef
	deviceID int64
	target   sipmsg.Uri // remote target: the party's Contact
	// self is the party's own name-addr with its tag (its From in its
	// requests); peer is the other side's as this party sees it.
	self, peer sipmsg.ToHeader
	cseq       uint32 // highest CSeq the party has sent
}

// side is the relay side of a party.
func (c *call) sideOf(fromCaller bool) relay.Side {
	if fromCaller {
		return relay.SideA
	}
	return relay.SideB
}

// mediaTimeout is the relay's report that an answered call's media
// stopped: hang up both parties.
func (s *Server) mediaTimeout(c *call) {
	c.mu.Lock()
	if c.ended || !c.answered {
		c.mu.Unlock()
		return
	}
	caller, callee := c.caller, c.callee
	caller.cseq, callee.cseq = c.caller.cseq, c.callee.cseq
	c.mu.Unlock()
	s.log.Info("media timeout: hanging up", "call_id", c.id)
	// Toward the callee we speak as the caller and vice versa, each in the
	// other's CSeq space.
	s.sendAndForget(s.newInDialog(sipmsg.BYE, callee, c.id, caller.cseq+1))
	s.sendAndForget(s.newInDialog(sipmsg.BYE, caller, c.id, callee.cseq+1))
	s.end(c, endMediaTimeout, 0)
}

// end finishes a call once: releases the relay ports and completes the
// call detail record.
func (s *Server) end(c *call, reason string, status int) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended = true
	answered := c.answered
	c.mu.Unlock()
	s.calls.remove(c)
	if c.transit {
		// The forwarding node accounts for the call.
		s.log.Info("forwarded call ended", "call_id", c.id, "reason", reason)
		return
	}
	if c.leg2 != nil {
		s.secondLegEnded(c, reason, answered)
		return
	}
	if c.relay != nil {
		s.relayEnded(c, answered)
	}
	var stats []store.StreamStats
	if c.rc != nil {
		for _, st := range c.rc.Stats() {
			stats = append(stats, store.StreamStats(st))
		}
		if err := c.rc.Close(); err != nil {
			s.log.Warn("relay call close", "call_id", c.id, "error", err)
		}
		s.m.calls.Dec()
	}
	c.mu.Lock()
	c.record.MediaStats = stats
	c.record.EndedAt = s.now()
	c.record.EndReason = reason
	if status != 0 && !answered {
		c.record.Status = status
	}
	rec := c.record
	c.mu.Unlock()
	// Queued behind the call's insert and answer (records.go).
	if c.relay != nil {
		s.records.change(c.id, func(r *store.Call) { *r = mergeRelayRecord(rec, *r) })
	} else {
		s.records.replace(rec)
	}
	s.m.callsTotal.WithLabelValues(reason).Inc()
	s.log.Info("call ended", "call_id", c.id, "reason", reason, "status", rec.Status, "duration", durationOf(rec))
}

func durationOf(r store.Call) time.Duration {
	if r.AnsweredAt.IsZero() {
		return 0
	}
	return r.EndedAt.Sub(r.AnsweredAt).Round(time.Millisecond)
}

// endAll ends every call (server shutdown).
func (s *Server) endAll() {
	for _, c := range s.calls.all() {
		s.end(c, endError, 0)
	}
}
