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
	return user + "|" + floodguard.Key(src).String()
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

// authFailed counts a failed digest: toward the account's limit, and over
// TCP and TLS (a UDP source address proves nothing) toward a ban of the
// source when it is the first failure of this user from it in the window.
func (s *Server) authFailed(req *sipmsg.Request) {
	sh := s.shield
	user := s.digestUser(req)
	if user != "" && sh.maxAccount > 0 {
		sh.accounts.Add(user)
	}
	if sipmsg.NetworkToUpper(req.Transport()) == "UDP" {
		return
	}
	src := sourceIP(req)
	if sh.pairs.Add(failureKey(user, src)) < 2 {
		sh.guard.Record(src, eventAuthFailure)
	}
}

// accountBlocked reports whether attempts at user are refused because the
// account failed too often; a request over a connection a registration
// is bound to is never refused this way (its device proved itself).
func (s *Server) accountBlocked(user string, req *sipmsg.Request) bool {
	sh := s.shield
	if sh.maxAccount <= 0 || sh.accounts.Count(user) < float64(sh.maxAccount) {
		return false
	}
	if c := s.t.flow(sipmsg.NetworkToUpper(req.Transport()), req.Source()); c != nil && c.authenticated() {
		return false
	}
	return true
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
		c.limiter = rate.NewLimiter(sh.flowRate, sh.flowBurst)
	}
	if r := c.limiter.Reserve(); r.Delay() > 0 {
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
