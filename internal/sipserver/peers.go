package sipserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/promset"
)

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
	ms := promset.New("z5", "sip")
	ps := &peers{
		addrs: s.cfg.Peers, t: s.t, log: s.log, ctx: s.ctx, self: s.Addr, goAsync: s.goAsync, serveTCP: s.sip.ServeTCP,
		health: health, byIP: map[netip.Addr]string{}, conns: map[string]*peerConn{},
		l: &peerListener{in: make(chan peerHandoff), done: s.ctx.Done(), addr: s.Addr},
		forwards: ms.CounterVec("forwarded_calls_total",
			"Calls forwarded between MCS nodes: out (to the node holding the callee's flow) or in.", "direction"),
		dialFails: ms.Counter("peer_connect_failures_total", "Failed connections to another MCS node."),
	}
	for name, ap := range s.cfg.Peers {
		ps.byIP[ap.Addr().Unmap()] = name
	}
	if err := ms.Register(reg); err != nil {
		return nil, fmt.Errorf("sip metrics: %w", err)
	}
	return ps, nil
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
		ps.log.Debug("peer not reachable", "peer_node", f.peer, "error", err)
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
	ps.log.Info("connected to peer", "peer_node", node, "remote_addr", addr.String(), "flow", fc.id)
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
