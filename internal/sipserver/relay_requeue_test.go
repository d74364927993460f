package sipserver

import (
	"context"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/acd"
)

// TestStationLostRequeued: the interpreter's connection closes during a
// relay call while two other callers wait; the deaf caller's BYE carries
// the re-queue notice and a token, and the caller's new INVITE with it is
// queued at position 1, ahead of both, linked to the lost call's record.
// The token works once: used again, or forged, the call queues normally.
func TestStationLostRequeued(t *testing.T) {
	e := relayEnv(t, nil, func(c *Config) { c.ACD.RequeueWindow = time.Minute })
	st1 := station(t, e, "7001", acd.Ready)
	a := caller(t, e, "5552340001", "alice")
	q := a.callQueued(t, hearing)
	answerCall(t, st1, st1.nextCall(5*time.Second), q.done, "the interpreter's answer")

	b := caller(t, e, "5552340002", "bob").callQueued(t, hearing)
	b.position(t, 1, "bob waits")
	c := caller(t, e, "5552340003", "carol").callQueued(t, hearing)
	c.position(t, 2, "carol waits")

	st1.ua.Close() // the station vanishes mid-call
	bye := wait(t, a.byes, "the caller's BYE")
	if r := header(bye, "Reason"); !strings.Contains(r, "reconnecting you to the next interpreter") {
		t.Errorf("BYE Reason %q, want the re-queue notice", r)
	}
	tok := header(bye, "X-Z5-Requeue")
	if len(tok) < 32 {
		t.Fatalf("BYE X-Z5-Requeue %q, want a token of 16 random bytes", tok)
	}
	recordEnds(t, e.st, q.callID, "interpreter-lost", 200)

	again := a.callQueued(t, hearing, sipmsg.NewHeader("X-Z5-Requeue", tok))
	again.position(t, 1, "the re-queued caller at the front")
	b.position(t, 2, "bob behind the re-queued caller")
	c.position(t, 3, "carol behind the re-queued caller")

	// Used once: the same token again, or a forged one, queue at the end.
	reuse := a.callQueued(t, hearing, sipmsg.NewHeader("X-Z5-Requeue", tok))
	reuse.position(t, 4, "a used token: normal order")
	forged := caller(t, e, "5552340004", "dave").callQueued(t, hearing, sipmsg.NewHeader("X-Z5-Requeue", strings.Repeat("0", 32)))
	forged.position(t, 5, "a forged token: normal order")

	st2 := station(t, e, "7002", acd.Ready)
	ic := st2.nextCall(5 * time.Second)
	if got := header(ic.req, "X-Z5-Relay-Call"); got != again.callID {
		t.Errorf("next interpreter offered %q, want the re-queued call %q", got, again.callID)
	}
	if got := header(ic.req, "X-Z5-Direction"); got != "outbound" {
		t.Errorf("re-queued call's direction %q, want outbound", got)
	}
	if got := header(ic.req, "X-Z5-Requeue"); got != "" {
		t.Errorf("the offer carries the caller's token %q", got)
	}
	answerCall(t, st2, ic, again.done, "the second interpreter's answer")
	rec, err := e.st.Call(context.Background(), again.callID)
	if err != nil || rec.RequeueOf != q.callID || rec.CAID != "7002" || rec.Direction != "outbound" {
		t.Errorf("re-queued record %+v, %v; want requeue_of %q, CA 7002", rec, err, q.callID)
	}
	if rec, _ := e.st.Call(context.Background(), reuse.callID); rec.RequeueOf != "" {
		t.Errorf("the call with a used token is linked to %q", rec.RequeueOf)
	}
}

// TestStationLostNoRequeueWithoutWindow: with re-queueing off the lost
// interpreter's caller is told to call again, with no token.
func TestStationLostNoRequeueWithoutWindow(t *testing.T) {
	e := relayEnv(t, nil, nil)
	st1 := station(t, e, "7101", acd.Ready)
	a := caller(t, e, "5552340001", "alice")
	q := a.callQueued(t, hearing)
	answerCall(t, st1, st1.nextCall(5*time.Second), q.done, "the interpreter's answer")
	st1.ua.Close()
	bye := wait(t, a.byes, "the caller's BYE")
	if tok := header(bye, "X-Z5-Requeue"); tok != "" {
		t.Errorf("BYE carries a token %q with re-queueing off", tok)
	}
}
