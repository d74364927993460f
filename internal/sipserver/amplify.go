package sipserver

import (
	"bytes"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/promset"
)

// Defences against using the server as a UDP amplifier. A UDP source
// address can be forged, so whatever the server sends to the source of a
// request it has not authenticated may land on a victim:
//
//   - Responses to unauthenticated UDP requests are sent statelessly,
//     once: sipgo's INVITE server transaction would resend a final
//     non-2xx response on Timer G about eleven times over 32 s, so one
//     forged INVITE earned some 25 times its size in 407s. A client that
//     lost the response retransmits its request and gets it again.
//   - All of them together stay under a global byte budget per second;
//     beyond it they are dropped silently and counted.
//   - A forked INVITE over UDP to a branch that has not answered stops
//     being retransmitted once the branch is canceled (see silence).
//
// Nonces bound to the source (digest.go), Z5 devices registering over
// TCP/TLS only and the cap on UDP bindings per address (registrar.go)
// keep a forged source from being registered as a fork target at all.

// amplifyGuard holds the budget for unauthenticated UDP responses and the
// forked INVITEs whose retransmissions are suppressed.
type amplifyGuard struct {
	budget *byteBudget // nil: no limit
	now    func() time.Time

	sentBytes prometheus.Counter
	dropped   prometheus.Counter
	silenced  prometheus.Counter

	mu      sync.Mutex           // guards quiet and pending
	quiet   map[string]time.Time // INVITE branch -> until when its retransmissions are dropped
	maxLen  int
	pending map[string]int // branches of UDP requests being handled, not authenticated
}

// quietFor is how long a canceled branch's INVITE retransmissions are
// dropped: the life of its client transaction (Timer B, 64*T1), with a
// margin.
func quietFor() time.Duration { return 64*sipmsg.T1 + 5*time.Second }

// maxQuiet bounds the table of silenced branches; each needs a fork, and
// forks are bounded by calls and registrations, so this is never reached
// in practice.
const maxQuiet = 1 << 16

func newAmplifyGuard(bytesPerSec int, now func() time.Time, reg prometheus.Registerer) (*amplifyGuard, error) {
	ms := promset.New("z5", "sip")
	g := &amplifyGuard{
		now: now,
		sentBytes: ms.Counter("udp_unauth_response_bytes_total",
			"Bytes sent over UDP in answer to requests not authenticated, inspection rejects included."),
		dropped: ms.Counter("udp_unauth_responses_dropped_total",
			"Responses to unauthenticated UDP requests not sent because the global byte budget (sip.udp_unauth_bytes_per_sec) was spent."),
		silenced: ms.Counter("udp_fork_retransmissions_suppressed_total",
			"INVITE retransmissions not sent to a UDP fork that was canceled before it answered."),
		quiet:   map[string]time.Time{},
		maxLen:  maxQuiet,
		pending: map[string]int{},
	}
	if bytesPerSec > 0 {
		g.budget = newByteBudget(bytesPerSec)
	}
	if err := ms.Register(reg); err != nil {
		return nil, fmt.Errorf("sip amplification metrics: %w", err)
	}
	return g, nil
}

// allow reports whether n more bytes of unauthenticated response may go
// out now, and accounts for them.
func (g *amplifyGuard) allow(n int) bool {
	if g.budget != nil && !g.budget.take(n, g.now()) {
		g.dropped.Inc()
		return false
	}
	g.sentBytes.Add(float64(n))
	return true
}

// hold marks branch as the branch of an unauthenticated UDP request being
// handled, until release.
func (g *amplifyGuard) hold(branch string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pending[branch]++
}

func (g *amplifyGuard) release(branch string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pending[branch] <= 1 {
		delete(g.pending, branch)
	} else {
		g.pending[branch]--
	}
}

// outgoing is what becomes of a datagram sipgo writes.
type outgoing int

const (
	sendIt   outgoing = iota
	dropIt            // a silenced retransmission, or sipgo's own 100 Trying to a stranger
	budgetIt          // a response to an unauthenticated request: within the budget
)

// classify decides about a datagram sipgo writes by itself (responses
// this package sends to unauthenticated requests go through udpTx). sipgo
// answers an INVITE with 100 Trying when the handler takes over 200 ms
// (Timer 1xx) and a matched CANCEL with 200 and 487, all in the
// transaction of a request that may still be unauthenticated.
func (g *amplifyGuard) classify(b []byte) outgoing {
	if g.quieted(b) {
		return dropIt
	}
	if !bytes.HasPrefix(b, []byte("SIP/2.0 ")) {
		return sendIt
	}
	g.mu.Lock()
	n := len(g.pending)
	g.mu.Unlock()
	if n == 0 {
		return sendIt
	}
	branch := topViaBranch(b)
	g.mu.Lock()
	_, held := g.pending[branch]
	g.mu.Unlock()
	switch {
	case !held:
		return sendIt
	case bytes.HasPrefix(b, []byte("SIP/2.0 100 ")):
		return dropIt
	}
	return budgetIt
}

// silence drops the retransmissions of the INVITE with this top Via
// branch until quietFor has passed.
func (g *amplifyGuard) silence(branch string) {
	if branch == "" {
		return
	}
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.quiet) >= g.maxLen {
		for k, until := range g.quiet {
			if now.After(until) {
				delete(g.quiet, k)
			}
		}
		if len(g.quiet) >= g.maxLen {
			return // full of live entries: retransmissions go out as before
		}
	}
	g.quiet[branch] = now.Add(quietFor())
}

// quieted reports whether an outgoing datagram is the retransmission of a
// silenced INVITE.
func (g *amplifyGuard) quieted(b []byte) bool {
	if !bytes.HasPrefix(b, []byte("INVITE ")) {
		return false
	}
	g.mu.Lock()
	n := len(g.quiet)
	g.mu.Unlock()
	if n == 0 {
		return false
	}
	branch := topViaBranch(b)
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.quiet[branch]
	if !ok {
		return false
	}
	if now.After(until) {
		delete(g.quiet, branch)
		return false
	}
	g.silenced.Inc()
	return true
}

// sweep forgets silenced branches past their time.
func (g *amplifyGuard) sweep() {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, until := range g.quiet {
		if now.After(until) {
			delete(g.quiet, k)
		}
	}
}

// topViaBranch returns the branch parameter of the first Via header of a
// serialized message, or "".
func topViaBranch(b []byte) string {
	_, rest, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		return ""
	}
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			return "" // end of the header section
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		if !bytes.EqualFold(name, []byte("Via")) && !bytes.EqualFold(name, []byte("v")) {
			continue
		}
		value, _, _ = bytes.Cut(value, []byte(",")) // the first Via of a list
		for _, p := range bytes.Split(value, []byte(";"))[1:] {
			k, v, _ := bytes.Cut(bytes.TrimSpace(p), []byte("="))
			if bytes.EqualFold(bytes.TrimSpace(k), []byte("branch")) {
				return string(bytes.TrimSpace(v))
			}
		}
		return ""
	}
	return ""
}

// byteBudget is a token bucket of bytes: rate per second, holding at most
// one second's worth.
type byteBudget struct {
	rate float64

	mu     sync.Mutex // guards the following
	tokens float64
	last   time.Time
}

func newByteBudget(perSec int) *byteBudget {
	return &byteBudget{rate: float64(perSec), tokens: float64(perSec)}
}

// take spends n bytes if the bucket holds them.
func (b *byteBudget) take(n int, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = min(b.rate, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	if b.last.IsZero() || now.After(b.last) {
		b.last = now
	}
	if float64(n) > b.tokens {
		return false
	}
	b.tokens -= float64(n)
	return true
}

// udpTx wraps the server transaction of a request that arrived over UDP.
// Until the request is authenticated (trust), its responses are sent
// statelessly through the amplification budget: the transaction is ended
// before a final response goes out, so sipgo does not retransmit it
// (Timer G); sipgo's own 100 Trying in the meantime is dropped (classify).
type udpTx struct {
	sipmsg.ServerTransaction
	amp      *amplifyGuard
	udp      *packetConn // nil once the server is closing
	req      *sipmsg.Request
	branch   string
	trusted  atomic.Bool
	released atomic.Bool
}

// wrapUDP returns tx wrapped when req came over UDP, and a func to call
// when the handler returns.
func (s *Server) wrapUDP(req *sipmsg.Request, tx sipmsg.ServerTransaction) (sipmsg.ServerTransaction, func()) {
	if tx == nil || s.t.amp == nil || sipmsg.NetworkToUpper(req.Transport()) != "UDP" {
		return tx, func() {}
	}
	s.mu.Lock()
	udp := s.udp
	s.mu.Unlock()
	u := &udpTx{ServerTransaction: tx, amp: s.t.amp, udp: udp, req: req}
	if via := req.Via(); via != nil {
		u.branch, _ = via.Params.Get("branch")
	}
	s.t.amp.hold(u.branch)
	return u, u.release
}

func (t *udpTx) release() {
	if t.released.CompareAndSwap(false, true) {
		t.amp.release(t.branch)
	}
}

// trust marks tx's request as authenticated (digest, or a dialog of a
// registered party): its responses go through the transaction again.
func trust(tx sipmsg.ServerTransaction) {
	if u, ok := tx.(*udpTx); ok {
		u.trusted.Store(true)
		u.release()
	}
}

func (t *udpTx) Respond(res *sipmsg.Response) error {
	if t.trusted.Load() {
		return t.ServerTransaction.Respond(res)
	}
	if !res.IsProvisional() {
		t.ServerTransaction.Terminate()
	}
	addr, err := net.ResolveUDPAddr("udp", t.req.Source()) // the source, never a Via host
	if err != nil {
		return fmt.Errorf("stateless response to %q: %w", t.req.Source(), err)
	}
	if t.udp == nil {
		return net.ErrClosed
	}
	_, err = t.udp.writeUnauth([]byte(res.String()), addr)
	return err
}
