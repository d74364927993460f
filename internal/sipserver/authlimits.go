package sipserver

import (
	"bytes"
	"net/netip"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"golang.org/x/time/rate"

	"github.com/z5vrs/z5/internal/floodguard"
)

// Limits on failed authentication, built so that an office behind one NAT
// address is never locked out by a few of its phones while guessing from
// that address is still stopped:
//
//   - per (source, user): MaxAuthFailures failures in ten minutes earn 403
//     for that user from that source until the window passes (auth.go);
//   - per account: MaxAccountFailures failures in ten minutes, from any
//     source, refuse further attempts at the account except on a
//     connection the account's device is already registered over;
//   - per source: a ban (floodguard) only when digests fail for
//     BanAuthFailures distinct users within BanWindow (credential
//     stuffing), and even then registered connections stay open.
//
// Sources are keyed as floodguard.Key: an IPv4 address or an IPv6 /64.

// accountWindow is the window of the per-account failure count.
const accountWindow = 10 * time.Minute

// failureKey keys the per-(source, user) failure count.
func failureKey(user string, src netip.Addr) string {
	var b [96]byte // one allocation, the string, where formatting took three
	return string(floodguard.Key(src).AppendTo(append(append(b[:0], user...), '|')))
}

// digestUser is the user name of a request's digest credentials for our
// realm ("" when there are none).
func (s *Server) digestUser(req *sipmsg.Request) string {
	for _, kind := range []authKind{registrarAuth, proxyAuth} {
		if c, found, _ := s.credentials(req, kind); found {
			return c.Username
		}
	}
	return ""
}

// reserveAttempt reserves one failure per (source, user) and per account
// before a digest is checked (sipcore.ReserveFailure), so guesses in
// flight at once cannot overshoot either limit. It returns false, having
// reserved nothing, when either limit is reached; a request over a
// connection a registration is bound to is never refused by the
// account's limit (its device proved itself). The caller gives the
// reservation back with releaseAttempt unless the digest was wrong.
func (s *Server) reserveAttempt(key, user string, req *sipmsg.Request, now time.Time) bool {
	if !s.failures.reserve(key, now, true) {
		return false
	}
	if !s.shield.accounts.reserve(user, now, !s.registeredFlow(req)) {
		s.failures.release(key)
		return false
	}
	return true
}

// releaseAttempt gives back what reserveAttempt took.
func (s *Server) releaseAttempt(key, user string) {
	s.failures.release(key)
	s.shield.accounts.release(user)
}

// registeredFlow reports whether req came over a connection a
// registration is bound to.
func (s *Server) registeredFlow(req *sipmsg.Request) bool {
	c := s.t.flow(sipmsg.NetworkToUpper(req.Transport()), req.Source())
	return c != nil && c.authenticated()
}

// authFailed counts an attempt refused for too many failures toward the
// account's limit, then counts the failure toward a ban of the source.
func (s *Server) authFailed(req *sipmsg.Request, now time.Time) {
	if user := s.digestUser(req); user != "" {
		s.shield.accounts.fail(user, now)
	}
	s.banTally(req)
}

// banTally counts a failed digest over TCP and TLS (a UDP source address
// proves nothing) toward a ban of the source when it is the first failure
// of this user from it in the window.
func (s *Server) banTally(req *sipmsg.Request) {
	if sipmsg.NetworkToUpper(req.Transport()) == "UDP" {
		return
	}
	src := sourceIP(req)
	if s.shield.pairs.Add(failureKey(s.digestUser(req), src)) < 2 {
		s.shield.guard.Record(src, eventAuthFailure)
	}
}

// admitFlow decides on one framed message of a TCP/TLS flow before it is
// parsed, like admitMessage. A registered flow is rate limited on its own,
// not by its source's bucket: 200 devices behind one address must not
// share one device's allowance. Its requests are never counted toward a
// ban of the source.
func (sh *shield) admitFlow(c *flowConn, msg []byte) (reply []byte, ok bool) {
	if sh == nil {
		return nil, true
	}
	if !c.authenticated() {
		return sh.admitMessage(c.raddr.Addr(), msg, false)
	}
	if bytes.HasPrefix(msg, []byte("SIP/")) {
		return nil, true
	}
	method, _, _ := bytes.Cut(msg[:min(len(msg), 32)], []byte(" "))
	if string(method) == "ACK" {
		return nil, true
	}
	if c.limiter == nil {
		// An allowlisted source (sip.ban_allow, the deployment's nodes,
		// loopback with ban_allow_loopback) is never rate limited, its
		// registered flows included.
		limit := sh.flowRate
		if sh.guard.Allowed(c.raddr.Addr()) {
			limit = rate.Inf
		}
		c.limiter = rate.NewLimiter(limit, sh.flowBurst)
	}
	// Allow takes no allocation, where Reserve takes one per message; a
	// refused message's wait is read from a reservation given back.
	if !c.limiter.Allow() {
		r := c.limiter.Reserve()
		wait := r.Delay()
		r.Cancel()
		sh.m.shed.WithLabelValues(eventRateLimited).Inc()
		return refuse(msg, 503, "Service Unavailable (Rate Limited)", floodguard.RetrySeconds(wait)), false
	}
	if string(method) == "REGISTER" && sh.inFlight.Load() >= sh.maxIn {
		sh.m.shed.WithLabelValues("overloaded").Inc()
		return refuse(msg, 503, "Service Unavailable (Overloaded)", overloadRetry()), false
	}
	return nil, true
}
