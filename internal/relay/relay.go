// Package relay is the MCS media relay (step 5). It anchors every stream
// of a call on itself: RewriteSDP swaps each side's addresses for port pairs
// drawn at random from the configured range, each side is latched to the
// exact address its client sends from (the client sends first, so the
// customer's firewall only needs outbound UDP) by a packet that proves it
// belongs to the leg, and only RTP and RTCP (and DTLS or ZRTP where the call
// negotiated them) are forwarded, only to latched peers or to an SDP address
// that is its side's signalling IP, never to the provider's own or private
// networks: a stranger can neither inject media nor hijack a stream, and
// nobody can aim the relay at a third party. Ports held by calls and probes
// are charged to their owner (customer and source address) against quotas.
// Per stream it counts packets, bytes, drops and RTCP, and measures loss and
// jitter; an answered call without media for the configured time is
// reported so signalling can end it.
package relay

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/kfwd"
)

// Side names a leg of a call.
type Side int

const (
	SideA Side = 0 // caller-facing
	SideB Side = 1 // callee-facing
)

func (s Side) String() string {
	switch s {
	case SideA:
		return "caller"
	case SideB:
		return "callee"
	}
	return fmt.Sprintf("side(%d)", int(s))
}

// Config configures a Relay. internal/config fills every value a
// deployment leaves out (provider.RelayConfig turns it into this); New
// only checks them.
type Config struct {
	Bind         netip.Addr       // local address to bind media sockets on
	Advertise    netip.Addr       // address written into SDP (zero = Bind)
	Ports        config.PortRange // inclusive; even ports carry RTP, odd RTCP
	MediaTimeout time.Duration    // an answered call this long without media is reported
	ProbeRate    int              // probe echoes per second per source and session
	MaxStreams   int              // media streams holding ports per call

	// Per-owner quotas of ports held (calls and probes); zero: no limit.
	MaxPortsPerCustomer int
	MaxPortsPerSource   int

	// CustomerNetworks may receive media although private or loopback;
	// ProviderNetworks never do. Loopback is customer space when the relay
	// advertises a loopback address.
	CustomerNetworks []netip.Prefix
	ProviderNetworks []netip.Prefix

	// RequireSRTP refuses every description with a stream that is not
	// SRTP (ErrSRTPRequired), offers and answers alike.
	RequireSRTP bool

	// KernelForwarding moves the RTP of established directions to the
	// kernel (internal/kfwd, kernel.go) when Bind is a specific address
	// and the kernel and privileges allow it; otherwise, or when false, the
	// relay forwards every packet itself.
	KernelForwarding bool
}

// Deps are a Relay's collaborators.
type Deps struct {
	Log        *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: metrics are kept but not exported
}

// Relay owns the port range and the calls using it.
type Relay struct {
	cfg  Config
	log  *slog.Logger
	m    *metrics
	pool *portPool
	// dst says where media may go; quota what each owner may hold. Both
	// are fixed at New.
	dst   dstPolicy
	quota quota
	done  chan struct{} // closed by Close
	// io is how sockets are read: by default (Linux) one ioLoop per core
	// over all sockets (loop_linux.go, where the measurements are); else,
	// and in tests that cover them, one goroutine per socket, one datagram
	// per system call (read) or recvmmsg/sendmmsg (readBatch). Measured
	// with BenchmarkRelayForward on loopback, bursts of 16 like the
	// packets of a video frame: the two per-socket loops are within noise
	// of each other at 160 and 1200 bytes, while the batched one
	// allocates two objects per datagram (x/net's source addresses) and the
	// plain one none; a call's socket rarely holds more than one datagram
	// when it wakes.
	io ioMode

	mu     sync.Mutex // guards the following
	calls  map[*Call]struct{}
	closed bool

	// loopMu guards the following. It is not r.mu: allocate holds a
	// call's mutex, which supervise takes under r.mu.
	loopMu      sync.Mutex
	loops       []*ioLoop // started with the first stream, stopped by Close
	nextLoop    int
	loopsClosed bool

	// cbs tracks onMediaTimeout callbacks, so none outlives Close.
	cbs sync.WaitGroup

	probes probeSet // network-check echo sessions (probe.go)

	kern *kfwd.Forwarder // the kernel path; nil: off (kernel.go)
}

// New validates cfg and returns a relay. It binds nothing yet: ports are
// bound per stream by Call.RewriteSDP.
func New(cfg Config, deps Deps) (*Relay, error) {
	log, reg := deps.Log, deps.Registerer
	if !cfg.Bind.IsValid() {
		return nil, fmt.Errorf("relay: bind address required")
	}
	cfg.Bind = cfg.Bind.Unmap()
	if !cfg.Advertise.IsValid() {
		if cfg.Bind.IsUnspecified() {
			return nil, fmt.Errorf("relay: bind address %s is unspecified, so an advertise address is required", cfg.Bind)
		}
		cfg.Advertise = cfg.Bind
	}
	cfg.Advertise = cfg.Advertise.Unmap()
	if cfg.Advertise.IsUnspecified() || cfg.Advertise.IsMulticast() {
		return nil, fmt.Errorf("relay: advertise address %s is not a unicast address", cfg.Advertise)
	}
	if r := cfg.Ports; r.Min < 1 || r.Max > 65535 || r.Min > r.Max {
		return nil, fmt.Errorf("relay: port range %s must lie within 1-65535 with min <= max", r)
	}
	if cfg.MediaTimeout <= 0 {
		return nil, fmt.Errorf("relay: media timeout %s, want a positive duration", cfg.MediaTimeout)
	}
	if cfg.MaxStreams < 1 || cfg.MaxStreams > maxStreams {
		return nil, fmt.Errorf("relay: %d media streams per call, want 1-%d", cfg.MaxStreams, maxStreams)
	}
	if cfg.ProbeRate < 1 {
		return nil, fmt.Errorf("relay: probe rate %d per second, want at least 1", cfg.ProbeRate)
	}
	pool := newPortPool(cfg.Ports.Min, cfg.Ports.Max)
	if pool.size() < 2 {
		return nil, fmt.Errorf("relay: port range %s holds %d even/odd pairs, a stream needs 2", cfg.Ports, pool.size())
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	var kern *kfwd.Forwarder
	if cfg.KernelForwarding {
		// A direction per relay port pair, each pair facing one side.
		if kern, err = kfwd.New(cfg.Bind, pool.size()); err != nil {
			log.Info("relay kernel forwarding off", "reason", err)
			kern = nil
		} else {
			log.Info("relay kernel forwarding on", "bind_addr", cfg.Bind)
			m.kernelOn.Set(1)
		}
	}
	self := []netip.Addr{cfg.Advertise}
	if !cfg.Bind.IsUnspecified() {
		self = append(self, cfg.Bind)
	}
	return &Relay{
		cfg:  cfg,
		log:  log,
		m:    m,
		pool: pool,
		dst: dstPolicy{
			customer: cfg.CustomerNetworks,
			provider: cfg.ProviderNetworks,
			self:     self,
			loopback: cfg.Advertise.IsLoopback(),
		},
		quota: quota{perCustomer: cfg.MaxPortsPerCustomer, perSource: cfg.MaxPortsPerSource},
		done:  make(chan struct{}),
		calls: make(map[*Call]struct{}),
		io:    defaultIO,
		kern:  kern,
	}, nil
}

// Serve supervises media timeouts until ctx ends or the relay is closed,
// then returns nil.
func (r *Relay) Serve(ctx context.Context) error {
	// A tenth of the timeout keeps the overshoot small without a busy timer.
	period := min(max(r.cfg.MediaTimeout/10, 10*time.Millisecond), time.Second)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.done:
			return nil
		case <-t.C:
			r.supervise(time.Now())
		}
	}
}

// supervise reports each answered call that went silent, once, on its own
// goroutine so a slow callback delays nobody.
func (r *Relay) supervise(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	for c := range r.calls {
		if !c.expire(now, r.cfg.MediaTimeout) {
			continue
		}
		r.m.mediaTimeouts.Inc()
		r.log.Info("media timeout", "call_id", c.id, "timeout", r.cfg.MediaTimeout)
		if c.onTimeout == nil {
			continue
		}
		r.cbs.Add(1)
		go func() {
			defer r.cbs.Done()
			c.onTimeout()
		}()
	}
}

// Close closes every call's sockets, waits for their goroutines and for
// running media-timeout callbacks. It is idempotent.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.done)
	calls := make([]*Call, 0, len(r.calls))
	for c := range r.calls {
		calls = append(calls, c)
	}
	r.mu.Unlock()
	for _, c := range calls {
		c.Close()
	}
	r.probes.closeAll()
	r.cbs.Wait()
	// No stream is left in a loop now, and none can be added (closed).
	r.loopMu.Lock()
	loops := r.loops
	r.loops, r.loopsClosed = nil, true
	r.loopMu.Unlock()
	for _, l := range loops {
		l.stop()
	}
	if r.kern != nil {
		return r.kern.Close() // every call took its directions back
	}
	return nil
}

// ioMode is how a relay reads its sockets.
type ioMode int

const (
	ioLoops          ioMode = iota // one ioLoop per core (Linux)
	ioPerSocket                    // a goroutine per socket (read)
	ioPerSocketBatch               // a goroutine per socket, recvmmsg/sendmmsg (readBatch)
)

func (m ioMode) String() string {
	return [...]string{"loops", "per-socket", "per-socket-batch"}[m]
}

var defaultIO = map[bool]ioMode{true: ioLoops, false: ioPerSocket}[haveLoops]

// loop is the loop for a new stream's sockets, in turns; nil when the
// relay reads per socket.
func (r *Relay) loop() (*ioLoop, error) {
	if r.io != ioLoops {
		return nil, nil
	}
	r.loopMu.Lock()
	defer r.loopMu.Unlock()
	if r.loopsClosed {
		return nil, ErrClosed
	}
	if r.loops == nil {
		n := runtime.GOMAXPROCS(0)
		for range n {
			l, err := newLoop(r.m, r.log)
			if err != nil {
				for _, l := range r.loops {
					l.stop()
				}
				r.loops = nil
				return nil, err
			}
			r.loops = append(r.loops, l)
		}
	}
	r.nextLoop = (r.nextLoop + 1) % len(r.loops)
	return r.loops[r.nextLoop], nil
}

// NewCall is NewCallFor with an owner charged nothing: only the range
// bounds its ports.
func (r *Relay) NewCall(callID string, onMediaTimeout func()) *Call {
	return r.NewCallFor(Owner{}, callID, onMediaTimeout)
}

// NewCallFor starts relay state for one call whose ports count against
// owner's quotas (RewriteSDP fails with ErrQuota past them). It binds
// nothing until the first RewriteSDP. onMediaTimeout (may be nil) runs at
// most once, on its own goroutine, after Answered when no media arrived
// for the media timeout. A call made after Close is closed already.
func (r *Relay) NewCallFor(owner Owner, callID string, onMediaTimeout func()) *Call {
	c := &Call{
		r:         r,
		owner:     owner,
		id:        callID,
		onTimeout: onMediaTimeout,
		log:       r.log.With("call_id", callID),
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		c.closed = true
		return c
	}
	r.calls[c] = struct{}{}
	r.m.activeCalls.Set(float64(len(r.calls)))
	return c
}

func (r *Relay) removeCall(c *Call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.calls, c)
	r.m.activeCalls.Set(float64(len(r.calls)))
}

// ActiveCalls is the number of calls not yet closed.
func (r *Relay) ActiveCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

// AllocatedPorts is the number of ports of the range held by calls and
// probes.
func (r *Relay) AllocatedPorts() int { return r.pool.allocated() }
