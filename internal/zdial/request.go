package zdial

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/z5vrs/z5/internal/store"
)

// readJSON decodes the request body, a single JSON object, into v
// (a pointer to a struct with json tags). It enforces the size limit,
// Content-Type, UTF-8, and that every field is known: a misspelt field must
// be an error, not silently ignored. With optional, an absent body leaves v
// untouched.
func readJSON(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	if r.ContentLength > maxBody {
		return errTooLarge()
	}
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		if optional {
			return nil
		}
		return badRequest("empty_body", "the request body is empty; send a JSON object with %s", fieldList(v))
	}
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type",
			msg: fmt.Sprintf("Content-Type %q is not accepted; send the body as application/json", truncate(ct, 64))}
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type",
			msg: fmt.Sprintf("charset %q is not accepted; send UTF-8", truncate(cs, 32))}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errTooLarge()
		}
		return badRequest("unreadable_body", "could not read the request body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
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

func errTooLarge() *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, code: "body_too_large",
		msg: fmt.Sprintf("the request body is larger than %d bytes", maxBody)}
}

// jsonError explains a decoding failure by what and where.
func jsonError(err error, v any) *apiError {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return badRequest("invalid_json", "malformed JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	case errors.As(err, &te):
		if te.Field == "" {
			return badRequest("invalid_json", "the body must be a JSON object with %s, not a JSON %s", fieldList(v), te.Value)
		}
		return badRequest("invalid_field", "field %q must be a %s, not a JSON %s", te.Field, jsonKind(te.Type.Kind()), te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("invalid_json", "the JSON body ends too early; send a complete object")
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return badRequest("unknown_field", "unknown field %s; this request accepts only %s", truncate(f, 80), fieldList(v))
	}
	return badRequest("invalid_json", "invalid JSON: %s", truncate(strings.TrimPrefix(err.Error(), "json: "), 200))
}

func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Uint32, reflect.Float64:
		return "number"
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
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names = append(names, `"`+name+`"`)
		}
	}
	return strings.Join(names, ", ")
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
