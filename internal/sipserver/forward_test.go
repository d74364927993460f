package sipserver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/pgtest"
	"github.com/z5vrs/z5/internal/relay"
	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/store/postgres"
	"github.com/z5vrs/z5/internal/store/sqlite"
	"github.com/z5vrs/z5/internal/testenv"
)

// twoNodes is a two-node deployment in one process: MCS nodes "a" and "b"
// on loopback addresses of their own, each with its relay, sharing the
// location table and call records through the store.
type twoNodes struct {
	a, b *env
	st   store.Store // a's handle, for provisioning and checks
}

// freeLoopback returns an address of a random 127.x.y.z with a TCP port
// that was free a moment ago.
func freeLoopback(t *testing.T) netip.AddrPort {
	t.Helper()
	for range 50 {
		var b [3]byte
		rand.Read(b[:])
		ip := netip.AddrFrom4([4]byte{127, 100 + b[0]%100, b[1], 2 + b[2]%250})
		l, err := net.Listen("tcp", netip.AddrPortFrom(ip, 0).String())
		if err != nil {
			continue
		}
		ap := addrPort(l.Addr())
		l.Close()
		return ap
	}
	t.Fatal("no free loopback address")
	return netip.AddrPort{}
}

type nodeOptions struct {
	cfg    func(*Config)
	health Health
}

// newTwoNodes starts nodes a and b; stores returns each node's handle on
// the shared store (the same one twice is fine).
func newTwoNodes(t *testing.T, stores func(t *testing.T) (a, b store.Store), oa, ob nodeOptions) *twoNodes {
	t.Helper()
	stA, stB := stores(t)
	addrA, addrB := freeLoopback(t), freeLoopback(t)
	peers := map[string]netip.AddrPort{"a": addrA, "b": addrB}
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	n := &twoNodes{st: stA}
	n.a = startNode(t, "a", addrA, peers, stA, pub, key, oa)
	n.b = startNode(t, "b", addrB, peers, stB, pub, key, ob)
	return n
}

func sqliteStores(t *testing.T) (store.Store, store.Store) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "z5.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, st
}

func startNode(t *testing.T, name string, addr netip.AddrPort, peers map[string]netip.AddrPort, st store.Store,
	pub ed25519.PublicKey, key ed25519.PrivateKey, o nodeOptions) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &testenv.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
	ports := relayPorts()
	rl, stopRelay := startRelay(t, ctx, log, relay.Config{Bind: addr.Addr(), Ports: ports,
		MediaTimeout: config.Dev("").Relay.MediaTimeout})
	cfg := testConfig()
	cfg.Node, cfg.Hosts, cfg.Peers = name, []string{"mcs-" + name + ".mcs.z5.test"}, peers
	cfg.MinExpires, cfg.NoAnswerTimeout = 2, 10*time.Second
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	reg := prometheus.NewRegistry()
	srv, err := New(cfg, Deps{Store: st, Relay: rl, LicenseKeys: []ed25519.PublicKey{pub}, Log: log, Registerer: reg, Health: o.health})
	if err != nil {
		t.Fatal(err)
	}
	served := listenAndServe(t, ctx, srv, addr)
	e := &env{t: t, srv: srv, relay: rl, addr: srv.Addr(), key: key, reg: reg, logs: logs, ports: ports}
	t.Cleanup(func() {
		cancel()
		if err := served(); err != nil {
			t.Errorf("node %s: Serve: %v", name, err)
		}
		stopRelay()
		if t.Failed() {
			t.Logf("node %s log:\n%s", name, logs.String())
		}
	})
	return e
}

// phones registers alice on node a and bob on node b.
func (n *twoNodes) phones(t *testing.T) (alicePh, bobPh *phone) {
	t.Helper()
	provisionOn(t, n.st, alice, store.DeviceSIP, "alice", "secret-a")
	provisionOn(t, n.st, bob, store.DeviceSIP, "bob", "secret-b")
	alicePh = newPhone(t, n.a, alice, "alice", "secret-a")
	bobPh = newPhone(t, n.b, bob, "bob", "secret-b")
	for _, p := range []*phone{alicePh, bobPh} {
		if res := p.register(600); res.StatusCode != 200 {
			t.Fatalf("%s register: %d", p.user, res.StatusCode)
		}
	}
	return alicePh, bobPh
}

// inRelayOf reports whether ap is a port of e's relay.
func inRelayOf(e *env, ap netip.AddrPort) bool {
	return ap.Addr() == e.addr.Addr() && int(ap.Port()) >= e.ports.Min && int(ap.Port()) <= e.ports.Max
}

func peerHeaders(m sipmsg.Message) []string {
	var out []string
	for _, name := range []string{hdrForwarded, hdrSource} {
		for _, h := range m.GetHeaders(name) {
			out = append(out, h.Name()+": "+h.Value())
		}
	}
	return out
}

// TestForwardedCall: alice on node a calls bob on node b. The INVITE goes
// a→b; the media is anchored once, on a's relay; ACK and BYE follow the
// dialog through both nodes; there is one call record, a's.
func TestForwardedCall(t *testing.T) {
	for _, tt := range []struct {
		name   string
		stores func(t *testing.T) (store.Store, store.Store)
	}{
		{"sqlite", sqliteStores},
		{"postgres", postgresStores},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newTwoNodes(t, tt.stores, nodeOptions{}, nodeOptions{})
			a, b := n.phones(t)
			ctx := context.Background()

			for _, hu := range []struct {
				name  string
				bye   func(callResult, *incoming) error
				other *phone // who receives the BYE
			}{
				{"caller hangs up", func(res callResult, _ *incoming) error { return res.sess.Bye(ctx) }, b},
				{"callee hangs up", func(_ callResult, ic *incoming) error { return ic.dlg.Bye(ctx) }, a},
			} {
				t.Run(hu.name, func(t *testing.T) {
					callID := forwardedCall(t, n, a, b, func(res callResult, ic *incoming) {
						if err := hu.bye(res, ic); err != nil {
							t.Fatalf("BYE: %v", err)
						}
						wait(t, hu.other.byes, "BYE at the other side")
					})
					checkOneRecord(t, n, callID)
				})
			}
		})
	}
}

// forwardedCall runs one answered call from a (on node a) to b (on node
// b), checks where its media is anchored and that it flows, then calls
// hangUp; it returns the Call-ID.
func forwardedCall(t *testing.T, n *twoNodes, a, b *phone, hangUp func(callResult, *incoming)) string {
	t.Helper()
	done, ic := ring(context.Background(), a, b)
	offer := mediaAddr(ic.req.Body())
	if !inRelayOf(n.a, offer) {
		t.Fatalf("callee's offer points at %s, want node a's relay (%s, ports %s)", offer, n.a.addr.Addr(), n.a.ports)
	}
	var rr []string
	for _, h := range ic.req.GetHeaders("Record-Route") {
		rr = append(rr, h.Value())
	}
	wantRR := []string{
		fmt.Sprintf("<sip:%s;transport=tcp;lr>", n.b.addr),
		fmt.Sprintf("<sip:%s;transport=tcp;lr>", n.a.addr),
	}
	if d := cmp.Diff(wantRR, rr); d != "" {
		t.Errorf("Record-Route at the callee (-want +got):\n%s", d)
	}
	if h := peerHeaders(ic.req); len(h) > 0 {
		t.Errorf("node-to-node headers reached the callee: %q", h)
	}
	res := ringAndAnswer(t, b, ic, done)
	if h := peerHeaders(res.sess.InviteResponse); len(h) > 0 {
		t.Errorf("node-to-node headers reached the caller: %q", h)
	}
	answer := mediaAddr(res.sess.InviteResponse.Body())
	if !inRelayOf(n.a, answer) || answer == offer {
		t.Fatalf("caller's answer points at %s, want node a's relay (offer side %s)", answer, offer)
	}
	if got := n.a.relay.ActiveCalls(); got != 1 {
		t.Errorf("node a relays %d calls, want 1", got)
	}
	if got, ports := n.b.relay.ActiveCalls(), n.b.relay.AllocatedPorts(); got != 0 || ports != 0 {
		t.Errorf("node b relays %d calls on %d ports, want none: media anchored twice", got, ports)
	}
	if ac := metricValue(n.b, "z5_sip_active_calls"); ac != 0 {
		t.Errorf("node b counts %v active calls", ac)
	}
	if in := metricValue(n.b, "z5_sip_forwarded_calls_total", "direction", "in"); in == 0 {
		t.Error("node b counted no forwarded call")
	}
	exchangeRTP(t, a, b, answer, offer)
	hangUp(res, ic)
	return ic.req.CallID().Value()
}

// checkOneRecord waits for the call's record to end and checks it is the
// only one, written by node a with media counted.
func checkOneRecord(t *testing.T, n *twoNodes, callID string) {
	t.Helper()
	ctx := context.Background()
	rec := endedCall(t, n.st, callID)
	if rec.Node != "a" || rec.From != alice || rec.To != bob || rec.EndReason != endBye || rec.Status != 200 || rec.AnsweredAt.IsZero() {
		t.Errorf("call record %+v", rec)
	}
	calls, err := n.st.ListCalls(ctx, store.CallFilter{Number: bob})
	if err != nil {
		t.Fatal(err)
	}
	same := 0
	for _, c := range calls {
		if c.CallID == callID {
			same++
		}
	}
	if same != 1 {
		t.Errorf("%d call records for %s, want 1", same, callID)
	}
	waitFor(t, "relays released", func() bool { return n.a.relay.ActiveCalls() == 0 })
	for _, e := range []*env{n.a, n.b} {
		waitFor(t, "calls ended on both nodes", func() bool { return e.srv.calls.get(callID) == nil })
	}
}

func postgresStores(t *testing.T) (store.Store, store.Store) {
	dsn := pgtest.Start(t)
	open := func() store.Store {
		st, err := postgres.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	return open(), open()
}

// TestForwardedCallOutcomes: what the callee's node answers reaches the
// caller, and a node that cannot be reached costs one 480.
func TestForwardedCallOutcomes(t *testing.T) {
	ctx := context.Background()
	t.Run("busy: 486 passed back", func(t *testing.T) {
		n := newTwoNodes(t, sqliteStores, nodeOptions{}, nodeOptions{})
		a, b := n.phones(t)
		done, ic := ring(ctx, a, b)
		ic.dlg.Respond(486, "Busy Here", nil)
		ic.finish()
		if res := wait(t, done, "outcome"); statusOf(res.err) != 486 {
			t.Fatalf("got %v, want 486", res.err)
		}
		if rec := recordEnds(t, n.st, ic.req.CallID().Value(), endBusy, 486); rec.Node != "a" {
			t.Errorf("call recorded by node %q, want a (the caller's)", rec.Node)
		}
	})
	t.Run("CANCEL passed on", func(t *testing.T) {
		n := newTwoNodes(t, sqliteStores, nodeOptions{}, nodeOptions{})
		a, b := n.phones(t)
		callID := cancelRinging(t, a, b)
		recordEnds(t, n.st, callID, endCancel, 487)
		waitFor(t, "call gone on node b", func() bool { return n.b.srv.calls.get(callID) == nil })
	})
	t.Run("callee's node unreachable: 480, registration dropped", func(t *testing.T) {
		n := newTwoNodes(t, sqliteStores, nodeOptions{}, nodeOptions{})
		a, _ := n.phones(t)
		// Node b dies without cleaning up (kill -9): its row stays.
		n.b.srv.Close()
		dev, err := n.st.DeviceBySIPUser(ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		if err := n.st.PutRegistration(ctx, store.Registration{Number: bob, DeviceID: dev.ID, Node: "b", FlowID: "TCP/127.0.0.1:1/1",
			Contact: "sip:" + bob + "@127.0.0.1:5999", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		if _, err := a.invite(ctx, bob); statusOf(err) != 480 {
			t.Fatalf("got %v, want 480", err)
		}
		if took := time.Since(began); took > 3*time.Second {
			t.Errorf("480 took %s", took)
		}
		if regs, _ := n.st.Registrations(ctx, bob, time.Now()); len(regs) != 0 {
			t.Errorf("stale registrations kept: %+v", regs)
		}
	})
	t.Run("callee's node down by membership: not tried", func(t *testing.T) {
		n := newTwoNodes(t, sqliteStores, nodeOptions{health: healthFunc(func(node string) bool { return node != "b" })}, nodeOptions{})
		a, b := n.phones(t)
		// A dead node's registrations are not fresh: a registration made
		// moments ago outweighs a stale membership table (start-up race).
		regs, err := n.st.Registrations(ctx, bob, time.Now())
		if err != nil || len(regs) == 0 {
			t.Fatalf("bob's registrations: %v %v", regs, err)
		}
		for _, r := range regs {
			r.UpdatedAt = time.Now().Add(-time.Minute)
			if err := n.st.PutRegistration(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.invite(ctx, bob); statusOf(err) != 480 {
			t.Fatalf("got %v, want 480", err)
		}
		select {
		case ic := <-b.calls:
			ic.finish()
			t.Fatal("the call reached a node membership counts as dead")
		default:
		}
		if regs, _ := n.st.Registrations(ctx, bob, time.Now()); len(regs) != 1 {
			t.Errorf("registrations %+v, want bob's kept", regs)
		}
	})
}
