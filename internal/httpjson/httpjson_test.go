package httpjson

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type login struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func TestRead(t *testing.T) {
	tests := []struct {
		name     string
		ctype    string
		body     string
		optional bool
		status   int    // 0: no error
		code     string // of the error
	}{
		{"object", "application/json", `{"username":"a","password":"b"}`, false, 0, ""},
		{"charset utf-8", "application/json; charset=UTF-8", `{"username":"a"}`, false, 0, ""},
		{"absent, optional", "", "", true, 0, ""},
		{"blank, optional", "application/json", "  \n", true, 0, ""},
		{"absent", "", "", false, 400, "empty_body"},
		{"blank", "application/json", " ", false, 400, "empty_body"},
		{"wrong type", "text/plain", `{}`, false, 415, "unsupported_media_type"},
		{"wrong charset", "application/json; charset=latin1", `{}`, false, 415, "unsupported_media_type"},
		{"too large", "application/json", `{"username":"` + strings.Repeat("x", 64) + `"}`, false, 413, "body_too_large"},
		{"unknown field", "application/json", `{"user":"a"}`, false, 400, "unknown_field"},
		{"wrong field type", "application/json", `{"username":1}`, false, 400, "invalid_field"},
		{"not an object", "application/json", `[1]`, false, 400, "invalid_json"},
		{"malformed", "application/json", `{"username":`, false, 400, "invalid_json"},
		{"trailing data", "application/json", `{} {}`, false, 400, "invalid_json"},
		{"not utf-8", "application/json", "{\"username\":\"\xff\"}", false, 400, "invalid_json"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tt.body))
		if tt.body == "" {
			r.Body, r.ContentLength = http.NoBody, 0
		}
		if tt.ctype != "" {
			r.Header.Set("Content-Type", tt.ctype)
		}
		var v login
		err := Read(httptest.NewRecorder(), r, 64, &v, tt.optional)
		if tt.status == 0 {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		je, ok := errors.AsType[*Error](err)
		if !ok || je.Status != tt.status || je.Code != tt.code {
			t.Errorf("%s: error %v, want %d %s", tt.name, err, tt.status, tt.code)
		}
	}
}

func TestWrite(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		w := httptest.NewRecorder()
		if err := Write(w, httptest.NewRequest(method, "/", nil), http.StatusCreated, "application/json", map[string]int{"a": 1}); err != nil {
			t.Fatal(err)
		}
		want := "{\"a\":1}\n"
		if method == http.MethodHead {
			want = ""
		}
		if w.Code != http.StatusCreated || w.Body.String() != want || w.Header().Get("Content-Length") != "8" ||
			w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %q %v", method, w.Code, w.Body.String(), w.Header())
		}
	}
	if err := Write(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), 200, "application/json", func() {}); err == nil {
		t.Error("a value JSON cannot encode: no error")
	}
}
