package sipserver

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/acd"
	"github.com/z5vrs/z5/internal/store"
)

const hearing = "2125550100" // a number not ours: the telephone network

// TestRelayQueueOrderAndPositions: with the only interpreter busy, three
// callers wait at positions 1, 2, 3; a second interpreter signing in is
// offered the first caller (with the relay call's facts in X-Z5-*), the
// others move up; a 911 call then jumps the queue and is offered to every
// ready interpreter at once.
func TestRelayQueueOrderAndPositions(t *testing.T) {
	e := relayEnv(t, nil, nil)
	station(t, e, "1001", acd.InCall)
	var calls []*queuedCall
	for i, u := range []string{"5552340001", "5552340002", "5552340003"} {
		p := caller(t, e, u, "user"+u)
		q := p.callQueued(t, hearing)
		q.position(t, i+1, "caller "+u+" queued")
		calls = append(calls, q)
	}
	if got := metricValue(e, "z5_acd_queue_depth"); got != 3 {
		waitFor(t, "queue depth 3", func() bool { return metricValue(e, "z5_acd_queue_depth") == 3 })
	}

	st2 := station(t, e, "1002", acd.Ready)
	ic := st2.nextCall(5 * time.Second)
	for h, want := range map[string]string{
		"X-Z5-Relay-Call": calls[0].callID, "X-Z5-Direction": "outbound", "X-Z5-Dialed": hearing,
		"X-Z5-User": "5552340001", "X-Z5-Caller": "5552340001",
	} {
		if got := header(ic.req, h); got != want {
			t.Errorf("offer %s = %q, want %q", h, got, want)
		}
	}
	if u := ic.req.From().Address.User; u != "5552340001" {
		t.Errorf("offer From %q, want the caller", u)
	}
	if a := agentState(t, e, "1002"); a.State != acd.Offered || a.CallID != calls[0].callID {
		t.Errorf("station 1002 %+v, want offered the first call", a)
	}
	answerCall(t, st2, ic, calls[0].done, "the first caller's answer")
	waitFor(t, "two interpreters in calls", func() bool {
		return metricValue(e, "z5_acd_interpreters", "state", "in_call") == 2
	})
	if n := histogramCount(t, e, "z5_acd_wait_seconds"); n != 1 {
		t.Errorf("z5_acd_wait_seconds has %d samples, want 1", n)
	}
	calls[1].position(t, 1, "second caller moves up")
	calls[2].position(t, 2, "third caller moves up")
	rec, err := e.st.Call(context.Background(), calls[0].callID)
	if err != nil || rec.CAID != "1002" || rec.Direction != store.CallOutbound || rec.Dialed != hearing ||
		rec.UserNumber != "5552340001" || rec.QueuedAt.IsZero() || rec.OfferedAt.IsZero() || rec.SessionStart.IsZero() {
		t.Errorf("relay record %+v, %v", rec, err)
	}

	// 911 goes first and rings every ready interpreter.
	dave := caller(t, e, "5552340004", "dave")
	q911 := dave.callQueued(t, "911")
	q911.position(t, 1, "911 at the head of the queue")
	calls[1].position(t, 2, "second caller behind 911")
	st3 := station(t, e, "1003", acd.NotReady)
	st4 := station(t, e, "1004", acd.NotReady)
	e.srv.acdq.pass.Lock() // both ready in one go: 911 must ring both
	setAgent(t, e, "1003", acd.Ready)
	setAgent(t, e, "1004", acd.Ready)
	e.srv.acdq.pass.Unlock()
	ic3, ic4 := st3.nextCall(5*time.Second), st4.nextCall(5*time.Second)
	for _, o := range []*incoming{ic3, ic4} {
		if header(o.req, "X-Z5-Relay-Call") != q911.callID || header(o.req, "X-Z5-Direction") != "emergency" ||
			header(o.req, "X-Z5-Callback") != "5552340004" {
			t.Errorf("911 offer headers: %v", o.req)
		}
	}
	answerCall(t, st3, ic3, q911.done, "the 911 answer")
	wait(t, st4.cancels, "the CANCEL of the other 911 offer")
	ic4.finish()
	waitFor(t, "1004 ready again", func() bool { return agentState(t, e, "1004").State == acd.Ready })
	// 1004 is free again: the next caller is offered to it.
	ic4b := st4.nextCall(5 * time.Second)
	if header(ic4b.req, "X-Z5-Relay-Call") != calls[1].callID {
		t.Errorf("after 911, 1004 offered %q, want the second caller", header(ic4b.req, "X-Z5-Relay-Call"))
	}
	ic4b.finish()
}

// TestRelayAbandonRecorded: a caller who hangs up in the queue is recorded
// as abandoned (487) and counted.
func TestRelayAbandonRecorded(t *testing.T) {
	e := relayEnv(t, nil, nil)
	a := caller(t, e, "5552340001", "alice")
	q := a.callQueued(t, hearing)
	q.position(t, 1, "queued")
	q.cancel()
	rec := recordEnds(t, e.st, q.callID, "abandoned", 487)
	if rec.Direction != store.CallOutbound || rec.QueuedAt.IsZero() || !rec.SessionStart.IsZero() {
		t.Errorf("abandoned record %+v", rec)
	}
	waitFor(t, "abandoned counted", func() bool { return metricValue(e, "z5_acd_abandoned_total") == 1 })
	waitFor(t, "queue empty", func() bool {
		qs, _ := e.st.Queue(context.Background())
		return len(qs) == 0
	})
}

// TestRelayRingTimeoutReoffers: the longest idle interpreter is offered
// the call first; when it rings out (acd.ring_timeout) the offer is
// cancelled, that interpreter goes not ready and the next is offered.
func TestRelayRingTimeoutReoffers(t *testing.T) {
	e := relayEnv(t, nil, nil)
	idle := station(t, e, "2001", acd.NotReady)
	fresh := station(t, e, "2002", acd.NotReady)
	setAgent(t, e, "2001", acd.Ready)
	time.Sleep(10 * time.Millisecond) // distinct ready times: 2001 idle longer
	setAgent(t, e, "2002", acd.Ready)
	a := caller(t, e, "5552340001", "alice")
	q := a.callQueued(t, hearing)
	ic := idle.nextCall(5 * time.Second)
	if header(ic.req, "X-Z5-Relay-Call") != q.callID {
		t.Fatalf("offer to the longest idle is not the call")
	}
	wait(t, idle.cancels, "the CANCEL after the ring timeout")
	ic.finish()
	ic2 := fresh.nextCall(5 * time.Second)
	if header(ic2.req, "X-Z5-Relay-Call") != q.callID {
		t.Fatalf("re-offer is not the call")
	}
	if s := agentState(t, e, "2001").State; s != acd.NotReady {
		t.Errorf("the interpreter who let it ring is %s, want not_ready", s)
	}
	answerCall(t, fresh, ic2, q.done, "the answer after re-offer")
}

// TestRelayMaxWait: nobody answers within acd.max_wait: 480 with a
// reason, recorded as queue-timeout.
func TestRelayMaxWait(t *testing.T) {
	e := relayEnv(t, nil, func(c *Config) { c.ACD.MaxWait = 500 * time.Millisecond })
	a := caller(t, e, "5552340001", "alice")
	q := a.callQueued(t, hearing)
	res := wait(t, q.done, "the 480")
	if statusOf(res.err) != 480 {
		t.Fatalf("queue timeout: %v, want 480", res.err)
	}
	recordEnds(t, e.st, q.callID, "queue-timeout", 480)
}

// TestRelayOffIsPointToPointOnly: without [acd] a number not ours is 404,
// as before relay calls.
func TestRelayOffIsPointToPointOnly(t *testing.T) {
	e := newEnv(t, nil)
	a := caller(t, e, "5552340001", "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.invite(ctx, hearing); statusOf(err) != 404 {
		t.Fatalf("call to a number not ours without [acd]: %v, want 404", err)
	}
}

// TestLocationRequired: with locations required, a number whose customer
// has none is refused (403 Registered Location Required) for calls to our
// numbers and to hearing parties, and still reaches 911.
func TestLocationRequired(t *testing.T) {
	e := relayEnv(t, nil, func(c *Config) { c.RequireLocation = true })
	a := caller(t, e, "5552340001", "alice")
	caller(t, e, "5552340002", "bob")
	for _, target := range []string{"5552340002", hearing} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := a.invite(ctx, target)
		cancel()
		var de *sipgo.ErrDialogResponse
		if !errors.As(err, &de) || de.Res.StatusCode != 403 || !strings.Contains(de.Res.Reason, "Registered Location Required") ||
			!strings.Contains(header(de.Res, "Warning"), "z5 location set") {
			t.Errorf("call to %s without a location: %v, want 403 Registered Location Required with a Warning", target, err)
		}
	}
	q := a.callQueued(t, "911")
	q.position(t, 1, "911 queued without a location")
}

// TestRestoreRecordRoute: a 2xx whose UAS returned only the callee-facing
// one of the proxy's two Record-Routes gets the caller-facing one back
// below it; complete or foreign route sets are left alone.
func TestRestoreRecordRoute(t *testing.T) {
	e := newEnv(t, nil)
	tcp := flowRef{transport: "TCP", local: netip.MustParseAddrPort("127.0.0.1:5060")}
	tls := flowRef{transport: "TLS", local: netip.MustParseAddrPort("127.0.0.1:5061")}
	toCallee, toCaller := "<sip:127.0.0.1:5060;transport=tcp;lr>", "<sip:127.0.0.1:5061;transport=tls;lr>"
	for _, tc := range []struct {
		name     string
		rr, want []string
	}{
		{"callee-facing only", []string{toCallee}, []string{toCallee, toCaller}},
		{"a carrier proxy above ours", []string{"<sip:198.18.9.5;lr>", toCallee}, []string{"<sip:198.18.9.5;lr>", toCallee, toCaller}},
		{"both returned", []string{toCallee, toCaller}, []string{toCallee, toCaller}},
		{"none", nil, nil},
	} {
		res := sipmsg.NewResponse(200, "OK")
		for _, v := range tc.rr {
			res.AppendHeader(sipmsg.NewHeader("Record-Route", v))
		}
		e.srv.restoreRecordRoute(res, tcp, tls)
		var got []string
		for _, h := range res.GetHeaders("Record-Route") {
			got = append(got, h.Value())
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: Record-Route %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestStationLostMidCall: the interpreter's connection closes during a
// relay call: the caller gets a BYE saying why, the record ends as
// interpreter-lost, and the interpreter is not offered calls until it
// signs in again.
func TestStationLostMidCall(t *testing.T) {
	e := relayEnv(t, nil, nil)
	st1 := station(t, e, "6001", acd.Ready)
	a := caller(t, e, "5552340001", "alice")
	q := a.callQueued(t, hearing)
	ic := st1.nextCall(5 * time.Second)
	answerCall(t, st1, ic, q.done, "the interpreter's answer")
	st1.ua.Close() // the station vanishes: its connection closes
	bye := wait(t, a.byes, "the caller's BYE")
	if r := header(bye, "Reason"); !strings.Contains(r, "Interpreter disconnected") {
		t.Errorf("BYE Reason %q", r)
	}
	recordEnds(t, e.st, q.callID, "interpreter-lost", 200)
	waitFor(t, "interpreter not ready", func() bool { return agentState(t, e, "6001").State == acd.NotReady })
}

// histogramCount is the number of samples of a histogram in e's registry.
func histogramCount(t *testing.T, e *env, name string) uint64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}
