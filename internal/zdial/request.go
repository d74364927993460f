package zdial

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/z5vrs/z5/internal/httpjson"
	"github.com/z5vrs/z5/internal/store"
)

// readJSON decodes the request body, a single JSON object of at most
// maxBody bytes, into v (see httpjson.Read). With optional, an absent body
// leaves v untouched.
func readJSON(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	return httpjson.Read(w, r, maxBody, v, optional)
}

// authenticate returns the valid ZDial login session named by the request's
// Authorization: Bearer header. Tokens are accepted there only: never in
// the URL (logged by proxies) or the body.
func (s *Service) authenticate(r *http.Request) (store.Session, error) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return store.Session{}, unauthorized("missing_token", "",
			"no Authorization header; log in and send Authorization: Bearer <token>")
	}
	if len(vals) > 1 {
		return store.Session{}, unauthorized("invalid_token", "invalid_request",
			"several Authorization headers; send exactly one")
	}
	scheme, tok, _ := strings.Cut(vals[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return store.Session{}, unauthorized("invalid_token", "invalid_request",
			"the Authorization header must use the Bearer scheme: Authorization: Bearer <token>")
	}
	tok = strings.TrimLeft(tok, " ")
	if !isToken68(tok) {
		return store.Session{}, unauthorized("invalid_token", "invalid_token",
			"the bearer token is malformed; log in again")
	}
	sess, err := s.store.Session(r.Context(), store.TokenHash(tok))
	if errors.Is(err, store.ErrNotFound) {
		return store.Session{}, unauthorized("invalid_token", "invalid_token",
			"unknown token; log in again")
	}
	if err != nil {
		return store.Session{}, fmt.Errorf("look up session: %w", err)
	}
	if sess.Kind != store.SessionZDial {
		return store.Session{}, unauthorized("invalid_token", "invalid_token",
			"this is not a ZDial login token (an MCS token belongs to the MCS API); log in again")
	}
	if !sess.Valid(s.now()) {
		return store.Session{}, unauthorized("session_expired", "invalid_token",
			"the session has expired or was logged out; log in again")
	}
	return sess, nil
}

// isToken68 accepts the b64token syntax of RFC 6750 within a sane length.
func isToken68(s string) bool {
	if s == "" || len(s) > 512 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return true
}

// clientIP is the connection's peer address. X-Forwarded-For and friends
// are ignored on purpose: anyone can send them, and trusting them would let
// a client pick a fresh rate-limit bucket per request.
func clientIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
