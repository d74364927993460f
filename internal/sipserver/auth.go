package sipserver

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/sipcore"
	"github.com/z5vrs/z5/internal/store"
)

// authKind selects the registrar (401, WWW-Authenticate / Authorization)
// or proxy (407, Proxy-Authenticate / Proxy-Authorization) flavour.
type authKind struct {
	code      int
	reason    string
	challenge string
	answer    string
}

var (
	registrarAuth = authKind{401, "Unauthorized", "WWW-Authenticate", "Authorization"}
	proxyAuth     = authKind{407, "Proxy Authentication Required", "Proxy-Authenticate", "Proxy-Authorization"}
)

// dummyHA1 is checked against when the username is unknown, so a wrong
// username costs the same as a wrong password.
const dummyHA1 = "00000000000000000000000000000000"

// authenticate checks the request's digest credentials and returns the
// device they belong to. When it returns false it has already answered
// (a challenge, or 403 after too many failures).
func (s *Server) authenticate(ctx context.Context, req *sipmsg.Request, tx sipmsg.ServerTransaction, kind authKind) (store.Device, bool) {
	now := s.now()
	cred, found, err := s.credentials(req, kind)
	if err != nil {
		s.m.authFailures.WithLabelValues("malformed").Inc()
		s.respond(tx, req, 400, "Malformed "+kind.answer+" Header")
		return store.Device{}, false
	}
	if !found {
		s.challenge(tx, req, kind, false)
		return store.Device{}, false
	}
	src := sourceIP(req)
	key := failureKey(cred.Username, src) // per (source, user); IPv6 sources by /64
	if !s.reserveAttempt(key, cred.Username, req, now) {
		s.m.authFailures.WithLabelValues("blocked").Inc()
		s.respond(tx, req, 403, "Forbidden (Too Many Failed Attempts)")
		s.authFailed(req, now) // still guessing: toward a ban of the source (guard.go)
		return store.Device{}, false
	}
	// From here one failure per limit is reserved for this attempt; only
	// an outcome that is not a wrong guess gives it back.
	dev, cached, err := s.devices.get(ctx, cred.Username)
	ha1, haveHA1 := "", false
	switch {
	case err == nil:
		ha1, haveHA1 = dev.Cred.HA1(strings.ToUpper(cred.Algorithm))
	case errors.Is(err, store.ErrNotFound):
	default:
		s.releaseAttempt(key, cred.Username)
		s.log.Error("device lookup failed", "sip_user", cred.Username, "error", err)
		s.respond(tx, req, 500, "Server Internal Error", retryAfter(5))
		return store.Device{}, false
	}
	if !haveHA1 {
		ha1 = dummyHA1
	}
	// The digest-uri should be the Request-URI (RFC 7616 §3.4.6); some
	// clients (SIPp) put the server's address there instead. Either is
	// accepted, a URI naming another host is not: the digest also covers
	// the method, and each nonce-count is accepted once.
	uriOK := func(u string) bool {
		if sameURI(u, req.Recipient) {
			return true
		}
		var parsed sipmsg.Uri
		return sipmsg.ParseUri(u, &parsed) == nil && s.isOurHost(parsed.Host)
	}
	verr := s.auth.verify(cred, string(req.Method), ha1, now, nonceBinding(req.Transport(), req.Source()), uriOK)
	if errors.Is(verr, errDigestMismatch) && cached {
		// The device may have new credentials (a new login): check
		// once more against the store before counting a wrong guess.
		s.devices.forget(cred.Username)
		fresh, ferr := s.store.DeviceBySIPUser(ctx, cred.Username)
		switch {
		case ferr == nil:
			dev = fresh
			if ha1, haveHA1 = dev.Cred.HA1(strings.ToUpper(cred.Algorithm)); haveHA1 {
				verr = s.auth.verify(cred, string(req.Method), ha1, now, nonceBinding(req.Transport(), req.Source()), uriOK)
			}
		case errors.Is(ferr, store.ErrNotFound):
			haveHA1 = false // removed since: a wrong guess now
		default:
			s.releaseAttempt(key, cred.Username)
			s.log.Error("device lookup failed", "sip_user", cred.Username, "error", ferr)
			s.respond(tx, req, 500, "Server Internal Error", retryAfter(5))
			return store.Device{}, false
		}
	}
	if verr == nil && !haveHA1 {
		verr = errDigestMismatch
	}
	if verr == nil {
		s.failures.succeed(key)
		s.shield.accounts.release(cred.Username)
		trust(tx) // responses from here on are stateful (amplify.go)
		return dev, true
	}
	if errors.Is(verr, errDigestStale) || errors.Is(verr, errDigestBadNonce) || errors.Is(verr, errDigestReplay) {
		// Not a wrong guess: a right password on an old or reused nonce,
		// or a nonce never checked against.
		s.releaseAttempt(key, cred.Username)
	}
	switch {
	case errors.Is(verr, errDigestStale):
		s.m.authFailures.WithLabelValues("stale").Inc()
		s.challenge(tx, req, kind, true)
	case errors.Is(verr, errDigestBadNonce):
		// A nonce from before a restart, or from another node.
		s.m.authFailures.WithLabelValues("unknown-nonce").Inc()
		s.challenge(tx, req, kind, true)
	case errors.Is(verr, errDigestReplay):
		s.m.authFailures.WithLabelValues("replay").Inc()
		s.log.Warn("digest replay refused", "sip_user", cred.Username, "remote_addr", req.Source())
		s.challenge(tx, req, kind, false)
	default:
		s.m.authFailures.WithLabelValues("mismatch").Inc()
		// The failure was counted when reserved, before the check.
		s.banTally(req) // toward a ban of the source (authlimits.go)
		s.log.Info("authentication failed", "sip_user", cred.Username, "remote_addr", req.Source(), "reason", verr.Error())
		if s.failures.blocked(key, now) {
			s.respond(tx, req, 403, "Forbidden (Too Many Failed Attempts)")
		} else {
			s.challenge(tx, req, kind, false)
		}
	}
	return store.Device{}, false
}

// credentials finds the Digest credentials for our realm among the
// request's (Proxy-)Authorization headers; other schemes and realms are
// ignored (RFC 4475 §3.3.7).
func (s *Server) credentials(req *sipmsg.Request, kind authKind) (digestCredentials, bool, error) {
	var firstErr error
	for h := range sipcore.Named(req.Headers(), kind.answer) {
		v := strings.TrimSpace(h.Value())
		scheme, _, _ := strings.Cut(v, " ")
		if !strings.EqualFold(scheme, "Digest") {
			continue
		}
		c, err := parseDigest(v)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if c.Realm == s.cfg.Realm {
			return c, true, nil
		}
	}
	return digestCredentials{}, false, firstErr
}

func (s *Server) challenge(tx sipmsg.ServerTransaction, req *sipmsg.Request, kind authKind, stale bool) {
	vals := s.auth.challenges(s.now(), stale, s.legacyDigest(req), nonceBinding(req.Transport(), req.Source()))
	if sipmsg.NetworkToUpper(req.Transport()) == "UDP" {
		// A UDP source may be forged, and each further algorithm adds some
		// 150 bytes sent to it; the best one alone keeps a challenge
		// within twice a minimal request.
		vals = vals[:1]
	}
	var hs []sipmsg.Header
	for _, v := range vals {
		hs = append(hs, sipmsg.NewHeader(kind.challenge, v))
	}
	s.respond(tx, req, kind.code, kind.reason, hs...)
}

// legacyDigest reports whether the request comes from a standard SIP
// device (kind "sip"). Many such endpoints (SIPp, baresip, Linphone) only
// compute MD5 and fail on challenges they cannot answer, so they are
// offered MD5 alone; Z5 clients get SHA-256 first (RFC 8760).
func (s *Server) legacyDigest(req *sipmsg.Request) bool {
	from := req.From()
	if from == nil || from.Address.User == "" {
		return false
	}
	user := from.Address.User
	if dev, ok := s.devices.cached(user); ok {
		return dev.Kind == store.DeviceSIP
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if dev, _, err := s.devices.get(ctx, user); err == nil {
		return dev.Kind == store.DeviceSIP
	}
	// Standard endpoints often put the number, not their SIP username, in
	// From: a number with a standard device is offered MD5 (its Z5 devices
	// then answer MD5 too, which they can).
	devs, err := s.store.DevicesOf(ctx, user)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(devs, func(d store.Device) bool { return d.Kind == store.DeviceSIP })
}

// sameURI reports whether a digest-uri names the request's target:
// compared by scheme, user, host and port, so clients that re-serialise
// the URI are matched too, or else as the target is written. Parsing the
// digest-uri allocates less than writing the target out, which every
// authenticated request did when the written form was compared first.
func sameURI(digestURI string, target sipmsg.Uri) bool {
	var u sipmsg.Uri
	if err := sipmsg.ParseUri(digestURI, &u); err == nil && strings.EqualFold(u.Scheme, target.Scheme) &&
		u.User == target.User && strings.EqualFold(u.Host, target.Host) && u.Port == target.Port {
		return true
	}
	return digestURI == target.String()
}

// sourceIP is the address a request came from.
func sourceIP(req *sipmsg.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func retryAfter(seconds int) sipmsg.Header {
	return sipmsg.NewHeader("Retry-After", itoa(seconds))
}
