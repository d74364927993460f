package sipserver

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/google/go-cmp/cmp"
)

type healthFunc func(string) bool

func (f healthFunc) Healthy(node string) bool { return f(node) }

// TestForwardingMarkFromClients: the node-to-node mark is only taken from
// a peer. A client's copy is removed and the request handled as the
// client's own: authenticated, anchored, recorded.
func TestForwardingMarkFromClients(t *testing.T) {
	ctx := context.Background()
	n := newTwoNodes(t, sqliteStores, nodeOptions{}, nodeOptions{})
	a, b := n.phones(t)

	t.Run("registered client", func(t *testing.T) {
		// alice forges the mark: node a still anchors and records the
		// call, and node b sees a's own mark only.
		req := a.inviteRequest(bob, a.sdp(), sipmsg.NewHeader(hdrForwarded, "b"), sipmsg.NewHeader(hdrSource, "192.0.2.1"))
		sess, err := a.dcli.WriteInvite(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		ic := b.nextCall(5 * time.Second)
		defer ic.finish()
		if h := peerHeaders(ic.req); len(h) > 0 {
			t.Errorf("headers at the callee: %q", h)
		}
		if offer := mediaAddr(ic.req.Body()); !inRelayOf(n.a, offer) {
			t.Errorf("offer at %s, want node a's relay", offer)
		}
		ic.dlg.Respond(486, "Busy Here", nil)
		waitFor(t, "a's record", func() bool {
			rec, _ := n.st.Call(ctx, ic.req.CallID().Value())
			return rec.Node == "a" && rec.EndReason == endBusy
		})
	})
	t.Run("unregistered connection", func(t *testing.T) {
		// From a non-peer address the mark buys nothing: challenged.
		r := dialTCP(t, n.b.addr)
		id := randomToken(6)
		r.send(t, sipText(
			"INVITE sip:"+bob+"@"+testDomain+" SIP/2.0",
			"Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK"+id,
			"Max-Forwards: 70",
			"From: <sip:"+alice+"@"+testDomain+">;tag="+id,
			"To: <sip:"+bob+"@"+testDomain+">",
			"Call-ID: forged-"+id,
			"CSeq: 1 INVITE",
			"Contact: <sip:"+alice+"@127.0.0.1:9;transport=tcp>",
			hdrForwarded+": a",
			"Content-Length: 0",
		))
		m, err := r.read(3 * time.Second)
		if err != nil || status(m) != 407 {
			t.Fatalf("got %v %v, want 407", m, err)
		}
		select {
		case ic := <-b.calls:
			ic.finish()
			t.Fatal("a forged forward reached the callee")
		case <-time.After(200 * time.Millisecond):
		}
	})
}

func TestPeersValidation(t *testing.T) {
	for name, peers := range map[string]map[string]netip.AddrPort{
		"no port":     {"b": netip.MustParseAddrPort("192.0.2.1:0")},
		"unspecified": {"b": netip.MustParseAddrPort("0.0.0.0:5060")},
		"shared addr": {"b": netip.MustParseAddrPort("192.0.2.1:5060"), "c": netip.MustParseAddrPort("192.0.2.1:5061")},
	} {
		cfg := testConfig()
		cfg.Peers = peers
		if _, err := New(cfg, Deps{Store: fuzzStore{}}); err == nil || !strings.Contains(err.Error(), "peer") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestForwardedReInvite: re-INVITEs from either end and INFO follow the
// dialog through both nodes, and every SDP stays anchored on node a.
func TestForwardedReInvite(t *testing.T) {
	ctx := context.Background()
	n := newTwoNodes(t, sqliteStores, nodeOptions{}, nodeOptions{})
	a, b := n.phones(t)
	done, ic := ring(ctx, a, b)
	res := answerCall(t, b, ic, done, "answer")

	reinvite := func(from, to *phone, do func(*sipmsg.Request) (*sipmsg.Response, error), target sipmsg.Uri) {
		t.Helper()
		req := sipmsg.NewRequest(sipmsg.INVITE, target)
		req.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
		req.SetBody(from.sdp())
		answered := make(chan *sipmsg.Response, 1)
		go func() {
			r, err := do(req)
			if err != nil {
				t.Error(err)
			}
			answered <- r
		}()
		ric := to.nextCall(5 * time.Second)
		if got := mediaAddr(ric.req.Body()); !inRelayOf(n.a, got) {
			t.Errorf("%s's re-INVITE reached %s pointing at %s", from.user, to.user, got)
		}
		ric.tx.Respond(sipmsg.NewSDPResponseFromRequest(ric.req, to.sdp()))
		r := wait(t, answered, "re-INVITE answer")
		ric.finish()
		if r == nil || r.StatusCode != 200 || !inRelayOf(n.a, mediaAddr(r.Body())) {
			t.Fatalf("%s's re-INVITE answered %v", from.user, r)
		}
		if h := peerHeaders(r); len(h) > 0 {
			t.Errorf("node-to-node headers reached %s: %q", from.user, h)
		}
	}
	calleeContact := res.sess.InviteResponse.Contact().Address
	reinvite(a, b, func(r *sipmsg.Request) (*sipmsg.Response, error) { return res.sess.Do(ctx, r) }, calleeContact)
	if err := res.sess.WriteRequest(sipmsg.NewRequest(sipmsg.ACK, calleeContact)); err != nil {
		t.Fatal(err)
	}
	callerContact := ic.req.Contact().Address
	reinvite(b, a, func(r *sipmsg.Request) (*sipmsg.Response, error) { return ic.dlg.Do(ctx, r) }, callerContact)
	if err := ic.dlg.WriteRequest(sipmsg.NewRequest(sipmsg.ACK, callerContact)); err != nil {
		t.Fatal(err)
	}
	if n.b.relay.AllocatedPorts() != 0 {
		t.Errorf("node b's relay holds %d ports", n.b.relay.AllocatedPorts())
	}
	info := sipmsg.NewRequest(sipmsg.INFO, calleeContact)
	if r, err := res.sess.Do(ctx, info); err != nil || r.StatusCode != 200 {
		t.Fatalf("INFO: %v %v", r, err)
	}
	if err := res.sess.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	wait(t, b.byes, "BYE at the callee")
}

// TestPeerHeaderRules: what a node believes of X-Z5-Source and what it
// passes on, by where a message came from.
func TestPeerHeaderRules(t *testing.T) {
	cfg := testConfig()
	cfg.Node, cfg.Peers = "a", map[string]netip.AddrPort{"b": netip.MustParseAddrPort("127.0.0.3:5060")}
	srv, err := New(cfg, Deps{Store: fuzzStore{}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	fallback := netip.MustParseAddr("198.51.100.1")
	msg := func(source, transport string, headers ...string) *sipmsg.Request {
		r := sipmsg.NewRequest(sipmsg.BYE, sipmsg.Uri{Scheme: "sip", User: bob, Host: testDomain})
		cid := sipmsg.CallIDHeader("rules")
		r.AppendHeader(&cid)
		for _, h := range headers {
			name, value, _ := strings.Cut(h, ": ")
			r.AppendHeader(sipmsg.NewHeader(name, value))
		}
		r.SetSource(source)
		r.SetTransport(transport)
		return r
	}
	for _, tt := range []struct {
		name          string
		in            *sipmsg.Request
		toPeer        bool
		wantSignal    string
		wantPassed    []string
		wantForwarded bool
	}{
		{"peer over TCP", msg("127.0.0.3:41000", "TCP", "X-Z5-Source: 127.0.0.9", "X-Z5-Forwarded: b"),
			false, "127.0.0.9", nil, true},
		{"peer over UDP", msg("127.0.0.3:5060", "UDP", "X-Z5-Source: 127.0.0.9", "X-Z5-Forwarded: b"),
			false, "198.51.100.1", nil, false},
		{"peer naming another node", msg("127.0.0.3:41000", "TCP", "X-Z5-Forwarded: c"),
			false, "198.51.100.1", nil, false},
		{"client", msg("127.0.0.1:5999", "TCP", "X-Z5-Source: 127.0.0.9", "X-Z5-Forwarded: b"),
			true, "198.51.100.1", []string{"X-Z5-Source: 127.0.0.1"}, false},
		{"peer to peer", msg("127.0.0.3:41000", "TCP", "X-Z5-Source: 127.0.0.9"),
			true, "127.0.0.9", nil, false},
		{"garbage source header", msg("127.0.0.3:41000", "TCP", "X-Z5-Source: 0.0.0.0"),
			false, "198.51.100.1", nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := srv.signalIP(tt.in, fallback); got.String() != tt.wantSignal {
				t.Errorf("signalIP = %s, want %s", got, tt.wantSignal)
			}
			out := tt.in.Clone()
			srv.passOn(out, tt.in, tt.toPeer)
			if d := cmp.Diff(tt.wantPassed, peerHeaders(out)); d != "" {
				t.Errorf("passed on (-want +got):\n%s", d)
			}
			if _, ok := srv.forwardedBy(tt.in); ok != tt.wantForwarded {
				t.Errorf("forwardedBy = %v, want %v", ok, tt.wantForwarded)
			}
		})
	}
}
