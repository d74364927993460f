package sipserver

import (
	"cmp"
	"slices"
	"time"

	"github.com/z5vrs/z5/internal/relay"
)

// The operator's live view (z5d admin registrations, calls --live) reads
// what this node holds in memory now, not the store: the bindings with
// the flows they use and the calls with the relay's counters. Nothing here
// carries credentials: no digest data, contact parameters or keys.

// Registration is one live binding as an operator sees it.
type Registration struct {
	Number    string
	DeviceID  int64
	Kind      string // device kind: "z5" or "sip"
	Transport string // "TCP", "TLS" or "UDP"
	Source    string // the device's address as the node sees it
	Since     time.Time
	Expires   time.Time
}

// Registrations returns the node's live bindings, by number then since.
func (s *Server) Registrations() []Registration {
	return s.reg.snapshot()
}

func (r *registrar) snapshot() []Registration {
	now := r.now()
	r.mu.Lock()
	var out []Registration
	for _, l := range r.byNumber {
		for _, b := range l {
			if !b.Expires.After(now) || !b.flow.alive(r.t) || b.flow.peer != "" {
				continue
			}
			out = append(out, Registration{Number: b.Number, DeviceID: b.DeviceID, Kind: b.Kind,
				Transport: b.flow.transport, Source: b.flow.dest, Since: b.since, Expires: b.Expires})
		}
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b Registration) int {
		return cmp.Or(cmp.Compare(a.Number, b.Number), a.Since.Compare(b.Since), cmp.Compare(a.DeviceID, b.DeviceID))
	})
	return out
}

// ActiveCall is one call this node anchors, as an operator sees it.
type ActiveCall struct {
	CallID     string
	From, To   string // numbers
	Node       string
	StartedAt  time.Time
	AnsweredAt time.Time // zero while ringing
	Streams    []relay.StreamStats
}

// ActiveCalls returns the calls this node anchors now, oldest first.
// Calls only passing through (another node anchors their media and keeps
// their record) are left to that node.
func (s *Server) ActiveCalls() []ActiveCall {
	var out []ActiveCall
	for _, c := range s.calls.all() {
		if c.transit {
			continue
		}
		c.mu.Lock()
		ended, rec, rc := c.ended, c.record, c.rc
		c.mu.Unlock()
		if ended {
			continue
		}
		a := ActiveCall{CallID: rec.CallID, From: rec.From, To: rec.To, Node: rec.Node,
			StartedAt: rec.StartedAt, AnsweredAt: rec.AnsweredAt}
		if rc != nil {
			a.Streams = rc.Stats()
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b ActiveCall) int {
		return cmp.Or(a.StartedAt.Compare(b.StartedAt), cmp.Compare(a.CallID, b.CallID))
	})
	return out
}
