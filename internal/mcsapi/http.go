package mcsapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/z5vrs/z5/internal/clip"
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

func (s *Service) errTooLarge() *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, code: "body_too_large",
		msg: fmt.Sprintf("the request body is larger than %d bytes", s.cfg.MaxBody)}
}

// writeError answers with err's JSON body. An error that is not an
// *apiError is a server fault: logged, and answered without its text.
func (s *Service) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		s.log.Error("mcs request failed", "method", r.Method, "path", clip.String(r.URL.Path, 80), "err", err)
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

// writeJSON writes v as the response body with status.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		// A failed write means the client went away; nothing to answer.
		_, _ = w.Write(b)
	}
	return nil
}

// readBody reads the request body of media type one of types, at most
// MaxBody bytes.
func (s *Service) readBody(w http.ResponseWriter, r *http.Request, types ...string) ([]byte, error) {
	if r.ContentLength > s.cfg.MaxBody {
		return nil, s.errTooLarge()
	}
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !slices.Contains(types, mt) {
		return nil, &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type",
			msg: fmt.Sprintf("Content-Type %q is not accepted here; send %s", clip.String(ct, 64), strings.Join(types, " or "))}
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return nil, &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type",
			msg: fmt.Sprintf("charset %q is not accepted; send UTF-8", clip.String(cs, 32))}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, s.errTooLarge()
		}
		return nil, badRequest("unreadable_body", "could not read the request body: %v", err)
	}
	return body, nil
}

// readJSON decodes the request body, exactly one JSON object, into v. Every
// field must be known: a misspelt field is an error, not silently dropped.
func (s *Service) readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := s.readBody(w, r, "application/json")
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("empty_body", "the request body is empty; send a JSON object with %s", fieldList(v))
	}
	if !utf8.Valid(body) {
		return badRequest("invalid_json", "the request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, v)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("invalid_json", "unexpected data after the JSON object at byte %d; send exactly one object", dec.InputOffset())
	}
	return nil
}

// jsonError explains a decoding failure by what and where.
func jsonError(err error, v any) *apiError {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return badRequest("invalid_json", "malformed JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return badRequest("invalid_json", "the body must be a JSON object with %s, not a JSON %s", fieldList(v), te.Value)
		}
		return badRequest("invalid_field", "field %q must be a %s, not a JSON %s", te.Field, jsonKind(te.Type.Kind()), te.Value)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return badRequest("invalid_json", "the JSON body ends too early; send a complete object")
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return badRequest("unknown_field", "unknown field %s; a contact has only %s", clip.String(f, 80), fieldList(v))
	}
	return badRequest("invalid_json", "invalid JSON: %s", clip.String(strings.TrimPrefix(err.Error(), "json: "), 200))
}

func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Uint32, reflect.Float64:
		return "number"
	case reflect.Slice:
		return "array"
	case reflect.Struct, reflect.Map:
		return "object"
	}
	return k.String()
}

// fieldList names the JSON fields of the struct v points to, for messages.
func fieldList(v any) string {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return "no fields"
	}
	var names []string
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			names = append(names, strconv.Quote(name))
		}
	}
	return strings.Join(names, ", ")
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
