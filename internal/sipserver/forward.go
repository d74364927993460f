package sipserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

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

// peers holds the node-to-node connections this node dialled.
type peers struct {
	addrs map[string]netip.AddrPort // Config.Peers; immutable
	t     *transport
	log   *slog.Logger
	ctx   context.Context // ends when the server closes
	// self is the server's listening address; goAsync runs a goroutine
	// the server waits for; serveTCP is sipgo's reader of connections.
	self     func() netip.AddrPort
	goAsync  func(func())
	serveTCP func(net.Listener) error

	health Health                // nil: every peer counts as alive
	byIP   map[netip.Addr]string // peer node by address; immutable
	l      *peerListener
	start  sync.Once // starts sipgo's reader of dialled connections

	forwards  *prometheus.CounterVec // by direction
	dialFails prometheus.Counter

	mu    sync.Mutex // guards conns
	conns map[string]*peerConn
}

// peerConn is the connection to one peer; mu is held while dialling, so
// calls racing to the same peer share one connection.
type peerConn struct {
	mu sync.Mutex
	fc *flowConn
}

func newPeers(s *Server, health Health, reg prometheus.Registerer) (*peers, error) {
	ps := &peers{
		addrs: s.cfg.Peers, t: s.t, log: s.log, ctx: s.ctx, self: s.Addr, goAsync: s.goAsync, serveTCP: s.sip.ServeTCP,
		health: health, byIP: map[netip.Addr]string{}, conns: map[string]*peerConn{},
		l: &peerListener{in: make(chan peerHandoff), done: s.ctx.Done(), addr: s.Addr},
		forwards: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "z5", Subsystem: "sip", Name: "forwarded_calls_total",
			Help: "Calls forwarded between MCS nodes: out (to the node holding the callee's flow) or in.",
		}, []string{"direction"}),
		dialFails: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "z5", Subsystem: "sip", Name: "peer_connect_failures_total",
			Help: "Failed connections to another MCS node.",
		}),
	}
	for name, ap := range s.cfg.Peers {
		ps.byIP[ap.Addr().Unmap()] = name
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{ps.forwards, ps.dialFails} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("sip metrics: %w", err)
			}
		}
	}
	return ps, nil
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
		s.respond(tx, req, 480, "Temporarily Unavailable")
		s.end(c, endUnavailable, 480)
		return
	}
	s.peers.forwards.WithLabelValues("in").Inc()
	s.log.Info("forwarded call", "call_id", c.id, "from_node", origin, "to", callee, "forks", len(forks))
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
	here := map[int64]bool{}
	for _, b := range local {
		here[b.DeviceID] = true
	}
	byNode := map[string][]store.Registration{}
	for _, r := range regs {
		if _, peer := s.cfg.Peers[r.Node]; peer && !here[r.DeviceID] {
			byNode[r.Node] = append(byNode[r.Node], r)
		}
	}
	var out []binding
	for _, node := range slices.Sorted(maps.Keys(byNode)) {
		if s.peers.health != nil && !s.peers.health.Healthy(node) && !recentlyRegistered(byNode[node], s.now()) {
			s.log.Info("callee's node is down: not forwarded", "number", callee, "node", node)
			continue
		}
		flow, err := s.peers.flow(ctx, node)
		if err != nil {
			s.log.Warn("callee's node unreachable: registrations dropped as stale", "number", callee, "node", node, "error", err)
			s.dropStale(byNode[node])
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
			s.log.Warn("stale registration not removed", "number", r.Number, "node", r.Node, "error", err)
		}
	}
}

// reach returns f, or for a node-to-node flow that has closed, a live
// connection to the same node (dialled when needed); f itself when none
// can be had, so that sending fails as it would have.
func (ps *peers) reach(f flowRef) flowRef {
	if f.peer == "" || f.alive(ps.t) {
		return f
	}
	ctx, cancel := context.WithTimeout(ps.ctx, peerDialTimeout)
	defer cancel()
	nf, err := ps.flow(ctx, f.peer)
	if err != nil {
		ps.log.Debug("peer not reachable", "node", f.peer, "error", err)
		return f
	}
	return nf
}

// flow returns the connection to a peer node, dialling it when there is
// none.
func (ps *peers) flow(ctx context.Context, node string) (flowRef, error) {
	addr, ok := ps.addrs[node]
	if !ok {
		return flowRef{}, fmt.Errorf("sipserver: %q is not a peer node", node)
	}
	ps.mu.Lock()
	pc := ps.conns[node]
	if pc == nil {
		pc = &peerConn{}
		ps.conns[node] = pc
	}
	ps.mu.Unlock()

	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.fc != nil {
		if f := ps.ref(node, pc.fc); f.alive(ps.t) {
			pc.fc.extendBinding(time.Now().Add(peerIdle))
			return f, nil
		}
		pc.fc = nil
	}
	fc, err := ps.dial(ctx, addr)
	if err != nil {
		ps.dialFails.Inc()
		return flowRef{}, fmt.Errorf("sipserver: connect to peer %s (%s): %w", node, addr, err)
	}
	ps.log.Info("connected to peer", "node", node, "remote_addr", addr.String(), "flow", fc.id)
	pc.fc = fc
	return ps.ref(node, fc), nil
}

func (ps *peers) ref(node string, fc *flowConn) flowRef {
	// Via and Record-Route name our listening port, where the peer (or
	// anyone following the route) reaches us, not the dialled socket's.
	local := netip.AddrPortFrom(fc.laddr.Addr(), ps.self().Port())
	return flowRef{id: fc.id, transport: "TCP", dest: fc.RemoteAddr().String(), local: local, conn: fc, peer: node}
}

// dial connects to a peer from this node's own address (the peer knows
// us by it) and hands the connection to sipgo, which then reads it like
// an accepted one and sends requests for the peer's address over it.
func (ps *peers) dial(ctx context.Context, addr netip.AddrPort) (*flowConn, error) {
	ps.start.Do(func() {
		ps.goAsync(func() {
			if err := ps.serveTCP(ps.l); err != nil && !errors.Is(err, net.ErrClosed) {
				ps.log.Warn("peer connections: reader stopped", "error", err)
			}
		})
	})
	d := net.Dialer{Timeout: peerDialTimeout}
	if ip := ps.self().Addr(); ip.IsValid() && !ip.IsUnspecified() {
		d.LocalAddr = &net.TCPAddr{IP: ip.AsSlice()}
	}
	c, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return nil, err
	}
	fc := ps.t.newFlowConn(c, "TCP")
	fc.extendBinding(time.Now().Add(peerIdle))
	taken := make(chan struct{})
	select {
	case ps.l.in <- peerHandoff{c: fc, taken: taken}:
	case <-ps.ctx.Done():
		fc.Close()
		return nil, net.ErrClosed
	}
	select {
	case <-taken:
	case <-ps.ctx.Done():
		return nil, net.ErrClosed // Close closes every flow, this one too
	}
	return fc, nil
}

// peerListener is the net.Listener sipgo serves dialled peer connections
// from: Accept returns each connection handed to it. Only sipgo's serving
// goroutine calls Accept.
type peerListener struct {
	in   chan peerHandoff
	done <-chan struct{} // the server's context
	addr func() netip.AddrPort
	// taken is closed at the next Accept: sipgo has added the previous
	// connection to its pool, so requests can be sent over it.
	taken chan struct{}
}

type peerHandoff struct {
	c     net.Conn
	taken chan struct{}
}

func (l *peerListener) Accept() (net.Conn, error) {
	if l.taken != nil {
		close(l.taken)
		l.taken = nil
	}
	select {
	case h := <-l.in:
		l.taken = h.taken
		return h.c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close does nothing: the listener ends with the server's context.
func (l *peerListener) Close() error { return nil }

// Addr is the server's SIP address (sipgo records its port).
func (l *peerListener) Addr() net.Addr { return net.TCPAddrFromAddrPort(l.addr()) }

// freshRegistration is how recent a registration must be to outweigh the
// membership table: a node that took a REGISTER moments ago is alive even
// if our copy of the table (read every heartbeat) has not seen it yet, as
// right after both nodes start. A wrong guess costs a connect attempt,
// which then drops the registrations as stale.
const freshRegistration = 10 * time.Second

func recentlyRegistered(regs []store.Registration, now time.Time) bool {
	for _, r := range regs {
		if now.Sub(r.UpdatedAt) < freshRegistration {
			return true
		}
	}
	return false
}
