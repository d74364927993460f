package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/sipreg"
)

// PhoneOptions configure the SIP side of a client.
type PhoneOptions struct {
	// OnIncoming receives each incoming call; nil rejects calls with 480.
	OnIncoming func(*IncomingCall)
	// Expires is the registration lifetime asked for (seconds).
	Expires int
	// Flow times the keepalive and failover (defaults in flow.go).
	Flow FlowOptions
}

// Phone is a client registered with an MCS over its own TCP or TLS
// connection: all signalling, including incoming calls, rides that
// client-opened flow.
type Phone struct {
	c    *Client
	opts PhoneOptions
	log  *slog.Logger
	// network ("tls" or "tcp") and port are how every flow to an MCS is
	// opened (sipTransport).
	network string
	port    int
	ua      *sipgo.UserAgent
	cl      *sipgo.Client
	srv     *sipgo.Server
	dcli    *sipgo.DialogClientCache
	dsrv    *sipgo.DialogServerCache
	creds   SIPCreds

	epoch    time.Time // lastRecv counts from here (monotonic)
	lastRecv sync.Map  // remote "ip:port" -> *atomic.Int64 (nanos since epoch)
	// requeues are the re-queue asks of BYEs just received, by Call-ID,
	// until their dialog's end picks them up (track).
	requeues sync.Map

	mu       sync.Mutex // guards the following
	server   netip.AddrPort
	host     string
	dialing  string // the MCS name a new TLS flow is verified against
	contact  sipmsg.ContactHeader
	callID   string
	cseq     uint32
	expires  time.Duration
	regAt    time.Time
	closed   bool
	incoming map[string]*IncomingCall

	stop chan struct{}
	done chan struct{}
	dead chan struct{} // signalled when the flow fails
}

// Connect runs step 4: verifies the license (no SIP without one), opens a
// connection to the first reachable MCS (mcs1, then mcs2, ...) over TLS
// when the provider profile has a TLS port, else over TCP, and registers
// with digest authentication. The phone keeps the registration
// alive until Close.
func (c *Client) Connect(ctx context.Context, opts PhoneOptions) (*Phone, error) {
	if c.state.SIP.Username == "" {
		return nil, stepErr(StepSIP, ErrNotLoggedIn, "log in first: z5 login")
	}
	if _, _, err := c.ValidLicense(ctx, 24*time.Hour); err != nil {
		return nil, stepErr(StepMCS, err, "the SIP stack needs a valid license: run z5 login again")
	}
	if opts.Expires == 0 {
		opts.Expires = registerTTL
	}
	opts.Flow = opts.Flow.withDefaults()
	p := &Phone{c: c, opts: opts, log: c.log.With("component", "sip"), creds: c.state.SIP, epoch: time.Now(),
		callID: sipmsg.GenerateTagN(24), incoming: map[string]*IncomingCall{},
		stop: make(chan struct{}), done: make(chan struct{}), dead: make(chan struct{}, 1)}
	p.network, p.port = sipTransport(c.state.Profile.Ports, c.state.SIP.Port)
	uaOpts := []sipgo.UserAgentOption{
		sipgo.WithUserAgent(c.opts.UserAgent),
		sipgo.WithUserAgentTransportLayerOptions(sipmsg.WithTransportLayerReadFilter(p.sawData)),
	}
	if p.network == "tls" {
		pool, err := c.state.Profile.CAPool()
		if err != nil {
			return nil, stepErr(StepSIP, err, "the provider profile's CA is unusable: run z5 login --profile again")
		}
		uaOpts = append(uaOpts, sipgo.WithUserAgenTLSConfig(mcsTLSConfig(pool, p.dialingName)))
	}
	var err error
	p.ua, err = sipgo.NewUA(uaOpts...)
	if err != nil {
		return nil, err
	}
	if p.cl, err = sipgo.NewClient(p.ua, sipgo.WithClientLogger(p.log)); err != nil {
		p.ua.Close()
		return nil, err
	}
	if p.srv, err = sipgo.NewServer(p.ua, sipgo.WithServerLogger(p.log)); err != nil {
		p.ua.Close()
		return nil, err
	}
	p.routes()
	if err := p.registerAny(ctx, netip.Addr{}); err != nil {
		p.ua.Close()
		return nil, err
	}
	go p.maintain()
	return p, nil
}

// dialingName is the MCS name a TLS handshake is verified against.
func (p *Phone) dialingName() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dialing
}

// sawData notes that a flow delivered bytes (a message or a CRLF pong).
func (p *Phone) sawData(props sipmsg.TransportReadProps, data []byte) ([]byte, error) {
	if props.RemoteAddr != nil {
		v, _ := p.lastRecv.LoadOrStore(props.RemoteAddr.String(), new(atomic.Int64))
		v.(*atomic.Int64).Store(int64(time.Since(p.epoch)))
	}
	return data, nil
}

// lastData is when the flow to server last delivered bytes (zero: never).
func (p *Phone) lastData(server netip.AddrPort) time.Time {
	v, ok := p.lastRecv.Load(server.String())
	if !ok {
		return time.Time{}
	}
	return p.epoch.Add(time.Duration(v.(*atomic.Int64).Load()))
}

// Server is the MCS the phone is registered with: name and address.
func (p *Phone) Server() (string, netip.AddrPort) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.host, p.server
}

// AOR is this phone's address of record.
func (p *Phone) AOR() string {
	return "sip:" + p.c.state.Number + "@" + p.creds.Domain
}

// registerAny tries every MCS address, in failover order, until one
// accepts the registration. avoid is the node whose flow just failed
// (invalid when none did).
func (p *Phone) registerAny(ctx context.Context, avoid netip.Addr) error {
	start := time.Now()
	hosts := p.creds.Hosts
	if len(hosts) == 0 {
		hosts = p.c.state.Profile.Names.MCS
	}
	port := p.port
	healthy := p.healthy(ctx)
	var errs []error
	addrs := map[string][]netip.Addr{}
	for _, h := range hosts {
		a, r := p.c.lookup(ctx, h)
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h, r.Err))
			continue
		}
		addrs[h] = a
	}
	if len(addrs) == 0 {
		// No MCS name resolved: that is a DNS problem, not the SIP port.
		return stepErr(StepDNS, fmt.Errorf("could not resolve the MCS servers: %w", errors.Join(errs...)), dnsHint(p.c.state.Profile))
	}
	for _, t := range failoverOrder(hosts, addrs, healthy, avoid) {
		ap := netip.AddrPortFrom(t.addr, uint16(port))
		err := p.register(ctx, t.host, ap, p.opts.Expires)
		if err == nil {
			p.c.event(StepSIP, start, "registered %s with %s (%s) over %s, expires in %s", p.AOR(), t.host, ap, strings.ToUpper(p.network), p.expiresIn())
			return nil
		}
		var se *StepError
		if errors.As(err, &se) && se.Step == StepMCS {
			return err // a license problem is the same on every node
		}
		if errors.Is(err, ErrBadCredentials) {
			return stepErr(StepSIP, err, "log in again (z5 login) to get fresh SIP credentials")
		}
		p.log.Info("registration attempt failed", "host", t.host, "server", ap.String(), "error", err)
		errs = append(errs, fmt.Errorf("%s (%s): %w", t.host, ap, plainNetError(err)))
		if ctx.Err() != nil {
			return stepErr(StepSIP, ctx.Err(), "")
		}
	}
	return stepErr(StepSIP, fmt.Errorf("could not register with any MCS: %w", errors.Join(errs...)),
		fmt.Sprintf("allow outbound TCP port %d to the MCS servers (%v); if it is allowed, the provider's MCS may be down: try again in a minute", port, hosts))
}

// healthy is the MCS addresses the provider's DNS currently lists as
// healthy (the lb.mcs name), nil when it cannot say within HealthTimeout:
// the answer only orders the candidates, so a nameserver that hung along
// with the node must not hold the failover up (the resolver then asks the
// other nameservers first for the names that follow).
func (p *Phone) healthy(ctx context.Context) []netip.Addr {
	lb := p.creds.LB
	if lb == "" {
		lb = p.c.state.Profile.Names.LBMCS
	}
	if lb == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.Flow.HealthTimeout)
	defer cancel()
	addrs, r := p.c.lookup(ctx, lb)
	if r.Err != nil {
		p.log.Info("MCS health unknown: trying every MCS", "name", lb, "error", r.Err)
		return nil
	}
	return addrs
}

func (p *Phone) expiresIn() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.expires
}

// register sends one REGISTER (answering the digest challenge) to server.
func (p *Phone) register(ctx context.Context, host string, server netip.AddrPort, expires int) error {
	// A node that accepts TCP but never answers (hung) costs this much
	// before the next one is tried.
	ctx, cancel := context.WithTimeout(ctx, p.opts.Flow.AttemptTimeout)
	defer cancel()
	if expires > 0 {
		// A fresh flow: learn our local address with an OPTIONS ping, which
		// also proves the MCS answers SIP over this connection. A TLS flow
		// opened now is verified against host.
		p.mu.Lock()
		p.dialing = host
		p.mu.Unlock()
		if err := p.ping(ctx, server); err != nil {
			return err
		}
	}
	lic, _, err := p.c.ValidLicense(ctx, time.Hour)
	if err != nil {
		return stepErr(StepMCS, err, "run z5 login again")
	}
	p.mu.Lock()
	p.cseq++
	cseq := p.cseq
	contact := p.contact
	p.mu.Unlock()

	req := p.newRequest(sipmsg.REGISTER, sipmsg.Uri{Scheme: "sip", Host: p.creds.Domain}, server)
	sipreg.Fill(req, sipreg.Binding{Number: p.c.state.Number, Domain: p.creds.Domain, CallID: p.callID, CSeq: cseq,
		Contact: contact, Expires: expires, License: lic})
	res, last, err := sipreg.Send(ctx, p.cl, req, sipgo.DigestAuth{Username: p.creds.Username, Password: p.creds.Password})
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.cseq = max(p.cseq, last)
	p.mu.Unlock()
	switch {
	case res.StatusCode == sipmsg.StatusOK:
	case res.StatusCode == sipmsg.StatusUnauthorized || res.StatusCode == sipmsg.StatusProxyAuthRequired:
		return fmt.Errorf("%w: SIP credentials rejected (%d %s)", ErrBadCredentials, res.StatusCode, res.Reason)
	case res.StatusCode == sipmsg.StatusForbidden && strings.Contains(strings.ToLower(res.Reason), "license"):
		return stepErr(StepMCS, fmt.Errorf("%w: MCS says %d %s", ErrNoLicense, res.StatusCode, res.Reason), "run z5 login again for a new license")
	default:
		return fmt.Errorf("REGISTER: %d %s", res.StatusCode, res.Reason)
	}
	granted := time.Duration(expires) * time.Second
	if h := res.GetHeader("Expires"); h != nil {
		if v, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil {
			granted = time.Duration(v) * time.Second
		}
	}
	for _, h := range res.GetHeaders("Contact") {
		if ch, ok := h.(*sipmsg.ContactHeader); ok && ch.Address.Host == contact.Address.Host && ch.Address.Port == contact.Address.Port {
			if v, ok := ch.Params.Get("expires"); ok {
				if n, err := strconv.Atoi(v); err == nil {
					granted = time.Duration(n) * time.Second
				}
			}
		}
	}
	p.mu.Lock()
	p.host, p.server, p.expires, p.regAt = host, server, granted, time.Now()
	p.mu.Unlock()
	return nil
}

// ping sends OPTIONS over the flow to server and records the local address
// the connection uses, for our Contact.
func (p *Phone) ping(ctx context.Context, server netip.AddrPort) error {
	req := p.newRequest(sipmsg.OPTIONS, sipmsg.Uri{Scheme: "sip", Host: server.Addr().String(), Port: int(server.Port())}, server)
	res, err := p.cl.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("OPTIONS over %s: %w", strings.ToUpper(p.network), err)
	}
	if res.StatusCode >= 300 && res.StatusCode != sipmsg.StatusUnauthorized && res.StatusCode != sipmsg.StatusProxyAuthRequired {
		return fmt.Errorf("OPTIONS: %d %s", res.StatusCode, res.Reason)
	}
	via := req.Via()
	contact := sipreg.Contact(p.c.state.Number, via.Host, via.Port, p.network, p.c.state.InstanceID)
	p.mu.Lock()
	p.contact = contact
	p.mu.Unlock()
	return nil
}

// newRequest builds a request sent over the phone's transport to server,
// never resolving the Request-URI's host through the system resolver.
func (p *Phone) newRequest(method sipmsg.RequestMethod, ruri sipmsg.Uri, server netip.AddrPort) *sipmsg.Request {
	req := sipmsg.NewRequest(method, ruri)
	req.SetTransport(strings.ToUpper(p.network))
	req.SetDestination(server.String())
	from := &sipmsg.FromHeader{Address: sipmsg.Uri{Scheme: "sip", User: p.c.state.Number, Host: p.creds.Domain}, Params: sipmsg.NewParams()}
	from.Params.Add("tag", sipmsg.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sipmsg.ToHeader{Address: ruri})
	return req
}

// maintain refreshes the registration and watches the flow with CRLF
// keepalives; on failure it re-registers with backoff, trying every MCS,
// the failed one last.
func (p *Phone) maintain() {
	defer close(p.done)
	f := p.opts.Flow
	watch := time.NewTicker(flowCheck)
	defer watch.Stop()
	var pingSent time.Time
	nextPing := time.Now().Add(pingGap(f.PingInterval, rand.Float64()))
	for {
		p.mu.Lock()
		refresh := p.regAt.Add(p.expires * 8 / 10)
		server := p.server
		p.mu.Unlock()
		now := time.Now()
		act, next := keepalive(now, pingSent, nextPing, p.lastData(server), f)
		var reason string
		switch act {
		case kaPong:
			pingSent = time.Time{}
			continue
		case kaDead:
			reason = fmt.Sprintf("no keepalive pong from %s within %s", server, f.PongTimeout)
		case kaPing:
			// Sent before the write, so a pong that beats the write's
			// return still counts.
			pingSent, nextPing = now, now.Add(pingGap(f.PingInterval, rand.Float64()))
			if err := p.sendPing(server); err != nil {
				reason = "keepalive write failed: " + err.Error()
			} else {
				continue
			}
		}
		if reason == "" {
			timer := time.NewTimer(max(min(time.Until(refresh), time.Until(next)), 0))
			select {
			case <-p.stop:
				timer.Stop()
				return
			case <-p.dead:
				timer.Stop()
				reason = "connection lost"
			case <-watch.C:
				timer.Stop()
				if !p.flowOpen(server) {
					reason = "connection closed by " + server.String()
				}
			case <-timer.C:
				if time.Now().Before(refresh) {
					continue // a keepalive step is due
				}
				p.mu.Lock()
				host := p.host
				p.mu.Unlock()
				err := p.register(context.Background(), host, server, p.opts.Expires)
				if err != nil {
					reason = "refresh failed: " + err.Error()
				}
			}
			if reason == "" {
				continue
			}
		}
		pingSent = time.Time{}
		p.log.Warn("SIP flow failed, re-registering", "server", server.String(), "reason", reason)
		p.closeFlow(server)
		p.reconnect(server.Addr())
		nextPing = time.Now().Add(pingGap(f.PingInterval, rand.Float64()))
	}
}

// flowOpen reports whether the connection to server is still open: the
// transport drops a connection from its pool when its read loop ends.
func (p *Phone) flowOpen(server netip.AddrPort) bool {
	conn, err := p.ua.TransportLayer().GetConnection(p.network, server.String())
	return err == nil && conn != nil
}

// sendPing writes a CRLF ping into the flow (inside TLS on a TLS flow, RFC
// 5626 §4.4.1).
func (p *Phone) sendPing(server netip.AddrPort) error {
	conn, err := p.ua.TransportLayer().GetConnection(p.network, server.String())
	if err != nil || conn == nil {
		return fmt.Errorf("no connection to %s", server)
	}
	w, ok := conn.(net.Conn)
	if !ok {
		return fmt.Errorf("connection to %s cannot write raw bytes", server)
	}
	// The deadline bounds this write only: left set, it would fail
	// sipgo's next write on the flow once it passed.
	w.SetWriteDeadline(time.Now().Add(pingWriteTimeout))
	_, err = w.Write([]byte("\r\n\r\n"))
	w.SetWriteDeadline(time.Time{})
	return err
}

func (p *Phone) closeFlow(server netip.AddrPort) {
	if conn, err := p.ua.TransportLayer().GetConnection(p.network, server.String()); err == nil && conn != nil {
		conn.Close()
	}
}

// reconnect re-registers with exponential backoff until it succeeds or the
// phone closes, trying failed (the node just left) last. It flushes DNS so
// failover sees current health.
func (p *Phone) reconnect(failed netip.Addr) {
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		p.c.FlushDNS()
		ctx, cancel := context.WithTimeout(context.Background(), roundTimeout)
		go func() {
			select {
			case <-p.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := p.registerAny(ctx, failed)
		cancel()
		if err == nil {
			host, server := p.Server()
			p.log.Info("re-registered", "server", server.String(), "host", host, "attempt", attempt)
			return
		}
		p.log.Warn("re-register failed", "attempt", attempt, "error", err)
		select {
		case <-p.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// Close un-registers (best effort) and releases the connection.
func (p *Phone) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	host, server := p.host, p.server
	p.mu.Unlock()
	close(p.stop)
	<-p.done
	ctx, cancel := context.WithTimeout(context.Background(), unregisterTimeout)
	defer cancel()
	err := p.register(ctx, host, server, 0)
	p.ua.Close()
	if err != nil {
		return fmt.Errorf("un-register: %w", err)
	}
	return nil
}
