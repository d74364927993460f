// Package sipserver is the MCS SIP registrar and proxy (step 4), built on
// github.com/emiago/sipgo.
//
// Clients register over TCP (UDP and TLS work too) with digest
// authentication (RFC 8760: SHA-256, SHA-512-256, MD5); a Z5 device must
// also present its license. The registration binds the number to the
// client's own connection (an RFC 5626 flow, kept alive by CRLF pings),
// because the customer's firewall lets nothing in: every request to the
// device, incoming calls included, goes back over that connection. Calls
// between registered numbers are proxied with every SDP rewritten by the
// media relay (step 5), so all media flows through the MCS.
//
// Trust: a request arriving over a TCP/TLS flow that a registration is
// bound to is attributed to the registered device without a second digest
// challenge; the flow is a connection that device authenticated when it
// registered and that nobody else can write into. Requests over UDP, or
// over a connection without a registration, are challenged (407).
//
// sipgo provides parsing, transactions and connection handling. It falls
// short in a few places, each wrapped here and explained where it is done:
// message limits and precise 4xx answers to malformed input (inspect.go,
// transport_*.go), the Server header on responses sipgo writes itself,
// outbound dialling it would do to addresses named in a Via (refused), and
// its UDP connection pool growing with every source address.
//
// The protocol decisions (what a REGISTER changes, where a request goes, a
// forked INVITE's outcome, the digest failure limits) are pure functions
// in internal/sipcore; this package is their shell: transports, timers,
// the binding and call tables, the store and the wiring.
package sipserver

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/relay"
	"github.com/z5vrs/z5/internal/sipcore"
	"github.com/z5vrs/z5/internal/store"
)

// Deps are the server's collaborators.
type Deps struct {
	Store       Store
	Relay       *relay.Relay // nil: calls are refused with 503
	LicenseKeys []ed25519.PublicKey
	Log         *slog.Logger
	Registerer  prometheus.Registerer
	Now         func() time.Time
	// Health says whether a peer node is alive (membership); calls are not
	// forwarded to one that is not. Nil: every peer is tried.
	Health Health
}

// Server is the registrar and proxy of one MCS node.
type Server struct {
	cfg   Config
	log   *slog.Logger
	store Store
	relay *relay.Relay
	keys  []ed25519.PublicKey
	now   func() time.Time
	m     *metrics

	ua  *sipgo.UserAgent
	sip *sipgo.Server
	cli *sipgo.Client
	t   *transport

	auth     *digestAuth
	devices  *deviceCache // devices read by the digest checks (devcache.go)
	failures *failureLimiter
	shield   *shield // bans, rate and in-flight limits (guard.go)
	reg      *registrar
	calls    *calls        // the calls through this node
	records  *recordWriter // call records, written off the request path (records.go)
	health   Health        // nil: no peer's records are swept
	started  time.Time     // New: records of this node older than this are a previous run's
	// sweepEvery is how often dead nodes' records are looked for (tests
	// shorten it).
	sweepEvery time.Duration
	peers      *peers
	local      sipcore.Local // what names this node (isOurHost, ownLoop)
	// The interpreter center (relaycall.go, acd_*.go, trunk.go).
	acdq       *acdQueue
	acdm       *acdMetrics
	trunkAllow []netip.Prefix
	trunkMu    sync.Mutex // guards trunks
	trunks     map[trunkKey]*trunkLink
	trunkTLS   *trunkTLS // trunk_tls.go

	// ctx ends when the server closes: handlers waiting on the network
	// give up.
	ctx    context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup // handlers and their helper goroutines
	// slWork hands a request answered without a transaction to an idle
	// stateless worker (stateless.go).
	slWork chan statelessJob

	mu       sync.Mutex // guards the following
	tcp      net.Listener
	tls      net.Listener
	udp      *packetConn
	addr     netip.AddrPort
	tlsAddr  netip.AddrPort
	selfIPs  []netip.Addr
	serving  bool
	closed   bool
	closeErr error

	closeDone chan struct{} // closed when Close has finished
	// prev is this node's heartbeat from its previous run, read by Listen
	// (records.go).
	prev     store.NodeStatus
	havePrev bool
}

// errNoDial refuses every connection sipgo would open by itself. The MCS
// never dials clients (their firewalls would not let it in anyway), and
// sipgo would otherwise dial the host of a Via when a response's
// connection is gone: an attacker's choice of address.
var errNoDial = errors.New("sipserver: outbound connections are not made")

func noDialer(net.Addr) net.Dialer {
	return net.Dialer{Timeout: time.Nanosecond, Control: func(string, string, syscall.RawConn) error { return errNoDial }}
}

// New validates cfg and builds a server.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg.normalize()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil {
		return nil, errors.New("sipserver: Deps.Store is required")
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, log: log, store: deps.Store, relay: deps.Relay, keys: deps.LicenseKeys, now: now, m: m,
		auth:     newDigestAuth(cfg.Realm, cfg.NonceTTL, cfg.DigestAlgorithms),
		failures: newFailureLimiter(cfg.MaxAuthFailures, 10*time.Minute),
	}
	s.devices = newDeviceCache(deps.Store.DeviceBySIPUser, cfg.DeviceCacheTTL, now)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.closeDone = make(chan struct{})
	s.local = sipcore.Local{OurHost: s.isOurHost, OwnVia: s.ownLoop}
	s.calls = newCalls()
	s.health, s.started, s.sweepEvery = deps.Health, now(), sweepEvery
	rm, err := newRecordMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	s.records = newRecordWriter(deps.Store, log, rm)
	s.acdq = newACDQueue()
	s.trunks = map[trunkKey]*trunkLink{}
	s.trunkTLS = &trunkTLS{}
	s.trunkAllow = trunkAllowPrefixes(cfg.Trunk.Allow)
	if s.acdm, err = newACDMetrics(deps.Registerer); err != nil {
		return nil, err
	}

	parser := sipmsg.NewParser()
	parser.MaxMessageLength = cfg.MaxMessageSize
	s.t = &transport{
		log:        log,
		in:         &inspector{parser: parser, maxHeaders: cfg.MaxHeaders},
		m:          m,
		maxSize:    cfg.MaxMessageSize,
		maxHeaders: cfg.MaxHeaders,
		idle:       cfg.IdleTimeout,
		msgTimeout: cfg.MessageTimeout,
		server:     "Z5-MCS/" + cfg.Version,
		serverHdr:  sipmsg.NewHeader("Server", "Z5-MCS/"+cfg.Version),
		conns:      newConnTable(cfg.MaxConnsPerIP, cfg.MaxConns),
		onClose: func(c *flowConn) {
			s.reg.dropFlow(c.id)
			// With no call through the node, no call has lost its
			// interpreter: devices connecting afresh for each REGISTER
			// close a flow each, and need no goroutine for it.
			if s.calls.empty() {
				return
			}
			// Not here: sipgo may hold its connection pool's lock while
			// closing, and ending a call sends requests through that pool.
			s.goAsync(func() { s.stationLost(c.id) })
		},
		flows: map[string]*flowConn{},
	}
	s.reg = newRegistrar(cfg.Node, deps.Store, s.t, log, now, m, sipcore.RegisterLimits{
		MinExpires: cfg.MinExpires, MaxExpires: cfg.MaxExpires, DefaultExpires: cfg.DefaultExpires,
		MaxPerNumber: cfg.MaxRegistrationsPerNumber, MaxUDPPerAddr: cfg.MaxUDPBindingsPerAddr,
	})
	if s.shield, err = newShield(cfg, s, deps.Registerer); err != nil {
		return nil, err
	}
	s.t.shield = s.shield
	s.slWork = make(chan statelessJob)
	s.t.stateless = s.handleStateless
	if s.t.amp, err = newAmplifyGuard(cfg.UDPUnauthBytesPerSec, now, deps.Registerer); err != nil {
		return nil, err
	}

	// sipgo logs some routine events (a client closing its connection)
	// as errors; they are demoted one level.
	sipLog := slog.New(demote{log.Handler()}).With("component", "sipgo")
	tcp := &sipmsg.TransportTCP{DialerCreate: noDialer}
	tlsT := &sipmsg.TransportTLS{TransportTCP: &sipmsg.TransportTCP{DialerCreate: noDialer}}
	s.ua, err = sipgo.NewUA(
		sipgo.WithUserAgent(s.t.server),
		sipgo.WithUserAgentHostname(cfg.Domain),
		sipgo.WithUserAgentParser(parser),
		// No DNS: every address the server sends to is an IP it learnt
		// from a connection; a hostname in a Via is never looked up.
		sipgo.WithUserAgentDNSResolver(&net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) { return nil, errNoDial }}),
		sipgo.WithUserAgentTransportLayerOptions(
			sipmsg.WithTransportLayerLogger(sipLog),
			sipmsg.WithTransportLayerTransports(sipmsg.TransportsConfig{TCP: tcp, TLS: tlsT}),
		),
		sipgo.WithUserAgentTransactionLayerOptions(
			sipmsg.WithTransactionLayerLogger(sipLog),
			// Stray responses are dropped, never answered.
			sipmsg.WithTransactionLayerUnhandledResponseHandler(func(r *sipmsg.Response) {
				log.Debug("stray response dropped", "status", r.StatusCode, "remote_addr", r.Source())
			}),
			// A transaction whose connection closes ends at once instead
			// of waiting for its timers: a callee that vanishes fails its
			// fork immediately.
			sipmsg.WithTransactionLayerTerminateOnConnClose(),
		),
	)
	if err != nil {
		return nil, fmt.Errorf("sipserver: user agent: %w", err)
	}
	if s.sip, err = sipgo.NewServer(s.ua, sipgo.WithServerLogger(sipLog)); err != nil {
		return nil, fmt.Errorf("sipserver: server: %w", err)
	}
	if s.cli, err = sipgo.NewClient(s.ua, sipgo.WithClientLogger(sipLog)); err != nil {
		return nil, fmt.Errorf("sipserver: client: %w", err)
	}
	// One entry point for every method: dispatch decides.
	s.sip.OnNoRoute(s.handle)
	// Node-to-node connections are read by the same sipgo server.
	if s.peers, err = newPeers(s, deps.Health, deps.Registerer); err != nil {
		return nil, err
	}
	return s, nil
}

// Listen binds TCP and UDP on the same port (port 0: a free port for
// both) and, when tlsAddr is valid, TLS.
func (s *Server) Listen(addr netip.AddrPort, tlsAddr netip.AddrPort) error {
	// Read before this run's first heartbeat (membership serves after
	// Listen): the previous run's, for the records it left open.
	ctx, cancel := context.WithTimeout(context.Background(), recordWriteTimeout)
	prev, havePrev := s.ownLastSeen(ctx)
	cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prev, s.havePrev = prev, havePrev
	if s.closed {
		return errors.New("sipserver: listen on a closed server")
	}
	if s.tcp != nil {
		return errors.New("sipserver: already listening")
	}
	if tlsAddr.IsValid() && s.cfg.TLS == nil {
		return errors.New("sipserver: a TLS address needs Config.TLS")
	}
	tl, ul, err := listenPair(addr)
	if err != nil {
		return err
	}
	s.addr = addrPort(tl.Addr())
	s.tcp = &flowListener{Listener: s.guardListener(newCapListener(tl, s.t.conns, s.log, s.m.connRejected.Inc), "tcp"), t: s.t, transport: "TCP"}
	s.udp = newPacketConn(ul, s.t)
	if tlsAddr.IsValid() {
		raw, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(tlsAddr))
		if err != nil {
			tl.Close()
			ul.Close()
			s.tcp, s.udp = nil, nil
			return fmt.Errorf("sipserver: listen tls %s: %w", tlsAddr, err)
		}
		s.tlsAddr = addrPort(raw.Addr())
		capped := s.guardListener(newCapListener(raw, s.t.conns, s.log, s.m.connRejected.Inc), "tls")
		s.tls = &flowListener{Listener: tls.NewListener(capped, s.cfg.TLS), t: s.t, transport: "TLS"}
	}
	s.selfIPs = selfAddresses(s.addr.Addr(), s.cfg.Advertise)
	for _, tr := range []string{"udp", "tcp"} {
		s.log.Info("SIP listening", "listen_addr", s.addr.String(), "transport", tr, "domain", s.cfg.Domain)
	}
	if s.tls != nil {
		s.log.Info("SIP listening", "listen_addr", s.tlsAddr.String(), "transport", "tls", "domain", s.cfg.Domain)
	}
	return nil
}

// listenPair binds TCP and UDP to one port.
func listenPair(addr netip.AddrPort) (*net.TCPListener, *net.UDPConn, error) {
	var lastErr error
	for attempt := 0; attempt < 20; attempt++ {
		tl, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
		if err != nil {
			return nil, nil, fmt.Errorf("sipserver: listen tcp %s: %w", addr, err)
		}
		port := addrPort(tl.Addr()).Port()
		ul, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr.Addr(), port)))
		if err == nil {
			return tl, ul, nil
		}
		tl.Close()
		lastErr = err
		if addr.Port() != 0 {
			break // a fixed port: nothing to retry
		}
	}
	return nil, nil, fmt.Errorf("sipserver: listen udp %s: %w", addr, lastErr)
}

// selfAddresses are the IPs requests may name to mean this server: the
// listener's (every interface's when it is unspecified) and the advertised.
func selfAddresses(listen, advertise netip.Addr) []netip.Addr {
	var out []netip.Addr
	if advertise.IsValid() {
		out = append(out, advertise.Unmap())
	}
	if !listen.IsUnspecified() {
		return append(out, listen.Unmap())
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}

// Addr is the TCP and UDP address; TLSAddr the TLS one (zero when off).
func (s *Server) Addr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// TLSAddr is the TLS listener's address, zero without TLS.
func (s *Server) TLSAddr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tlsAddr
}

// Serve serves until ctx ends or Close is called, then closes the server.
// It returns nil then, or the error that stopped a listener.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return nil
	case s.tcp == nil:
		s.mu.Unlock()
		return errors.New("sipserver: Serve before Listen")
	case s.serving:
		s.mu.Unlock()
		return errors.New("sipserver: already serving")
	}
	s.serving = true
	tcpL, tlsL, udp := s.tcp, s.tls, s.udp
	s.mu.Unlock()

	var wg sync.WaitGroup
	errc := make(chan error, 3)
	run := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- f()
		}()
	}
	run(func() error { return s.sip.ServeTCP(tcpL) })
	run(func() error { return s.sip.ServeUDP(udp) })
	if tlsL != nil {
		run(func() error { return s.sip.ServeTLS(tlsL) })
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.maintain()
	}()
	if s.records.start() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.records.run()
		}()
	}
	s.mu.Lock()
	prev, havePrev := s.prev, s.havePrev
	s.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.sweep(prev, havePrev)
	}()
	if s.cfg.relayOn() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.dispatchACD()
		}()
	}

	var err error
	select {
	case <-ctx.Done():
	case <-s.ctx.Done():
	case err = <-errc:
		if s.ctx.Err() == nil {
			err = fmt.Errorf("sipserver: listener stopped: %w", err)
		} else {
			err = nil
		}
	}
	s.Close()
	wg.Wait()
	return err
}

// maintain runs periodic housekeeping until the server closes: binding
// expiry, the failure counters, sipgo's UDP pool.
func (s *Server) maintain() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	n := 0
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		}
		now := s.now()
		s.reg.expire(now)
		s.followDevices()
		if n++; n%30 == 0 {
			s.failures.sweep(now)
			s.devices.sweep(now)
			s.t.amp.sweep()
			s.udp.prune(time.Now(), s.ua.TransportLayer().Pool("udp"), s.reg.hasUDP)
		}
	}
}

// followDevices applies the store's log of changed devices to the device
// cache. A failed read is logged and tried again on the next tick; until
// then the TTL bounds what the cache serves.
func (s *Server) followDevices() {
	if s.devices.ttl <= 0 {
		return // nothing cached
	}
	ctx, cancel := context.WithTimeout(s.ctx, 500*time.Millisecond)
	defer cancel()
	if err := s.devices.follow(ctx, s.store.DeviceChanges); err != nil && s.ctx.Err() == nil {
		s.log.Warn("device change log not read", "error", err)
	}
}

// Close stops listening, ends calls, closes every connection and waits for
// the server's goroutines. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.closeDone // the first Close finishes the job
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.closeErr
	}
	s.closed = true
	tcpL, tlsL, udp := s.tcp, s.tls, s.udp
	s.mu.Unlock()

	s.cancel()
	var errs []error
	for _, l := range []net.Listener{tcpL, tlsL} {
		if l != nil {
			if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
	}
	if udp != nil {
		if err := udp.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	s.endAll()
	// Close the flows first and let sipgo's readers drop them from its
	// pool: closing the pool under a live reader makes sipgo count the
	// connection's references below zero (and say so on the default log).
	s.t.closeAll()
	s.waitPoolDrained(2 * time.Second)
	s.ua.Close()
	s.bg.Wait()
	s.records.close() // every call has ended: flush their records
	s.reg.close()
	err := errors.Join(errs...)
	s.mu.Lock()
	s.closeErr = err
	s.mu.Unlock()
	close(s.closeDone)
	return err
}

// waitPoolDrained waits, up to max, until sipgo holds no TCP or TLS
// connection.
func (s *Server) waitPoolDrained(max time.Duration) {
	tl := s.ua.TransportLayer()
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		if tl.Pool("tcp").Size() == 0 && tl.Pool("tls").Size() == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// goAsync runs f as one of the server's goroutines (Close waits for it),
// unless the server is closing.
func (s *Server) goAsync(f func()) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.bg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.bg.Done()
		f()
	}()
}
