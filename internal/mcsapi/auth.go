package mcsapi

import (
	"errors"
	"net/http"
	"strings"

	"github.com/z5vrs/z5/internal/store"
)

// maxToken bounds the bearer token we hash and look up; ours are 43 bytes.
const maxToken = 512

// authedHandler is a route that needs the caller's MCS session.
type authedHandler func(http.ResponseWriter, *http.Request, store.Session) error

// auth checks "Authorization: Bearer <token>" (RFC 6750): the token must be
// an MCS token (not a ZDial login token), unexpired and not revoked.
func (s *Service) auth(h authedHandler) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		v := r.Header.Get("Authorization")
		if v == "" {
			return &apiError{status: http.StatusUnauthorized, code: "unauthorized",
				msg: "no Authorization header; send the MCS token from number selection as \"Authorization: Bearer <token>\""}
		}
		scheme, tok, _ := strings.Cut(v, " ")
		tok = strings.TrimSpace(tok)
		if !strings.EqualFold(scheme, "Bearer") || tok == "" {
			return &apiError{status: http.StatusUnauthorized, code: "unauthorized",
				msg: "the Authorization header must be \"Bearer <token>\""}
		}
		if len(tok) > maxToken {
			return errInvalidToken("the token is not one this service issued")
		}
		sess, err := s.store.Session(r.Context(), store.TokenHash(tok))
		switch {
		case errors.Is(err, store.ErrNotFound):
			return errInvalidToken("unknown token; log in again (z5 login)")
		case err != nil:
			return err
		case sess.Kind != store.SessionMCS:
			return errInvalidToken("this is a ZDial login token; use the MCS token returned when selecting a number")
		case !sess.Valid(s.now()):
			return errInvalidToken("the token has expired or was revoked; log in again (z5 login)")
		}
		return h(w, r, sess)
	}
}

func errInvalidToken(msg string) *apiError {
	return &apiError{status: http.StatusUnauthorized, code: "invalid_token", msg: msg}
}
