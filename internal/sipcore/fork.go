package sipcore

// The proxy forks an initial INVITE to every binding of the callee (RFC
// 3261 §16.7) and relays one outcome upstream. Fork is the decision: given
// what the forks have done so far and the next event, what goes upstream
// and whether the search is over. The server sends the requests, runs the
// timer and carries out the actions.

// Ends of a call, as recorded in the call detail record.
const (
	EndBye          = "bye"
	EndCancel       = "cancel"
	EndBusy         = "busy"
	EndUnavailable  = "unavailable"
	EndNoAnswer     = "no-answer"
	EndMediaTimeout = "media-timeout"
	EndError        = "error"
)

// ForkEventKind is what happened to a forked INVITE.
type ForkEventKind int

const (
	// ForkResponse is a response on one fork (Fork, Status).
	ForkResponse ForkEventKind = iota
	// ForkEnded is a fork's transaction ending without a final response.
	ForkEnded
	// CallerCanceled is the caller's CANCEL (sipgo has answered 200 to
	// it and 487 to the INVITE).
	CallerCanceled
	// CallerGone is the caller's transaction ending; Canceled says a
	// CANCEL ended it.
	CallerGone
	// NoAnswer is the no-answer timer firing.
	NoAnswer
	// Shutdown is the server closing.
	Shutdown
)

// ForkEvent is one event of a forked INVITE.
type ForkEvent struct {
	Kind     ForkEventKind
	Fork     int // ForkResponse, ForkEnded: which fork
	Status   int // ForkResponse: its status code
	Canceled bool
}

// ForkState is what the forks have done so far. The zero value is not
// ready: start from NewForkState.
type ForkState struct {
	settled    []bool // a final response, or the end of its transaction
	pending    int    // forks not settled
	best       int    // fork with the best final response so far, -1: none
	bestStatus int
}

// NewForkState starts the decision over n forks.
func NewForkState(n int) ForkState {
	return ForkState{settled: make([]bool, n), pending: n, best: -1}
}

// ForkAction is what to do for one event. The zero value: nothing.
type ForkAction struct {
	// Relay sends the event's provisional response upstream.
	Relay bool
	// Answer completes the call with the event's 2xx.
	Answer bool
	// Done ends the search: every other fork is canceled, and the call
	// ends with End and Status.
	Done bool
	// Forward, when Done, relays the final response of fork Fork upstream
	// (the best one); else Code and Reason, when Code is not 0, are the
	// response the server sends itself.
	Forward bool
	Fork    int
	Code    int
	Reason  string
	End     string
	Status  int
}

// Fork decides on one event. A state that is done (every fork settled, or
// an action with Done returned) takes no further events.
func Fork(st ForkState, ev ForkEvent) (ForkState, ForkAction) {
	switch ev.Kind {
	case CallerCanceled:
		return st, ForkAction{Done: true, End: EndCancel, Status: 487}
	case CallerGone:
		if ev.Canceled {
			// A CANCEL ends the transaction too (after the 487).
			return st, ForkAction{Done: true, End: EndCancel, Status: 487}
		}
		return st, ForkAction{Done: true, End: EndError}
	case NoAnswer:
		return st, ForkAction{Done: true, Code: 408, Reason: "Request Timeout", End: EndNoAnswer, Status: 408}
	case Shutdown:
		return st, ForkAction{Done: true, Code: 503, Reason: "Service Unavailable (Shutting Down)", End: EndError, Status: 503}
	case ForkEnded:
		st = st.settle(ev.Fork)
		return st, st.exhausted()
	}
	switch code := ev.Status; {
	case code == 100:
		return st, ForkAction{}
	case code < 200:
		return st, ForkAction{Relay: true}
	case code < 300:
		return st, ForkAction{Answer: true, Done: true}
	default:
		st = st.settle(ev.Fork)
		if st.best < 0 || Rank(code) < Rank(st.bestStatus) {
			st.best, st.bestStatus = ev.Fork, code
		}
		if code >= 600 {
			st.pending = 0 // a global failure ends the search
		}
		return st, st.exhausted()
	}
}

// settle counts fork i's end once.
func (st ForkState) settle(i int) ForkState {
	if i < 0 || i >= len(st.settled) || st.settled[i] {
		return st
	}
	settled := make([]bool, len(st.settled))
	copy(settled, st.settled)
	settled[i] = true
	st.settled, st.pending = settled, st.pending-1
	return st
}

// exhausted is the outcome once no fork is pending: the best final
// response, or 480 when no fork gave one.
func (st ForkState) exhausted() ForkAction {
	if st.pending > 0 {
		return ForkAction{}
	}
	if st.best < 0 {
		return ForkAction{Done: true, Code: 480, Reason: "Temporarily Unavailable", End: EndReasonFor(480), Status: 480}
	}
	return ForkAction{Done: true, Forward: true, Fork: st.best, End: EndReasonFor(st.bestStatus), Status: st.bestStatus}
}

// Rank orders final responses for the one sent upstream (RFC 3261 §16.7
// step 6): a global failure first, then busy, then other client errors,
// then unavailability and timeouts, then server errors.
func Rank(code int) int {
	switch {
	case code >= 600:
		return 0
	case code == 486:
		return 1
	case code == 480 || code == 404 || code == 410:
		return 3
	case code == 408:
		return 4
	case code >= 500:
		return 5
	}
	return 2
}

// EndReasonFor is the call record's end reason for a final status.
func EndReasonFor(code int) string {
	switch code {
	case 486, 600, 603:
		return EndBusy
	case 404, 410, 480, 604:
		return EndUnavailable
	case 408:
		return EndNoAnswer
	case 487:
		return EndCancel
	}
	return EndError
}

// Outcome is the action to take when no event may come: Done when no fork
// is pending (none could be sent, say), else the zero action.
func (st ForkState) Outcome() ForkAction { return st.exhausted() }
