package sipcore

import (
	"strings"
	"testing"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/google/go-cmp/cmp"
)

// step is one event of a forked INVITE: a raw SIP response on fork n
// ("1: SIP/2.0 180 Ringing"), "1: ended", or a control event by name.
type step string

func (s step) event(t *testing.T) ForkEvent {
	t.Helper()
	switch s {
	case "cancel":
		return ForkEvent{Kind: CallerCanceled}
	case "caller gone":
		return ForkEvent{Kind: CallerGone}
	case "caller gone after cancel":
		return ForkEvent{Kind: CallerGone, Canceled: true}
	case "timer":
		return ForkEvent{Kind: NoAnswer}
	case "shutdown":
		return ForkEvent{Kind: Shutdown}
	}
	n, what, _ := strings.Cut(string(s), ": ")
	fork := int(n[0] - '0')
	if what == "ended" {
		return ForkEvent{Kind: ForkEnded, Fork: fork}
	}
	raw := what + "\r\nVia: SIP/2.0/TCP 198.18.0.1:5060;branch=z9hG4bKZ5x\r\nFrom: <sip:5552340001@mcs.z5.test>;tag=a\r\n" +
		"To: <sip:5552340002@mcs.z5.test>;tag=b\r\nCall-ID: c-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
	m, err := sipmsg.NewParser().ParseSIP([]byte(raw))
	if err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	return ForkEvent{Kind: ForkResponse, Fork: fork, Status: m.(*sipmsg.Response).StatusCode}
}

func TestFork(t *testing.T) {
	for _, tc := range []struct {
		name   string
		forks  int
		steps  []step
		relays int        // provisional responses relayed on the way
		want   ForkAction // the last step's action
	}{
		{"no forks", 0, nil, 0,
			ForkAction{Done: true, Code: 480, Reason: "Temporarily Unavailable", End: EndUnavailable, Status: 480}},
		{"answered", 2, []step{"0: SIP/2.0 100 Trying", "0: SIP/2.0 180 Ringing", "1: SIP/2.0 183 Session Progress", "1: SIP/2.0 200 OK"}, 2,
			ForkAction{Answer: true, Done: true}},
		{"busy beats unavailable", 2, []step{"0: SIP/2.0 480 Temporarily Unavailable", "1: SIP/2.0 486 Busy Here"}, 0,
			ForkAction{Done: true, Forward: true, Fork: 1, End: EndBusy, Status: 486}},
		{"a client error beats a server error", 2, []step{"0: SIP/2.0 503 Service Unavailable", "1: SIP/2.0 403 Forbidden"}, 0,
			ForkAction{Done: true, Forward: true, Fork: 1, End: EndError, Status: 403}},
		{"the first of equals is kept", 2, []step{"1: SIP/2.0 404 Not Found", "0: SIP/2.0 480 Temporarily Unavailable"}, 0,
			ForkAction{Done: true, Forward: true, Fork: 1, End: EndUnavailable, Status: 404}},
		{"a global failure ends the search", 3, []step{"0: SIP/2.0 180 Ringing", "2: SIP/2.0 603 Decline"}, 1,
			ForkAction{Done: true, Forward: true, Fork: 2, End: EndBusy, Status: 603}},
		{"one fork still pending", 2, []step{"0: SIP/2.0 486 Busy Here"}, 0, ForkAction{}},
		{"a fork ending twice counts once", 2, []step{"0: SIP/2.0 486 Busy Here", "0: ended"}, 0, ForkAction{}},
		{"forks ending without answers", 2, []step{"0: ended", "1: ended"}, 0,
			ForkAction{Done: true, Code: 480, Reason: "Temporarily Unavailable", End: EndUnavailable, Status: 480}},
		{"ended after a final response", 2, []step{"1: SIP/2.0 486 Busy Here", "0: ended"}, 0,
			ForkAction{Done: true, Forward: true, Fork: 1, End: EndBusy, Status: 486}},
		{"caller cancels", 2, []step{"0: SIP/2.0 180 Ringing", "cancel"}, 1,
			ForkAction{Done: true, End: EndCancel, Status: 487}},
		{"caller's transaction ends after a CANCEL", 1, []step{"caller gone after cancel"}, 0,
			ForkAction{Done: true, End: EndCancel, Status: 487}},
		{"caller's transaction ends", 1, []step{"caller gone"}, 0, ForkAction{Done: true, End: EndError}},
		{"no answer", 1, []step{"0: SIP/2.0 180 Ringing", "timer"}, 1,
			ForkAction{Done: true, Code: 408, Reason: "Request Timeout", End: EndNoAnswer, Status: 408}},
		{"shutdown", 1, []step{"shutdown"}, 0,
			ForkAction{Done: true, Code: 503, Reason: "Service Unavailable (Shutting Down)", End: EndError, Status: 503}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := NewForkState(tc.forks)
			act := st.Outcome()
			relays := 0
			for i, s := range tc.steps {
				if act.Done {
					t.Fatalf("done before step %d (%s)", i, s)
				}
				st, act = Fork(st, s.event(t))
				if act.Relay {
					relays++
				}
			}
			if diff := cmp.Diff(tc.want, act); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
			if relays != tc.relays {
				t.Errorf("%d provisional responses relayed, want %d", relays, tc.relays)
			}
		})
	}
}

// TestForkStateIsAValue: deciding on an event does not change the state
// it was given.
func TestForkStateIsAValue(t *testing.T) {
	st := NewForkState(2)
	next, _ := Fork(st, ForkEvent{Kind: ForkEnded, Fork: 0})
	if _, act := Fork(st, ForkEvent{Kind: ForkEnded, Fork: 1}); act.Done {
		t.Fatal("an earlier state saw a later event")
	}
	if _, act := Fork(next, ForkEvent{Kind: ForkEnded, Fork: 1}); !act.Done {
		t.Fatal("the next state lost an event")
	}
}
