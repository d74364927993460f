// Package acd is the interpreter center's automatic call distribution as
// pure decisions: the interpreters' (agents') states and how events move
// them, which queued call is offered to which ready interpreter, and each
// waiting caller's place in the queue. The MCS (internal/sipserver) holds
// the calls and carries the decisions out; the queue and the agents'
// states live in the store, shared by every node (Store).
package acd

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"
)

// Agent states.
const (
	NotReady = "not_ready"
	Ready    = "ready"
	Offered  = "offered" // a call rings at the station
	InCall   = "in_call"
	WrapUp   = "wrap_up"
)

// States are every agent state, in the order metrics list them.
var States = []string{NotReady, Ready, Offered, InCall, WrapUp}

// Queue entry states.
const (
	Waiting  = "waiting"
	Offering = "offering" // offered to one or more agents, none answered yet
)

// Priorities of queued calls: emergency calls go first, then callers
// whose interpreter vanished mid-call (re-queued at the front), then the
// rest.
const (
	PriorityNormal    = 0
	PriorityRequeue   = 1
	PriorityEmergency = 2
)

// Agent is an interpreter as the distribution sees them.
type Agent struct {
	CAID   string
	State  string
	Since  time.Time // when State began: for Ready, how long idle
	CallID string    // the relay call offered or in progress
}

// Entry is a queued call.
type Entry struct {
	CallID    string
	Node      string // the MCS node holding the caller's transaction
	Priority  int
	QueuedAt  time.Time
	State     string // Waiting or Offering
	Direction string
	Dialed    string
	User      string // the VRS user's number
	Caller    string // calling number
	Display   string // the caller's display name
	UserIP    string
	Location  string // 911: "street, city, ST zip"
	// RequeueOf is the relay call this one continues (its interpreter
	// vanished mid-call): known to the node holding the call, for its
	// record; the shared queue carries only the priority.
	RequeueOf string
}

// Ordered returns the queue in service order: emergency first, then by
// queued time (Call-ID breaks ties, so every node sees one order).
func Ordered(q []Entry) []Entry {
	out := slices.Clone(q)
	slices.SortStableFunc(out, func(a, b Entry) int {
		if a.Priority != b.Priority {
			return b.Priority - a.Priority
		}
		if c := a.QueuedAt.Compare(b.QueuedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.CallID, b.CallID)
	})
	return out
}

// IdleOrder returns the ready agents, longest idle first.
func IdleOrder(agents []Agent) []Agent {
	var out []Agent
	for _, a := range agents {
		if a.State == Ready {
			out = append(out, a)
		}
	}
	slices.SortStableFunc(out, func(a, b Agent) int {
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		return cmp.Compare(a.CAID, b.CAID)
	})
	return out
}

// Offer is one decision of Pair: offer the call to these agents.
type Offer struct {
	CallID string
	Node   string
	CAIDs  []string
}

// Pair pairs the queue (in service order) with the ready agents (longest
// idle first): each waiting call gets the next agent; an emergency call
// gets every agent still free at once. Calls already being offered keep
// their agents and take none. Entries of every node are paired, so a node
// never hands an agent to its own later caller that an earlier caller on
// another node should have: each node then carries out only its own.
func Pair(queue []Entry, agents []Agent) []Offer {
	free := IdleOrder(agents)
	var out []Offer
	for _, e := range Ordered(queue) {
		if len(free) == 0 {
			break
		}
		if e.State != Waiting {
			continue
		}
		n := 1
		if e.Priority >= PriorityEmergency {
			n = len(free)
		}
		o := Offer{CallID: e.CallID, Node: e.Node}
		for _, a := range free[:n] {
			o.CAIDs = append(o.CAIDs, a.CAID)
		}
		free = free[n:]
		out = append(out, o)
	}
	return out
}

// Positions are each queued call's place in the queue, 1 for the next
// served. A call being offered keeps its place until answered.
func Positions(queue []Entry) map[string]int {
	out := make(map[string]int, len(queue))
	for i, e := range Ordered(queue) {
		out[e.CallID] = i + 1
	}
	return out
}

// Agent events.
const (
	EvReady       = "ready"        // the interpreter signs in / asks for calls
	EvNotReady    = "not_ready"    // the interpreter stops taking calls
	EvOffer       = "offer"        // a call is offered to the station
	EvAnswer      = "answer"       // the station answered the offer
	EvReject      = "reject"       // the station declined (486 and the like)
	EvRingTimeout = "ring_timeout" // the offer rang out (acd.ring_timeout)
	EvLost        = "lost"         // another station answered (911 offered to all) or the caller left
	EvCallEnd     = "call_end"     // the first leg ended
	EvWrapUpDone  = "wrap_up_done"
	EvVanished    = "vanished" // the station's flow was lost
)

// Action is what the MCS does besides setting the new state.
type Action struct {
	CancelOffer bool // CANCEL the INVITE ringing at the station
	Requeue     bool // the call goes back to waiting at its place
	RequeueHead bool // the call goes back to the head of the queue (the interpreter vanished mid-call)
	StartWrapUp bool // the wrap-up timer starts
}

// ErrTransition is an event the agent's state does not allow.
var ErrTransition = errors.New("acd: event not allowed in this state")

// Next is the agent state machine: the state after event ev in state st,
// and what to do.
func Next(st, ev string) (string, Action, error) {
	switch ev {
	case EvReady:
		switch st {
		case NotReady, Ready:
			return Ready, Action{}, nil
		case WrapUp:
			return Ready, Action{}, nil // the interpreter may cut wrap-up short
		}
	case EvNotReady:
		switch st {
		case NotReady, Ready, WrapUp:
			return NotReady, Action{}, nil
		case Offered:
			return NotReady, Action{CancelOffer: true, Requeue: true}, nil
		case InCall:
			// Not ready takes effect after the call: the call goes on.
			return InCall, Action{}, nil
		}
	case EvOffer:
		if st == Ready {
			return Offered, Action{}, nil
		}
	case EvAnswer:
		if st == Offered {
			return InCall, Action{}, nil
		}
	case EvReject, EvRingTimeout:
		if st == Offered {
			// An interpreter who lets a call ring out is away: not ready,
			// so the next call does not ring there too.
			return NotReady, Action{CancelOffer: true, Requeue: true}, nil
		}
	case EvLost:
		if st == Offered {
			return Ready, Action{CancelOffer: true}, nil
		}
	case EvCallEnd:
		if st == InCall {
			return WrapUp, Action{StartWrapUp: true}, nil
		}
	case EvWrapUpDone:
		if st == WrapUp {
			return Ready, Action{}, nil
		}
	case EvVanished:
		switch st {
		case Offered:
			return NotReady, Action{Requeue: true}, nil
		case InCall:
			return NotReady, Action{RequeueHead: true}, nil
		default:
			return NotReady, Action{}, nil
		}
	}
	return st, Action{}, ErrTransition
}

// WrapUpDone lists the agents whose wrap-up has run out at now.
func WrapUpDone(agents []Agent, wrapUp time.Duration, now time.Time) []string {
	var out []string
	for _, a := range agents {
		if a.State == WrapUp && !now.Before(a.Since.Add(wrapUp)) {
			out = append(out, a.CAID)
		}
	}
	return out
}

// Counts are the agents by state (every state present).
func Counts(agents []Agent) map[string]int {
	out := make(map[string]int, len(States))
	for _, s := range States {
		out[s] = 0
	}
	for _, a := range agents {
		out[a.State]++
	}
	return out
}

// ErrTaken is a claim that lost: the call or every agent is no longer
// free (another node got there first).
var ErrTaken = errors.New("acd: call or agents no longer free")

// Store keeps the queue and the agents, one for every node. Every method
// is atomic.
type Store interface {
	// SetAgentState sets an agent's state (creating the agent), with
	// Since = now and CallID = callID.
	SetAgentState(ctx context.Context, caID, state, callID string, now time.Time) (Agent, error)
	// Agent returns one agent (store.ErrNotFound when never seen).
	Agent(ctx context.Context, caID string) (Agent, error)
	Agents(ctx context.Context) ([]Agent, error)
	// Enqueue adds a call to the queue (store.ErrExists when there).
	Enqueue(ctx context.Context, e Entry) error
	// Dequeue removes a call from the queue; a call not there is no error.
	Dequeue(ctx context.Context, callID string) error
	// Queue lists the queue in service order.
	Queue(ctx context.Context) ([]Entry, error)
	// ClaimOffer atomically marks a waiting call Offering and, of the
	// agents named, those still ready Offered (CallID = the call, Since =
	// now). It returns the agents claimed, or ErrTaken when the call is
	// not waiting or no agent is ready.
	ClaimOffer(ctx context.Context, callID string, caIDs []string, now time.Time) ([]string, error)
	// ReleaseOffer ends one agent's offer of a call: the agent goes to
	// state (Since = now); when no agent is offered the call any more, the
	// call (if still queued) waits again at its place.
	ReleaseOffer(ctx context.Context, callID, caID, state string, now time.Time) error
	// AnswerOffer: the agent took the call: the agent goes InCall, every
	// other agent offered the call back to Ready (their idle time kept),
	// and the call leaves the queue. ErrTaken when the agent is not
	// offered the call.
	AnswerOffer(ctx context.Context, callID, caID string, now time.Time) error
	// FinishWrapUp moves agents in wrap-up since before `before` to Ready.
	FinishWrapUp(ctx context.Context, before time.Time, now time.Time) (int, error)
}

// Requeue is what the MCS keeps of a relay call whose interpreter vanished
// mid-call: the caller may call again with Token within the window and be
// queued at the front (PriorityRequeue).
type Requeue struct {
	Token     string    // unguessable, handed to the caller in the BYE
	CallID    string    // the relay call it continues
	User      string    // the VRS user's number: only they may use it
	Direction string    // outbound or emergency: the new call's must match
	Expires   time.Time // the end of the window
}

// RequeueGrant decides whether a call presenting a re-queue token may take
// the front of the queue: the token matches one kept (r), unused, not
// expired, presented by the same user for a call of the same direction.
// Anything else is an ordinary call (queued in its normal place).
func RequeueGrant(r Requeue, found bool, token, user, direction string, now time.Time) bool {
	return found && token != "" && r.Token == token && r.User == user && r.Direction == direction &&
		now.Before(r.Expires)
}
