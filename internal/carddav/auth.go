package carddav

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/z5vrs/z5/internal/store"
)

// maxToken bounds the token we hash and look up; ours are 43 bytes.
const maxToken = 512

// authenticate finds the MCS session of a request. The token travels as
// "Authorization: Bearer <token>" (RFC 6750) or, for the many CardDAV
// clients that only do HTTP Basic (RFC 7617), as the password with the
// number or the device's SIP user name as user name. We keep no password a
// CardDAV client could send (only digest HA1 values for SIP), so the token
// from number selection is the credential; like every MCS token it expires
// and is revoked by logging out of ZDial.
func (h *Handler) authenticate(r *http.Request) (store.Session, error) {
	v := r.Header.Get("Authorization")
	if v == "" {
		return store.Session{}, errUnauthorized("log in: user name = your phone number, password = the MCS token from number selection (or send it as \"Authorization: Bearer <token>\")")
	}
	scheme, cred, _ := strings.Cut(v, " ")
	cred = strings.TrimSpace(cred)
	var user, tok string
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		tok = cred
	case strings.EqualFold(scheme, "Basic"):
		raw, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			return store.Session{}, errUnauthorized("the Basic credentials are not valid base64")
		}
		var ok bool
		if user, tok, ok = strings.Cut(string(raw), ":"); !ok {
			return store.Session{}, errUnauthorized("the Basic credentials have no ':' between user name and password")
		}
	default:
		return store.Session{}, errUnauthorized("the Authorization scheme must be Basic or Bearer")
	}
	if tok == "" || len(tok) > maxToken {
		return store.Session{}, errUnauthorized("wrong user name or password: the password is the MCS token from number selection")
	}
	sess, err := h.store.Session(r.Context(), store.TokenHash(tok))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Session{}, errUnauthorized("wrong user name or password: unknown token; log in again (z5 login) for a new one")
	case err != nil:
		return store.Session{}, fmt.Errorf("carddav auth: %w", err)
	case sess.Kind != store.SessionMCS:
		return store.Session{}, errUnauthorized("this is a ZDial login token; use the MCS token returned when selecting a number")
	case !sess.Valid(h.now()):
		return store.Session{}, errUnauthorized("the token has expired or was revoked; log in again (z5 login)")
	}
	if user != "" && user != sess.Number {
		dev, err := h.store.Device(r.Context(), sess.DeviceID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return store.Session{}, fmt.Errorf("carddav auth: device %d: %w", sess.DeviceID, err)
		}
		if err != nil || user != dev.SIPUser {
			return store.Session{}, errUnauthorized(fmt.Sprintf("wrong user name or password: this token belongs to %s; log in with that number as user name", sess.Number))
		}
	}
	return sess, nil
}

func errUnauthorized(msg string) *davError {
	return &davError{status: http.StatusUnauthorized, msg: msg}
}
