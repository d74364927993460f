// Package dnsserver is step 1 on the provider side: the authoritative
// nameserver every client resolves the role names against (zdial, lb.mcs,
// the MCS hosts and the SIP domain with its RFC 3263 SRV records).
//
// The zones are built from the deployment config at start, so every
// nameserver of both sites serves the same data without zone transfers.
// Only lb.mcs and the SIP domain change at run time: they list the MCS
// nodes that MCS membership currently calls healthy, so clients stop being
// sent to a dead node within one short TTL.
//
// The server is authoritative only (REFUSED outside its zones, no
// recursion), answers over UDP and TCP on the same port, speaks EDNS0,
// truncates what does not fit a UDP response, answers ANY minimally
// (RFC 8482) and rate-limits UDP responses per client network so it is a
// poor amplifier for spoofed floods.
package dnsserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/z5vrs/z5/internal/config"
)

// Health reports MCS node membership. It is asked on every lb.mcs and SIP
// domain query, from several goroutines at once, so it must be cheap and
// safe for concurrent use.
type Health interface{ Healthy(node string) bool }

// Deps are the server's collaborators.
type Deps struct {
	Log *slog.Logger
	// Health filters lb.mcs and the SIP domain; nil counts every node
	// healthy.
	Health Health
	// Registerer receives the server's metrics; nil leaves them
	// unregistered.
	Registerer prometheus.Registerer
}

// Socket limits. A TCP client gets tcpIdle to send each query (RFC 7766
// 6.2.3 asks for timeouts of seconds, not minutes) and at most maxTCPConns
// connections are served at once, so slow clients cannot pile up.
const (
	tcpIdle      = 10 * time.Second
	tcpWrite     = 10 * time.Second
	maxTCPConns  = 512
	listenTries  = 32
	errorBackoff = 50 * time.Millisecond
)

var (
	errClosed       = errors.New("dns server closed")
	errNotListening = errors.New("dns server not listening")
	errServing      = errors.New("dns server already serving")
)

// Server is the authoritative DNS server of one node.
type Server struct {
	log     *slog.Logger
	health  Health
	zd      *zoneData
	udpSize int
	rrl     *limiter // nil: rate limiting off
	metrics *metrics
	now     func() time.Time // the rate limiter's clock; tests replace it before use
	tcpSem  chan struct{}    // one token per open TCP connection
	done    chan struct{}    // closed by Close

	wg sync.WaitGroup // socket loops and TCP connections

	mu      sync.Mutex // guards the following
	udp     *net.UDPConn
	tcp     *net.TCPListener
	addr    netip.AddrPort
	pktinfo pktinfo
	conns   map[net.Conn]struct{}
	serving bool
	closed  bool
}

// New builds the zones from cfg and checks them; it binds nothing.
func New(cfg *config.Config, deps Deps) (*Server, error) {
	if cfg == nil {
		return nil, errors.New("dns: nil config")
	}
	if cfg.DNS.UDPSize < minUDPSize || cfg.DNS.UDPSize > 65535 {
		return nil, fmt.Errorf("dns: udp_size %d outside %d-65535", cfg.DNS.UDPSize, minUDPSize)
	}
	if cfg.DNS.RateLimit < -1 {
		return nil, fmt.Errorf("dns: rate_limit %d: want a positive rate, or -1 (or 0) for none", cfg.DNS.RateLimit)
	}
	zd, err := buildZones(cfg)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		log:     log,
		health:  deps.Health,
		zd:      zd,
		udpSize: cfg.DNS.UDPSize,
		metrics: m,
		now:     time.Now,
		tcpSem:  make(chan struct{}, maxTCPConns),
		done:    make(chan struct{}),
		conns:   map[net.Conn]struct{}{},
	}
	if cfg.DNS.RateLimit > 0 {
		s.rrl = newLimiter(cfg.DNS.RateLimit, rrlMaxBuckets)
	}
	return s, nil
}

// Listen binds UDP and TCP on addr. With port 0 it picks a port free for
// both protocols.
func (s *Server) Listen(addr netip.AddrPort) error {
	if !addr.IsValid() {
		return fmt.Errorf("dns: listen: invalid address %v", addr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("dns: listen %s: %w", addr, errClosed)
	}
	if s.udp != nil {
		return fmt.Errorf("dns: listen %s: already listening on %s", addr, s.addr)
	}
	ip := addr.Addr().Unmap()
	addr = netip.AddrPortFrom(ip, addr.Port())
	udpNet, tcpNet := "udp6", "tcp6"
	if ip.Is4() {
		udpNet, tcpNet = "udp4", "tcp4"
	}
	for try := 1; ; try++ {
		udp, err := net.ListenUDP(udpNet, net.UDPAddrFromAddrPort(addr))
		if err != nil {
			return fmt.Errorf("dns: listen udp %s: %w", addr, err)
		}
		port := uint16(udp.LocalAddr().(*net.UDPAddr).Port)
		bound := netip.AddrPortFrom(ip, port)
		tcp, err := net.ListenTCP(tcpNet, net.TCPAddrFromAddrPort(bound))
		if err != nil {
			udp.Close()
			// The kernel picked a UDP port whose TCP twin is taken: try
			// another.
			if addr.Port() == 0 && try < listenTries && errors.Is(err, syscall.EADDRINUSE) {
				continue
			}
			return fmt.Errorf("dns: listen tcp %s: %w", bound, err)
		}
		pi, err := newPktinfo(udp, ip)
		if err != nil {
			udp.Close()
			tcp.Close()
			return fmt.Errorf("dns: listen udp %s: %w", bound, err)
		}
		s.udp, s.tcp, s.addr, s.pktinfo = udp, tcp, bound, pi
		return nil
	}
}

// Addr is the bound address (the zero AddrPort before Listen).
func (s *Server) Addr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Serve answers queries until ctx ends or Close is called, and returns nil
// then. It returns an error only when it cannot serve at all.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return nil
	case s.udp == nil:
		s.mu.Unlock()
		return errNotListening
	case s.serving:
		s.mu.Unlock()
		return errServing
	}
	s.serving = true
	udp, tcp, pi := s.udp, s.tcp, s.pktinfo
	// A few readers share the UDP socket so one slow write does not stall
	// every client; answers are computed in memory, so more would not help.
	readers := min(max(runtime.GOMAXPROCS(0), 2), 8)
	for range readers {
		s.wg.Go(func() { s.serveUDP(udp, pi) })
	}
	s.wg.Go(func() { s.serveTCP(tcp) })
	s.mu.Unlock()

	s.log.Info("dns serving", "listen_addr", s.Addr().String(), "zones", s.zoneNames())
	select {
	case <-ctx.Done():
	case <-s.done:
	}
	if err := s.Close(); err != nil {
		s.log.Warn("dns close", "error", err)
	}
	return nil
}

// Close stops the server and waits for its goroutines. It is safe to call
// more than once and from several goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	close(s.done)
	var errs []error
	if s.udp != nil {
		errs = append(errs, s.udp.Close())
	}
	if s.tcp != nil {
		errs = append(errs, s.tcp.Close())
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dns: close: %w", err)
	}
	return nil
}

func (s *Server) zoneNames() []string {
	out := make([]string, len(s.zd.zones))
	for i, z := range s.zd.zones {
		out[i] = z.origin
	}
	return out
}

func (s *Server) isClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// pause waits d unless the server closes first; socket loops use it to back
// off after an unexpected error instead of spinning.
func (s *Server) pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.done:
	}
}

func (s *Server) serveUDP(conn *net.UDPConn, pi pktinfo) {
	buf := make([]byte, 65535)
	oob := make([]byte, pi.oobSize())
	out := make([]byte, 0, 4096)
	for {
		n, oobn, _, from, err := conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if s.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("dns udp read", "error", err)
			s.pause(errorBackoff)
			continue
		}
		if from.Port() == 0 {
			continue // nowhere to answer
		}
		resp := s.handlePacket(buf[:n], from.Addr(), false, out[:cap(out)])
		if resp == nil {
			continue
		}
		if _, _, err := conn.WriteMsgUDPAddrPort(resp, pi.reply(oob[:oobn]), from); err != nil {
			if s.isClosed() {
				return
			}
			if s.log.Enabled(context.Background(), slog.LevelDebug) {
				s.log.Debug("dns udp write", "remote_addr", from.String(), "error", err)
			}
		}
	}
}

func (s *Server) serveTCP(ln *net.TCPListener) {
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if s.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: wait for connections to go away.
			s.log.Warn("dns tcp accept", "error", err)
			s.pause(errorBackoff)
			continue
		}
		select {
		case s.tcpSem <- struct{}{}:
		default:
			c.Close() // too many open: the client retries another server
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			<-s.tcpSem
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Go(func() {
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
				<-s.tcpSem
			}()
			s.serveConn(c)
		})
		s.mu.Unlock()
	}
}

// serveConn answers the queries of one TCP connection in order (RFC 7766
// allows pipelining; answering in order is always correct).
func (s *Server) serveConn(c *net.TCPConn) {
	from := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
	var lenb [2]byte
	in := make([]byte, 0, 512)
	out := make([]byte, 2, 4096)
	for {
		// One deadline per message, not per read: a client dribbling
		// bytes still has only tcpIdle to complete a query.
		if err := c.SetReadDeadline(time.Now().Add(tcpIdle)); err != nil {
			return
		}
		if _, err := io.ReadFull(c, lenb[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(lenb[:]))
		if n < 12 {
			return // shorter than a header: not DNS, framing is lost
		}
		if cap(in) < n {
			in = make([]byte, n)
		}
		in = in[:n]
		if _, err := io.ReadFull(c, in); err != nil {
			return
		}
		resp := s.handlePacket(in, from, true, out[2:cap(out)])
		if resp == nil {
			continue
		}
		out = append(out[:2], resp...)
		binary.BigEndian.PutUint16(out, uint16(len(resp)))
		if err := c.SetWriteDeadline(time.Now().Add(tcpWrite)); err != nil {
			return
		}
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// handlePacket is one wire query to one wire response (nil: send
// nothing), packed into buf when it is long enough.
func (s *Server) handlePacket(b []byte, client netip.Addr, tcp bool, buf []byte) []byte {
	req := new(dns.Msg)
	if err := req.Unpack(b); err != nil {
		s.metrics.malformed.Inc()
		if len(b) < 12 || req.Response {
			return nil // no header to answer, or a response: drop
		}
		if s.rateLimit(client, tcp) != rrlAllow {
			return nil
		}
		// The header parsed: say FORMERR so a real client stops waiting.
		resp := &dns.Msg{MsgHdr: dns.MsgHdr{
			Id: req.Id, Response: true, Opcode: req.Opcode,
			RecursionDesired: req.RecursionDesired, Rcode: dns.RcodeFormatError,
		}}
		out, err := resp.PackBuffer(buf)
		if err != nil {
			return nil
		}
		s.metrics.queries.WithLabelValues("none", dns.RcodeToString[dns.RcodeFormatError]).Inc()
		return out
	}
	resp := s.Handle(req, client, tcp)
	if resp == nil {
		return nil
	}
	out, err := resp.PackBuffer(buf)
	if err != nil {
		// Our own records always pack; a question that unpacked packs
		// too. Should either ever fail, answer SERVFAIL, not silence.
		s.log.Error("dns pack response", "error", err)
		fail := &dns.Msg{MsgHdr: dns.MsgHdr{
			Id: req.Id, Response: true, Opcode: req.Opcode,
			RecursionDesired: req.RecursionDesired, Rcode: dns.RcodeServerFailure,
		}}
		if out, err = fail.PackBuffer(buf); err != nil {
			return nil
		}
	}
	return out
}

// pktinfo makes UDP answers leave from the address the query was sent to.
// A socket bound to a wildcard address would otherwise answer from
// whatever address the route prefers, and resolvers drop answers from an
// address they did not ask.
type pktinfo struct {
	family int // 0: bound to a specific address, nothing to do; 4 or 6
}

func newPktinfo(conn *net.UDPConn, bound netip.Addr) (pktinfo, error) {
	if !bound.IsUnspecified() {
		return pktinfo{}, nil
	}
	if bound.Is4() {
		if err := ipv4.NewPacketConn(conn).SetControlMessage(ipv4.FlagDst, true); err != nil {
			return pktinfo{}, fmt.Errorf("enable IP_PKTINFO: %w", err)
		}
		return pktinfo{family: 4}, nil
	}
	if err := ipv6.NewPacketConn(conn).SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true); err != nil {
		return pktinfo{}, fmt.Errorf("enable IPV6_RECVPKTINFO: %w", err)
	}
	return pktinfo{family: 6}, nil
}

func (p pktinfo) oobSize() int {
	switch p.family {
	case 4:
		return len(ipv4.NewControlMessage(ipv4.FlagDst | ipv4.FlagInterface))
	case 6:
		return len(ipv6.NewControlMessage(ipv6.FlagDst | ipv6.FlagInterface))
	}
	return 0
}

// reply turns the control message of a query into the one that sends its
// answer from the query's destination address.
func (p pktinfo) reply(oob []byte) []byte {
	switch p.family {
	case 4:
		var cm ipv4.ControlMessage
		if cm.Parse(oob) != nil || cm.Dst == nil {
			return nil
		}
		return (&ipv4.ControlMessage{Src: cm.Dst}).Marshal()
	case 6:
		var cm ipv6.ControlMessage
		if cm.Parse(oob) != nil || cm.Dst == nil {
			return nil
		}
		return (&ipv6.ControlMessage{Src: cm.Dst, IfIndex: cm.IfIndex}).Marshal()
	}
	return nil
}
