package sipserver

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/store"
)

// TestSnapshotRegistrations: the operator's view lists each live binding
// with the flow it uses (transport, the device's source address, not its
// Contact), since when (kept across a refresh) and until when; a binding
// removed is gone from it.
func TestSnapshotRegistrations(t *testing.T) {
	clock := newFakeClock()
	e := newEnvWith(t, nil, func(d *Deps) { d.Now = clock.Now })
	if got := e.srv.Registrations(); len(got) != 0 {
		t.Fatalf("before any REGISTER: %+v", got)
	}
	da := e.provision(alice, store.DeviceSIP, "alice", "secret-a")
	db := e.provision(bob, store.DeviceSIP, "bob", "secret-b")
	a := newPhone(t, e, alice, "alice", "secret-a")
	b := newPhoneOver(t, e, bob, "bob", "secret-b", "UDP")

	t0 := clock.Now()
	if res := a.register(600); res.StatusCode != 200 {
		t.Fatalf("alice: %d", res.StatusCode)
	}
	clock.Advance(30 * time.Second)
	if res := a.register(600); res.StatusCode != 200 { // a refresh
		t.Fatalf("alice refresh: %d", res.StatusCode)
	}
	if res := b.register(300); res.StatusCode != 200 {
		t.Fatalf("bob: %d", res.StatusCode)
	}
	t1 := clock.Now()

	got := e.srv.Registrations()
	want := []struct {
		number    string
		device    int64
		transport string
		since     time.Time
		expires   time.Time
	}{
		{alice, da.ID, "TCP", t0, t1.Add(600 * time.Second)},
		{bob, db.ID, "UDP", t1, t1.Add(300 * time.Second)},
	}
	if len(got) != len(want) {
		t.Fatalf("registrations %+v, want %d", got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Number != w.number || g.DeviceID != w.device || g.Kind != store.DeviceSIP || g.Transport != w.transport ||
			!g.Since.Equal(w.since) || !g.Expires.Equal(w.expires) {
			t.Errorf("registration %d: %+v, want %+v", i, g, w)
		}
		src, err := netip.ParseAddrPort(g.Source)
		if err != nil || src.Addr().Unmap() != netip.MustParseAddr("127.0.0.1") || src.Port() == 5999 || src.Port() == e.addr.Port() {
			t.Errorf("registration %d: source %q, want the device's own address (not its Contact's port 5999)", i, g.Source)
		}
	}

	if res := a.register(0); res.StatusCode != 200 {
		t.Fatalf("alice un-register: %d", res.StatusCode)
	}
	if got := e.srv.Registrations(); len(got) != 1 || got[0].Number != bob {
		t.Fatalf("after alice un-registered: %+v", got)
	}
	// Past its expiry a binding is not shown, even before the sweep
	// removes it.
	clock.Advance(301 * time.Second)
	if got := e.srv.Registrations(); len(got) != 0 {
		t.Fatalf("after bob's expiry: %+v", got)
	}
}

// TestSnapshotActiveCalls: a call is in the view from its INVITE (ringing,
// no answer time) until its BYE, answered with the relay's per-stream
// counters once media flows.
func TestSnapshotActiveCalls(t *testing.T) {
	e := newEnv(t, nil)
	a, b := twoPhones(t, e)
	if got := e.srv.ActiveCalls(); len(got) != 0 {
		t.Fatalf("before any call: %+v", got)
	}
	ctx := context.Background()
	done, ic := ring(ctx, a, b)
	callID := ic.req.CallID().Value()
	ringing := e.srv.ActiveCalls()
	if len(ringing) != 1 || ringing[0].CallID != callID || ringing[0].From != alice || ringing[0].To != bob ||
		ringing[0].Node != "test" || ringing[0].StartedAt.IsZero() || !ringing[0].AnsweredAt.IsZero() {
		t.Fatalf("while ringing: %+v", ringing)
	}
	offer := mediaAddr(ic.req.Body())
	res := ringAndAnswer(t, b, ic, done)
	exchangeRTP(t, a, b, mediaAddr(res.sess.InviteResponse.Body()), offer)

	live := e.srv.ActiveCalls()
	if len(live) != 1 || live[0].AnsweredAt.IsZero() || live[0].AnsweredAt.Before(live[0].StartedAt) {
		t.Fatalf("answered: %+v", live)
	}
	legs := map[string]uint64{}
	for _, s := range live[0].Streams {
		if s.Media == "audio" {
			legs[s.Leg] += s.Packets
		}
	}
	if legs["caller"] == 0 || legs["callee"] == 0 {
		t.Errorf("audio packets by leg %v, want both legs counted: %+v", legs, live[0].Streams)
	}

	if err := res.sess.Bye(ctx); err != nil {
		t.Fatalf("BYE: %v", err)
	}
	wait(t, b.byes, "BYE at the callee")
	waitFor(t, "the call gone from the view", func() bool { return len(e.srv.ActiveCalls()) == 0 })
}
