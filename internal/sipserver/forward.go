package sipserver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/sipcore"
	"github.com/z5vrs/z5/internal/store"
)

// Forwarding between MCS nodes. A client's registration lives on the node
// holding its TCP flow, and only that node can reach it (the customer's
// firewall admits nothing else). The location table in the shared store
// says which node that is, so a call reaching node A for a number
// registered on node B goes like this:
//
//	caller ──flow── A ──TCP── B ──flow── callee
//
//   - A authenticates the caller, writes the call record and anchors the
//     media on its relay, exactly as for a local call, then sends the
//     INVITE to B over a node-to-node TCP connection with
//     "X-Z5-Forwarded: <A's node name>".
//   - B trusts that mark only from a peer's address over TCP (a connection
//     cannot come from a forged address), and then only routes: to its
//     own bindings of the callee, never on to another node (no loops),
//     with no second relay and no second call record.
//   - Both Record-Route, so ACK, BYE and re-INVITEs go A→B→callee and back
//     and each node follows the dialog as for a local call. B marks what it
//     passes back with "X-Z5-Source: <callee's address>": A's relay may
//     latch the callee's media only from there, not from B's address.
//
// The peer connection is dialled by A and handed to sipgo as if accepted
// (peerListener), so it is an ordinary flow: framed and limited like any
// other, and B's in-dialog requests come back over it.

// Header fields between nodes. Neither is ever taken from a client: both
// are removed from every message a node passes on, then set by the node.
const (
	hdrForwarded = "X-Z5-Forwarded" // on an INVITE to a peer: the origin node
	hdrSource    = "X-Z5-Source"    // to a peer: the client's signalling address
)

const (
	// peerDialTimeout bounds connecting to a peer; a dead peer fails the
	// fork (480) rather than the whole call setup waiting for it.
	peerDialTimeout = 2 * time.Second
	// peerIdle keeps a node-to-node connection open while idle: calls
	// through it may stay silent for hours. TCP keepalive (on by default
	// for Go's dialled and accepted connections) notices a vanished peer.
	peerIdle = 24 * time.Hour
)

// Health reports MCS node membership.
type Health interface{ Healthy(node string) bool }

func validatePeers(peers map[string]netip.AddrPort) error {
	seen := map[netip.Addr]string{}
	for _, name := range slices.Sorted(maps.Keys(peers)) {
		ap := peers[name]
		switch {
		case name == "":
			return errors.New("sipserver: config: a peer has no name")
		case !ap.IsValid() || ap.Port() == 0 || ap.Addr().IsUnspecified():
			return fmt.Errorf("sipserver: config: peer %s: address %v is not a host and port", name, ap)
		}
		// Peers are told apart by source address.
		if other, dup := seen[ap.Addr().Unmap()]; dup {
			return fmt.Errorf("sipserver: config: peers %s and %s share the address %s", other, name, ap.Addr())
		}
		seen[ap.Addr().Unmap()] = name
	}
	return nil
}

// ownLoop reports whether a Via is this node's own: a request carrying
// one has looped back (482). Every node's branches share one prefix; a
// Via another node put there (a call it forwarded) names that node.
func (s *Server) ownLoop(via *sipmsg.ViaHeader) bool {
	if !ownBranch(via) {
		return false
	}
	a, err := netip.ParseAddr(strings.Trim(via.Host, "[]"))
	if err != nil {
		return true
	}
	_, peer := s.peerIP(a)
	return !peer
}

// peerAt returns the peer node a message came from: over TCP or TLS (a
// connection's source address cannot be forged), from a peer's address
// that is not also one of ours.
func (s *Server) peerAt(source, transport string) (string, bool) {
	if t := sipmsg.NetworkToUpper(transport); t != "TCP" && t != "TLS" {
		return "", false
	}
	ap, err := netip.ParseAddrPort(source)
	if err != nil {
		return "", false
	}
	return s.peerIP(ap.Addr())
}

// peerIP returns the peer node at ip, unless ip is also one of ours (then
// it cannot tell the peer from us or our clients).
func (s *Server) peerIP(ip netip.Addr) (string, bool) {
	ip = ip.Unmap()
	node, ok := s.peers.byIP[ip]
	if !ok {
		return "", false
	}
	s.mu.Lock()
	self := slices.Contains(s.selfIPs, ip)
	s.mu.Unlock()
	return node, !self
}

// forwardedBy reports the origin node of an INVITE a peer forwarded. The
// mark from anyone else is removed: it must not reach a peer as if this
// node had set it.
func (s *Server) forwardedBy(req *sipmsg.Request) (string, bool) {
	h := req.GetHeader(hdrForwarded)
	if h == nil {
		return "", false
	}
	node, ok := s.peerAt(req.Source(), req.Transport())
	if ok && strings.TrimSpace(h.Value()) == node {
		return node, true
	}
	s.log.Info("forwarding mark from a non-peer removed", "remote_addr", req.Source(), "call_id", req.CallID().Value())
	removeHeaders(req, hdrForwarded, hdrSource)
	return "", false
}

// headed is what requests and responses share for passOn.
type headed interface {
	GetHeader(name string) sipmsg.Header
	GetHeaders(name string) []sipmsg.Header
	RemoveHeader(name string) bool
	AppendHeader(h sipmsg.Header)
	Source() string
	Transport() string
}

func removeHeaders(m headed, names ...string) {
	for _, n := range names {
		for _, h := range m.GetHeaders(n) {
			m.RemoveHeader(h.Name())
		}
	}
}

// passOn prepares out, the copy of in the proxy sends on: the node-to-node
// headers in carried are removed, and when out goes to a peer and in came
// from a client, X-Z5-Source tells the peer where the client signals from.
func (s *Server) passOn(out, in headed, toPeer bool) {
	removeHeaders(out, hdrForwarded, hdrSource)
	if !toPeer {
		return
	}
	if _, fromPeer := s.peerAt(in.Source(), in.Transport()); fromPeer {
		return
	}
	if ap, err := netip.ParseAddrPort(in.Source()); err == nil {
		out.AppendHeader(sipmsg.NewHeader(hdrSource, ap.Addr().Unmap().String()))
	}
}

// signalIP is where the sender of msg signals from, which is where the
// relay accepts its media from: fallback (the message's source), or, for a
// message a peer passed on, the address the peer saw its client at.
func (s *Server) signalIP(msg headed, fallback netip.Addr) netip.Addr {
	if _, ok := s.peerAt(msg.Source(), msg.Transport()); !ok {
		return fallback
	}
	if h := msg.GetHeader(hdrSource); h != nil {
		if a, err := netip.ParseAddr(strings.TrimSpace(h.Value())); err == nil && !a.IsUnspecified() {
			return a.Unmap()
		}
	}
	return fallback
}

// transitInvite routes an INVITE a peer forwarded to this node's own
// bindings of the callee. The origin anchors the media and keeps the
// call record; this node adds neither.
func (s *Server) transitInvite(req *sipmsg.Request, tx sipmsg.ServerTransaction, origin string) {
	flow, ok := s.flowOf(req)
	if !ok {
		return
	}
	flow.peer = origin
	if flow.conn != nil {
		flow.conn.extendBinding(time.Now().Add(peerIdle))
	}
	callee, isNumber := sipcore.TargetNumber(req.Recipient.User)
	if !isNumber {
		s.respond(tx, req, 404, "Not Found")
		return
	}
	c := &call{
		id:        req.CallID().Value(),
		transit:   true,
		callerTag: fromTag(req),
		caller: party{
			flow: flow, target: contactURI(req),
			self: fromAsTo(req.From()), peer: cloneTo(req.To()), cseq: req.CSeq().SeqNo,
		},
		early: map[string]party{},
	}
	if !s.calls.add(c) {
		s.respond(tx, req, 482, "Loop Detected")
		return
	}
	forks := s.reg.lookup(callee) // never on to another node
	if len(forks) == 0 {
		s.fail(c, req, tx, 480, "Temporarily Unavailable")
		return
	}
	s.peers.forwards.WithLabelValues("in").Inc()
	s.log.Info("forwarded call", "call_id", c.id, "peer_node", origin, "to", callee, "forks", len(forks))
	s.respond(tx, req, 100, "Trying")
	s.fork(c, req, tx, forks, req.Body())
}

// peerForks returns a fork to every other node the callee is registered on
// (by the shared location table), over a connection to that node. Devices
// registered here, and nodes membership counts as dead, are left out; a
// node that cannot be reached has its rows for the callee removed as
// stale, so the next call does not wait for it again.
func (s *Server) peerForks(ctx context.Context, callee string, local []binding) []binding {
	if len(s.cfg.Peers) == 0 {
		return nil
	}
	regs, err := s.store.Registrations(ctx, callee, s.now())
	if err != nil {
		s.log.Error("location lookup failed", "number", callee, "error", err)
		return nil
	}
	isPeer := func(node string) bool { _, ok := s.cfg.Peers[node]; return ok }
	var alive func(string) bool
	if s.peers.health != nil {
		alive = s.peers.health.Healthy
	}
	var out []binding
	for _, pt := range sipcore.PeerTargets(regs, isPeer, coreBindings(local), alive, s.now()) {
		node := pt.Node
		if pt.Down {
			s.log.Info("callee's node is down: not forwarded", "number", callee, "peer_node", node)
			continue
		}
		flow, err := s.peers.flow(ctx, node)
		if err != nil {
			s.log.Warn("callee's node unreachable: registrations dropped as stale", "number", callee, "peer_node", node, "error", err)
			s.dropStale(pt.Registrations)
			continue
		}
		s.peers.forwards.WithLabelValues("out").Inc()
		out = append(out, binding{
			Binding: sipcore.Binding{
				Number: callee,
				// The peer resolves the number itself: the Request-URI
				// names the SIP domain, which every node serves.
				Contact: sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", User: callee, Host: s.cfg.Domain}},
			},
			flow: flow,
		})
	}
	return out
}

func (s *Server) dropStale(regs []store.Registration) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, r := range regs {
		if err := s.store.DeleteRegistration(ctx, r.Number, r.DeviceID, r.Node, r.FlowID); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("stale registration not removed", "number", r.Number, "peer_node", r.Node, "error", err)
		}
	}
}
