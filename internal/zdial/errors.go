package zdial

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/z5vrs/z5/internal/httpjson"
)

// apiError is an error a handler returns to answer the client with a
// status and a JSON body {"error": {"code", "message"}}. Any other error is
// a server fault: logged, and answered with a generic 500.
type apiError struct {
	status int
	code   string // snake_case, stable: clients branch on it
	msg    string // says what went wrong and what to do
	// retryAfter sets Retry-After (rounded up to whole seconds) when > 0.
	retryAfter time.Duration
	allow      string // Allow header of a 405
	// wwwAuth is the WWW-Authenticate challenge of a 401 (RFC 6750).
	wwwAuth string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.msg) }

// Errors shared by several handlers.
var (
	errInternal = &apiError{status: http.StatusInternalServerError, code: "internal_error",
		msg: "internal server error; try again later, and contact support if it persists"}
	errBusy = &apiError{status: http.StatusServiceUnavailable, code: "server_busy",
		msg: "the server is busy checking other logins; try again in a few seconds", retryAfter: retryBusyAfter}
	// errBadCredentials is the one answer to a wrong username AND to a
	// wrong password: telling them apart would let anyone list accounts.
	errBadCredentials = &apiError{status: http.StatusUnauthorized, code: "invalid_credentials",
		msg: "wrong username or password; check both and try again"}
)

func errLocked(d time.Duration) *apiError {
	return &apiError{status: http.StatusTooManyRequests, code: "account_locked",
		msg: fmt.Sprintf("too many failed logins: this account is locked for %s; try again later or reset the password",
			roundUp(d)), retryAfter: d}
}

func errThrottled(d time.Duration) *apiError {
	return &apiError{status: http.StatusTooManyRequests, code: "rate_limited",
		msg: fmt.Sprintf("too many login attempts from your address; wait %s and try again", roundUp(d)), retryAfter: d}
}

// errFailuresFromSource: the source used up its failed logins; it may
// log in again once some have drained.
func errFailuresFromSource(d time.Duration) *apiError {
	return &apiError{status: http.StatusTooManyRequests, code: "rate_limited",
		msg: fmt.Sprintf("too many failed logins from your address; wait %s and try again", roundUp(d)), retryAfter: d}
}

func badRequest(code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, msg: fmt.Sprintf(format, args...)}
}

func unauthorized(code, errParam, msg string) *apiError {
	challenge := `Bearer realm="zdial"`
	if errParam != "" {
		challenge += `, error="` + errParam + `"`
	}
	return &apiError{status: http.StatusUnauthorized, code: code, msg: msg, wwwAuth: challenge}
}

// writeError answers err. Server faults are logged here, once, with the
// request's route; the client only learns that something failed.
func (s *Service) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if je, ok := errors.AsType[*httpjson.Error](err); ok {
		ae = &apiError{status: je.Status, code: je.Code, msg: je.Message}
	} else if !errors.As(err, &ae) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			// The client went away or the server is shutting down.
			s.log.Debug("zdial request abandoned", "route", r.URL.Path, "error", err)
			ae = errBusy
		} else {
			s.log.Error("zdial request failed", "route", r.URL.Path, "remote_addr", r.RemoteAddr, "error", err)
			ae = errInternal
		}
	}
	h := w.Header()
	if ae.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(retrySeconds(ae.retryAfter)))
	}
	if ae.allow != "" {
		h.Set("Allow", ae.allow)
	}
	if ae.wwwAuth != "" {
		h.Set("WWW-Authenticate", ae.wwwAuth)
	}
	type body struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	writeJSON(w, r, ae.status, struct {
		Error body `json:"error"`
	}{body{ae.code, ae.msg}})
}

// contentType is the media type of every answer, as docs/api-zdial.md
// spells it.
const contentType = "application/json; charset=utf-8"

// writeJSON answers status with v.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	if err := httpjson.Write(w, r, status, contentType, v); err != nil {
		// Only our own response types reach here; they always encode.
		_ = httpjson.Write(w, r, http.StatusInternalServerError, contentType,
			map[string]map[string]string{"error": {"code": "internal_error", "message": "response encoding failed"}})
	}
}

// retrySeconds is d rounded up to whole seconds, at least 1: a client
// retrying at exactly the floor would be refused once more.
func retrySeconds(d time.Duration) int {
	s := math.Ceil(d.Seconds())
	if s < 1 {
		return 1
	}
	if s > math.MaxInt32 {
		return math.MaxInt32
	}
	return int(s)
}

func roundUp(d time.Duration) time.Duration {
	return time.Duration(retrySeconds(d)) * time.Second
}
