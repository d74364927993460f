// Package httpjson is the JSON plumbing the provider's HTTPS APIs (ZDial and
// the MCS API) share: reading a request body within a size limit and of an
// accepted media type, decoding exactly one JSON object with every field
// known, and writing a JSON answer. Each failure is an *Error a client can
// act on. It is not a router, and knows nothing of the APIs' error bodies
// or authentication.
package httpjson

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

// Error is a request the client must change: an HTTP status, a stable
// snake_case code clients branch on, and a message saying what to do.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func badRequest(code, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Message: fmt.Sprintf(format, args...)}
}

// TooLarge is the answer to a body over max bytes.
func TooLarge(max int64) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
		Message: fmt.Sprintf("the request body is larger than %d bytes", max)}
}

// ReadBody reads r's body, at most max bytes, of a media type among types
// in UTF-8 (a charset parameter, when present, must say so).
func ReadBody(w http.ResponseWriter, r *http.Request, max int64, types ...string) ([]byte, error) {
	if r.ContentLength > max {
		return nil, TooLarge(max)
	}
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !slices.Contains(types, mt) {
		return nil, &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
			Message: fmt.Sprintf("Content-Type %q is not accepted here; send %s", clip.String(ct, 64), strings.Join(types, " or "))}
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return nil, &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
			Message: fmt.Sprintf("charset %q is not accepted; send UTF-8", clip.String(cs, 32))}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, TooLarge(max)
		}
		return nil, badRequest("unreadable_body", "could not read the request body: %v", err)
	}
	return body, nil
}

// Empty reports whether r carries no body at all, which a request whose
// body is optional may send.
func Empty(r *http.Request) bool {
	return r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody
}

// Read decodes r's body, an application/json object of at most max bytes,
// into v (a pointer to a struct with json tags). Every field must be
// known: a misspelt field is an error, not silently dropped. With optional,
// an absent or blank body leaves v untouched.
func Read(w http.ResponseWriter, r *http.Request, max int64, v any, optional bool) error {
	if Empty(r) {
		if optional {
			return nil
		}
		return badRequest("empty_body", "the request body is empty; send a JSON object with %s", fieldList(v))
	}
	body, err := ReadBody(w, r, max, "application/json")
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return badRequest("empty_body", "the request body is empty; send a JSON object with %s", fieldList(v))
	}
	return Decode(body, v)
}

// Decode decodes body, exactly one JSON object, into v with every field
// known.
func Decode(body []byte, v any) error {
	if !utf8.Valid(body) {
		return badRequest("invalid_json", "the request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, v)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("invalid_json", "unexpected data after the JSON object at byte %d; send exactly one object", dec.InputOffset())
	}
	return nil
}

// decodeError explains a decoding failure by what and where.
func decodeError(err error, v any) *Error {
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
		return badRequest("unknown_field", "unknown field %s; this request accepts only %s", clip.String(f, 80), fieldList(v))
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
	if t == nil || t.Kind() != reflect.Struct || t.NumField() == 0 {
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

// Write answers status with v as JSON, of media type contentType (each
// API keeps the spelling its document gives). A HEAD request gets the
// headers only. The error is v's encoding failing, before anything was
// written; a failed write means the client went away, with nothing left
// to answer.
func Write(w http.ResponseWriter, r *http.Request, status int, contentType string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
	return nil
}
