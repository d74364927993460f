package sipserver

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/z5vrs/z5/internal/floodguard"
	"github.com/z5vrs/z5/internal/promset"
	"github.com/z5vrs/z5/internal/sipcore"
)

// Flood and overload protection. The transport asks the shield about every
// connection and message before anything is parsed:
//
//   - a banned source (internal/floodguard) has its new TCP/TLS
//     connections closed at accept, its open ones closed unless a
//     registration is bound to them, and its datagrams dropped unread;
//   - each source (floodguard.Key: an IPv4 address or an IPv6 /64) may
//     send SIP.RateLimit requests a second (token bucket,
//     SIP.RateBurst) over UDP and unregistered connections; a
//     registered connection has a bucket of its own (authlimits.go).
//     Beyond that a TCP/TLS request is answered 503 with Retry-After from
//     the raw bytes, and a UDP request is dropped, since a UDP source can
//     be forged and a 503 would then reflect onto a victim;
//   - a source whose unregistered TCP/TLS requests keep being refused by
//     the rate limit, or at which digests fail for many distinct users
//     (authlimits.go), is banned. Only connection-oriented events count
//     toward a ban: over UDP anyone could earn a ban for somebody else's
//     address.
//
// Then, once sipgo has parsed a request (admit, called from handle):
//
//   - at most SIP.MaxInFlight requests outside calls (REGISTER,
//     OPTIONS, MESSAGE...) are worked on at once, MaxInFlightPerSource
//     from one source; more are answered 503
//     with Retry-After at once, rather than queued until clients time out.
//     Calls and requests inside them are never shed this way: a REGISTER
//     flood must not stop calls;
//   - a number takes part in at most SIP.MaxCallsPerNumber calls.

// Event kinds counted by the flood guard.
const (
	eventAuthFailure = "auth_failure"
	eventRateLimited = "rate_limited"
)

// shield holds the guard, the rate limiter and the in-flight counts.
type shield struct {
	guard   *floodguard.Guard
	limiter *floodguard.Limiter
	// flowRate and flowBurst limit each registered flow, which the
	// source's bucket no longer charges (an office shares one source).
	flowRate  rate.Limit
	flowBurst int
	// pairs counts failed digests per (source, user) over BanWindow: the
	// first failure of a user from a source is one auth_failure event of
	// the source, so a source is banned for many users failing, not for
	// a few phones retrying a stale password.
	pairs *floodguard.Tally
	// accounts counts failed digests per account over ten minutes.
	accounts *failureLimiter
	maxCalls int
	maxIn    int64
	inFlight atomic.Int64
	// maxInPerSource keeps one source from taking every slot: a client
	// that sends requests and stops reading holds each until its write
	// times out.
	maxInPerSource int
	m              *shieldMetrics

	mu    sync.Mutex // guards perIn
	perIn map[netip.Prefix]int
}

type shieldMetrics struct {
	banned   *prometheus.CounterVec // by transport: connections and datagrams refused
	shed     *prometheus.CounterVec // by reason: requests refused by a limit
	inFlight prometheus.GaugeFunc
}

// newShield builds the server's shield; a ban closes the source's open
// connections at once.
func newShield(c Config, s *Server, reg prometheus.Registerer) (*shield, error) {
	threshold := func(n int) floodguard.Threshold {
		return floodguard.Threshold{Count: max(n, 0), Window: c.BanWindow}
	}
	sh := &shield{maxCalls: c.MaxCallsPerNumber, maxIn: int64(c.MaxInFlight),
		maxInPerSource: c.MaxInFlightPerSource, perIn: map[netip.Prefix]int{},
		flowRate: rate.Limit(c.RateLimit), flowBurst: c.RateBurst,
		pairs:    floodguard.NewTally(c.BanWindow, c.MaxTrackedSources),
		accounts: newFailureLimiter(c.MaxAuthFailuresPerAccount, accountWindow)}
	if c.RateLimit < 0 {
		sh.flowRate = rate.Inf
	}
	var err error
	sh.guard, err = floodguard.New(floodguard.Config{
		Thresholds: map[string]floodguard.Threshold{
			eventAuthFailure: threshold(c.BanAuthFailures),
			eventRateLimited: threshold(c.BanRateLimited),
		},
		BanTime: c.BanTime, MaxBanTime: c.BanMaxTime, Forget: c.BanForget, MaxSources: c.MaxTrackedSources,
		Allow: c.Allow, AllowLoopback: c.BanAllowLoopback,
	}, floodguard.Deps{Service: "sip", Log: s.log, Registerer: reg, OnBan: func(b floodguard.Ban) {
		s.t.closeFrom(b.Source)
	}})
	if err != nil {
		return nil, fmt.Errorf("sipserver: %w", err)
	}
	sh.limiter = floodguard.NewLimiter(float64(c.RateLimit), c.RateBurst, c.MaxTrackedSources)
	ms := promset.New("z5", "sip")
	sh.m = &shieldMetrics{
		banned: ms.CounterVec("banned_dropped_total",
			"Connections (tcp, tls) closed at accept and datagrams (udp) dropped because their source is banned.", "transport"),
		shed: ms.CounterVec("shed_total",
			"Requests refused by a limit, by reason: rate_limited (503, or dropped over UDP), overloaded (503), calls_per_number (403/486).", "reason"),
		inFlight: ms.GaugeFunc("requests_in_flight",
			"Requests outside calls being handled now (shed beyond max_in_flight).",
			func() float64 { return float64(sh.inFlight.Load()) }),
	}
	for _, r := range []string{eventRateLimited, "overloaded", "calls_per_number"} {
		sh.m.shed.WithLabelValues(r)
	}
	if err := ms.Register(reg); err != nil {
		return nil, fmt.Errorf("sip metrics: %w", err)
	}
	return sh, nil
}

// bannedConn is the accept-time check (capListener): true closes the
// connection before a byte is read or a TLS handshake is made.
func (sh *shield) bannedConn(ip netip.Addr, transport string) bool {
	if sh == nil || !sh.guard.Banned(ip) {
		return false
	}
	sh.m.banned.WithLabelValues(transport).Inc()
	return true
}

// errBanned ends a flow whose source was banned while it was open.
var errBanned = errors.New("source banned")

// admitMessage decides on one framed message from src before it is parsed.
// It returns ok, or the reply to send instead (nil: drop silently).
// Responses and ACKs always pass: they answer or complete our own
// transactions and cannot be refused.
func (sh *shield) admitMessage(src netip.Addr, msg []byte, udp bool) (reply []byte, ok bool) {
	if sh == nil || bytes.HasPrefix(msg, []byte("SIP/")) {
		return nil, true
	}
	method, _, _ := bytes.Cut(msg[:min(len(msg), 32)], []byte(" "))
	if string(method) == "ACK" {
		return nil, true
	}
	if !sh.guard.Allowed(src) && !emergencyInvite(msg) {
		if wait, allowed := sh.limiter.Allow(src); !allowed {
			sh.m.shed.WithLabelValues(eventRateLimited).Inc()
			if udp {
				return nil, false
			}
			sh.guard.Record(src, eventRateLimited)
			return refuse(msg, 503, "Service Unavailable (Rate Limited)", floodguard.RetrySeconds(wait)), false
		}
	}
	// A REGISTER is never part of a call: when the node is already at
	// its limit it is refused here, without parsing it twice first.
	if string(method) == "REGISTER" && sh.inFlight.Load() >= sh.maxIn {
		sh.m.shed.WithLabelValues("overloaded").Inc()
		if udp {
			return nil, false // the client retransmits; a 503 would invite a forged flood
		}
		return refuse(msg, 503, "Service Unavailable (Overloaded)", overloadRetry()), false
	}
	return nil, true
}

// overloadRetry spreads the clients told to come back: 2 to 6 seconds.
func overloadRetry() int { return 2 + rand.IntN(5) }

// refuse builds a response to raw request bytes with a Retry-After.
func refuse(msg []byte, code int, reason string, retry int) []byte {
	hdr := msg
	if i := bytes.Index(msg, crlfcrlf); i >= 0 {
		hdr = msg[:i+2]
	}
	res := salvageResponse(startLine(hdr), splitHeaders(hdr), code, reason)
	const end = "Content-Length: 0\r\n\r\n"
	if !bytes.HasSuffix(res, []byte(end)) {
		return res
	}
	out := make([]byte, 0, len(res)+24)
	out = append(out, res[:len(res)-len(end)]...)
	out = append(out, "Retry-After: "+strconv.Itoa(retry)+"\r\n"+end...)
	return out
}

// admit is the gate of handle for a parsed request: the in-flight limit
// for requests outside calls and the calls-per-number cap for a new call.
// When it refuses it has answered.
func (s *Server) admit(req *sipmsg.Request, tx sipmsg.ServerTransaction) (admission, bool) {
	sh := s.shield
	switch {
	case req.IsAck() || req.IsCancel() || sipcore.ToTag(req) != "":
		return admission{}, true
	case req.Method == sipmsg.INVITE:
		return admission{}, s.callsWithinCap(req, tx)
	}
	src := sourceIP(req)
	if !sh.enter(src) {
		sh.m.shed.WithLabelValues("overloaded").Inc()
		s.respond(tx, req, 503, "Service Unavailable (Overloaded)", retryAfter(overloadRetry()))
		return admission{}, false
	}
	return admission{sh: sh, src: src}, true
}

// admission is an in-flight slot admit took (none when sh is nil); a
// value rather than a release closure, which cost an allocation per
// request.
type admission struct {
	sh  *shield
	src netip.Addr
}

// release gives the slot back.
func (a admission) release() {
	if a.sh != nil {
		a.sh.leave(a.src)
	}
}

// enter takes an in-flight slot for a request from src, within the
// node's limit and the source's share of it (allowlisted sources: the
// node's limit only).
func (sh *shield) enter(src netip.Addr) bool {
	if sh.inFlight.Add(1) > sh.maxIn {
		sh.inFlight.Add(-1)
		return false
	}
	key := floodguard.Key(src)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.perIn[key] >= sh.maxInPerSource && !sh.guard.Allowed(src) {
		sh.inFlight.Add(-1)
		return false
	}
	sh.perIn[key]++
	return true
}

func (sh *shield) leave(src netip.Addr) {
	sh.inFlight.Add(-1)
	key := floodguard.Key(src)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.perIn[key]--; sh.perIn[key] <= 0 {
		delete(sh.perIn, key)
	}
}

// callsWithinCap refuses a new call when the caller (403) or the callee
// (486) already takes part in MaxCallsPerNumber calls on this node. The
// caller is read from From: a request whose From is not the caller's is
// refused later anyway (proxy.identify). An allowlisted source (the
// deployment's nodes, sip.ban_allow) is trusted infrastructure and, like
// the rate limits, not capped.
func (s *Server) callsWithinCap(req *sipmsg.Request, tx sipmsg.ServerTransaction) bool {
	if u, _, _ := strings.Cut(req.Recipient.User, ";"); u == sipcore.Emergency && s.cfg.relayOn() {
		return true // 911 is never refused for a limit
	}
	if s.shield.guard.Allowed(sourceIP(req)) {
		return true
	}
	caller, _ := sipcore.TargetNumber(req.From().Address.User)
	callee, _ := sipcore.TargetNumber(req.Recipient.User)
	nCaller, nCallee := s.calls.countOf(caller, callee)
	switch {
	case caller != "" && nCaller >= s.shield.maxCalls:
		s.shield.m.shed.WithLabelValues("calls_per_number").Inc()
		s.respond(tx, req, 403, "Forbidden (Too Many Calls)")
		return false
	case callee != "" && nCallee >= s.shield.maxCalls:
		s.shield.m.shed.WithLabelValues("calls_per_number").Inc()
		s.respond(tx, req, 486, "Busy Here (Too Many Calls)")
		return false
	}
	return true
}

// closeFrom closes the flows from a banned source that no registration
// is bound to: a ban stops guessing and floods, it does not cut the
// source's registered devices (an office behind one address).
func (t *transport) closeFrom(src netip.Prefix) {
	t.mu.Lock()
	var gone []*flowConn
	for _, c := range t.flows {
		if src.Contains(c.raddr.Addr()) && !c.authenticated() {
			gone = append(gone, c)
		}
	}
	t.mu.Unlock()
	for _, c := range gone {
		t.log.Info("closing flow: source banned", "flow", c.id)
		c.Close()
	}
}

// guardListener makes a capListener refuse banned sources at accept.
func (s *Server) guardListener(l *capListener, transport string) *capListener {
	l.banned = func(ip netip.Addr) bool { return s.shield.bannedConn(ip, transport) }
	return l
}

// bannedFlow reports whether an open flow must end because its source
// has been banned since it connected; a registered flow stays.
func (sh *shield) bannedFlow(c *flowConn) bool {
	return sh != nil && !c.authenticated() && sh.guard.Banned(c.raddr.Addr())
}

// bannedDatagram is the first check on every UDP datagram.
func (sh *shield) bannedDatagram(ip netip.Addr) bool {
	if sh == nil || !sh.guard.Banned(ip) {
		return false
	}
	sh.m.banned.WithLabelValues("udp").Inc()
	return true
}

// emergencyInvite reports whether raw request bytes are an INVITE to 911,
// which no rate limit holds back.
func emergencyInvite(msg []byte) bool {
	for _, p := range []string{"INVITE sip:911@", "INVITE sip:911;", "INVITE sips:911@", "INVITE sips:911;"} {
		if bytes.HasPrefix(msg, []byte(p)) {
			return true
		}
	}
	return false
}
