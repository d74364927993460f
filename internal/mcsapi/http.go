package mcsapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/z5vrs/z5/internal/clip"
	"github.com/z5vrs/z5/internal/httpjson"
)

// apiError is an error with its HTTP answer:
// {"error": {"code": "snake_case", "message": "...", ...details}}.
type apiError struct {
	status int
	code   string
	msg    string
	allow  string // Allow header for 405
	etag   string // ETag header (412: the current version)
	// Details that let a program point at the problem.
	fields   []fieldJSON
	card     int
	line     int
	property string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

type fieldJSON struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

type errorBody struct {
	Error errorJSON `json:"error"`
}

type errorJSON struct {
	Code     string      `json:"code"`
	Message  string      `json:"message"`
	Fields   []fieldJSON `json:"fields,omitempty"`
	Card     int         `json:"card,omitempty"`
	Line     int         `json:"line,omitempty"`
	Property string      `json:"property,omitempty"`
}

// unprocessable turns a validation failure, a list E of field errors, into
// 422 with code and one entry per field; any other error comes back as it
// is.
func unprocessable[E interface {
	error
	~[]F
}, F any](err error, code string, field func(F) fieldJSON) error {
	list, ok := errors.AsType[E](err)
	if !ok {
		return err
	}
	ae := &apiError{status: http.StatusUnprocessableEntity, code: code, msg: list.Error()}
	for _, f := range list {
		ae.fields = append(ae.fields, field(f))
	}
	return ae
}

var errInternal = &apiError{status: http.StatusInternalServerError, code: "internal",
	msg: "the server failed to handle the request; try again later"}

func badRequest(code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, msg: fmt.Sprintf(format, args...)}
}

func errMethod(method string, allow []string) *apiError {
	a := strings.Join(allow, ", ")
	return &apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed",
		msg: fmt.Sprintf("method %s is not allowed here; use %s", clip.String(method, 16), a), allow: a}
}

func (s *Service) errTooLarge() error { return httpjson.TooLarge(s.cfg.MaxBody) }

// writeError answers with err's JSON body. An error that is not an
// *apiError is a server fault: logged, and answered without its text.
func (s *Service) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if je, ok := errors.AsType[*httpjson.Error](err); ok {
		ae = &apiError{status: je.Status, code: je.Code, msg: je.Message}
	} else if !errors.As(err, &ae) {
		s.log.Error("mcs request failed", "method", r.Method, "path", clip.String(r.URL.Path, 80), "error", err)
		ae = errInternal
	}
	h := w.Header()
	if ae.allow != "" {
		h.Set("Allow", ae.allow)
	}
	if ae.etag != "" {
		h.Set("ETag", ae.etag)
	}
	if ae.status == http.StatusUnauthorized {
		v := `Bearer realm="mcs"`
		if ae.code == "invalid_token" {
			v += `, error="invalid_token"`
		}
		h.Set("WWW-Authenticate", v)
	}
	h.Set("Cache-Control", "no-store")
	writeJSON(w, r, ae.status, errorBody{errorJSON{
		Code: ae.code, Message: ae.msg, Fields: ae.fields, Card: ae.card, Line: ae.line, Property: ae.property,
	}})
}

// contentType is the media type of every JSON answer, as docs/api-mcs.md
// spells it.
const contentType = "application/json"

// writeJSON writes v as the response body with status.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) error {
	return httpjson.Write(w, r, status, contentType, v)
}

// readBody reads the request body of media type one of types, at most
// MaxBody bytes.
func (s *Service) readBody(w http.ResponseWriter, r *http.Request, types ...string) ([]byte, error) {
	return httpjson.ReadBody(w, r, s.cfg.MaxBody, types...)
}

// readJSON decodes the request body, exactly one JSON object, into v (see
// httpjson.Read).
func (s *Service) readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	return httpjson.Read(w, r, s.cfg.MaxBody, v, false)
}

// Entity tags. A contact's is its version (httpcond.VersionETag), the
// book's its revision; both strong (RFC 9110 section 8.8.3).

func bookETag(rev int64) string { return `"rev-` + strconv.FormatInt(rev, 10) + `"` }

// notModified answers 304 with the validator the client will keep.
func notModified(w http.ResponseWriter, etag string) error {
	w.Header().Set("ETag", etag)
	w.WriteHeader(http.StatusNotModified)
	return nil
}
