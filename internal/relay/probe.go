package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/z5vrs/z5/internal/wire/rtpprobe"
)

// Probe sessions let `z5 check` test the customer's outbound rule for the
// RTP range: the MCS API opens a few relay ports spread over the range, and
// for a few seconds they echo datagrams authenticated with the session's
// key. The ports come from the same pool as calls, so a probe never takes a
// port a call holds and the reverse.
const (
	maxProbePorts = 16
	maxProbeTTL   = time.Minute
	maxProbeKey   = 64
	// repliesPerProbePort caps one session's replies per open port: a
	// check sends about 50 per port.
	repliesPerProbePort = 128
	// probeSources bounds the per-source limiter table; entries idle for
	// probeSourceIdle are dropped when it fills.
	probeSources    = 4096
	probeSourceIdle = 10 * time.Second
)

// probeSet is the relay's probe state; its zero value is ready to use.
type probeSet struct {
	timers sync.WaitGroup // expiry callbacks scheduled or running

	mu       sync.Mutex // guards the following
	sessions map[*probeSession]struct{}
	sources  map[netip.Addr]*sourceBucket
	closed   bool
}

// sourceBucket is one source address's token bucket.
type sourceBucket struct {
	lim  *rate.Limiter
	last time.Time
}

// probeSession is one OpenProbe: its sockets, key and reply budget.
type probeSession struct {
	r      *Relay
	owner  Owner
	key    []byte
	pairs  []uint16 // pool pairs to return on close
	conns  []*net.UDPConn
	lim    *rate.Limiter
	budget atomic.Int64
	timer  *time.Timer

	readers sync.WaitGroup
	once    sync.Once
}

// Advertise is the address the relay writes into SDP, which clients send
// media (and probes) to.
func (r *Relay) Advertise() netip.Addr { return r.cfg.Advertise }

// OpenProbe opens n relay ports spread over the configured range (its first
// and last ports and n-2 between) for ttl, answering only datagrams
// authenticated with token (see package rtpprobe) and only back to their
// source, at most probe-rate replies per second per source address and per
// session. It returns the ports; they go back to the pool when ttl ends or
// the relay closes. The n pairs (2n ports) count against owner's quotas
// while open. Errors: ErrQuota past them, ErrNoPorts when the range cannot
// spare n pairs, ErrClosed after Close.
func (r *Relay) OpenProbe(owner Owner, token []byte, n int, ttl time.Duration) ([]int, error) {
	switch {
	case len(token) < rtpprobe.MinKeySize || len(token) > maxProbeKey:
		return nil, fmt.Errorf("relay: probe key of %d bytes, want %d-%d", len(token), rtpprobe.MinKeySize, maxProbeKey)
	case n < 1 || n > maxProbePorts:
		return nil, fmt.Errorf("relay: %d probe ports, want 1-%d", n, maxProbePorts)
	case ttl <= 0 || ttl > maxProbeTTL:
		return nil, fmt.Errorf("relay: probe lifetime %s, want up to %s", ttl, maxProbeTTL)
	}
	set := &r.probes
	set.mu.Lock()
	closed := set.closed
	set.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if !r.quota.take(owner, 2*n) {
		r.m.quotaRefused.Inc()
		cust, src := r.quota.held(owner)
		r.log.Warn("relay port quota reached by a probe", "customer_id", owner.Customer, "customer_ports", cust,
			"source", owner.Source, "source_ports", src)
		return nil, ErrQuota
	}
	first := r.cfg.Ports.Min + r.cfg.Ports.Min%2
	pairs, ok := r.pool.takeSpread(n, first)
	if !ok {
		r.quota.give(owner, 2*n)
		r.m.exhausted.Inc()
		return nil, ErrNoPorts
	}
	r.m.allocated.Set(float64(r.pool.allocated()))
	pr := r.cfg.ProbeRate
	s := &probeSession{
		r:     r,
		owner: owner,
		key:   append([]byte(nil), token...),
		lim:   rate.NewLimiter(rate.Limit(pr), pr),
	}
	s.budget.Store(int64(n * repliesPerProbePort))
	ports := make([]int, 0, n)
	for i := range pairs {
		// The last sample binds the pair's odd port, so a range ending on
		// an odd port (10000-65535) has its very last port tested.
		odd := n > 1 && i == n-1
		conn, port, err := r.bindProbePair(&pairs[i], odd)
		if err != nil {
			s.pairs = pairs
			s.release()
			return nil, err
		}
		s.conns = append(s.conns, conn)
		ports = append(ports, int(port))
	}
	s.pairs = pairs

	set.mu.Lock()
	if set.closed {
		set.mu.Unlock()
		s.release()
		return nil, ErrClosed
	}
	if set.sessions == nil {
		set.sessions = map[*probeSession]struct{}{}
	}
	set.sessions[s] = struct{}{}
	for _, c := range s.conns {
		s.readers.Add(1)
		go s.read(c)
	}
	set.timers.Add(1)
	s.timer = time.AfterFunc(ttl, func() {
		defer set.timers.Done()
		set.remove(s)
		s.close()
	})
	set.mu.Unlock()
	r.log.Debug("probe opened", "ports", ports, "ttl", ttl)
	return ports, nil
}

// bindProbePair binds the probe socket of *pair; when another process holds
// that port it swaps the pair for the pool's next free one, a few times.
func (r *Relay) bindProbePair(pair *uint16, odd bool) (*net.UDPConn, uint16, error) {
	var lastErr error
	for range 8 {
		conn, port, err := bindProbe(r.cfg.Bind, *pair, odd)
		if err == nil {
			return conn, port, nil
		}
		lastErr = err
		if !isAddrInUse(err) {
			return nil, 0, err
		}
		next, ok := r.pool.get()
		if !ok {
			return nil, 0, fmt.Errorf("%w (%v)", ErrNoPorts, err)
		}
		r.pool.put(*pair)
		*pair = next
	}
	return nil, 0, fmt.Errorf("%w: %v", ErrNoPorts, lastErr)
}

func (set *probeSet) remove(s *probeSession) {
	set.mu.Lock()
	delete(set.sessions, s)
	set.mu.Unlock()
}

// closeAll ends every session and waits for their goroutines; later
// OpenProbe calls fail with ErrClosed.
func (set *probeSet) closeAll() {
	set.mu.Lock()
	set.closed = true
	sessions := make([]*probeSession, 0, len(set.sessions))
	for s := range set.sessions {
		sessions = append(sessions, s)
	}
	clear(set.sessions)
	set.mu.Unlock()
	for _, s := range sessions {
		if s.timer.Stop() {
			set.timers.Done() // the callback will never run
		}
		s.close()
	}
	set.timers.Wait()
}

// allowSource takes one token from src's bucket.
func (set *probeSet) allowSource(src netip.Addr, now time.Time, perSecond int) bool {
	set.mu.Lock()
	defer set.mu.Unlock()
	b := set.sources[src]
	if b == nil {
		if set.sources == nil {
			set.sources = map[netip.Addr]*sourceBucket{}
		}
		if len(set.sources) >= probeSources {
			for a, e := range set.sources {
				if now.Sub(e.last) > probeSourceIdle {
					delete(set.sources, a)
				}
			}
			if len(set.sources) >= probeSources {
				return false
			}
		}
		b = &sourceBucket{lim: rate.NewLimiter(rate.Limit(perSecond), perSecond)}
		set.sources[src] = b
	}
	b.last = now
	return b.lim.AllowN(now, 1)
}

// answer decides one datagram: the reply to send back to src, or nothing.
func (s *probeSession) answer(req []byte, src netip.AddrPort, now time.Time, out []byte) (int, bool) {
	n, err := rtpprobe.Reply(req, s.key, now, out)
	if err != nil || n > len(req) {
		return 0, false
	}
	if !s.lim.AllowN(now, 1) || s.budget.Add(-1) < 0 {
		return 0, false
	}
	if !s.r.probes.allowSource(src.Addr().Unmap(), now, s.r.cfg.ProbeRate) {
		return 0, false
	}
	return n, true
}

// read is one probe socket's loop; it returns when the socket closes.
func (s *probeSession) read(conn *net.UDPConn) {
	defer s.readers.Done()
	buf := make([]byte, rtpprobe.MaxSize+1) // one more: oversize shows as such
	out := make([]byte, rtpprobe.Size)
	debug := s.r.log.Enabled(context.Background(), slog.LevelDebug)
	for {
		n, src, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(time.Millisecond) // a persistent error must not spin
			continue
		}
		m, ok := s.answer(buf[:n], src, time.Now(), out)
		if !ok {
			if debug {
				s.r.log.Debug("probe drop", "remote_addr", src, "bytes", n)
			}
			continue
		}
		if _, err := conn.WriteToUDPAddrPort(out[:m], src); err != nil && errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// close ends the session once: sockets closed, readers gone, ports back.
// Concurrent callers wait until it is done.
func (s *probeSession) close() {
	s.once.Do(s.release)
}

func (s *probeSession) release() {
	for _, c := range s.conns {
		c.Close()
	}
	s.readers.Wait()
	for _, p := range s.pairs {
		s.r.pool.put(p)
	}
	s.r.quota.give(s.owner, 2*len(s.pairs))
	s.r.m.allocated.Set(float64(s.r.pool.allocated()))
	s.r.log.Debug("probe closed", "ports", len(s.pairs))
}
