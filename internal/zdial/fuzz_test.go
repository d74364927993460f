package zdial

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/z5vrs/z5/internal/password"
	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/store/sqlite"
)

// fuzzService is a Service over a fresh SQLite store with one customer
// ("fuzz" / "fuzz-secret-1", numbers 5552000091 and 5552000092) and a
// valid login token. Hashes are cheap so the fuzzer keeps its pace.
func fuzzService(f *testing.F) (*Service, string) {
	st, err := sqlite.Open(context.Background(), filepath.Join(f.TempDir(), "z5.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	cfg := testConfig()
	// The throttles would hide every path behind 429.
	cfg.PerIPRate, cfg.PerIPBurst = 1<<30, 1<<20
	cfg.MaxFailures, cfg.AccountMaxFailures, cfg.SourceMaxFailures = 1<<20, 1<<20, 1<<20
	svc, err := New(cfg, Deps{Store: st, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	svc.dummyHash, _ = password.HashWith(cheapHash, "dummy-password")
	ctx := context.Background()
	// A hash NeedsRehash accepts keeps logins from re-hashing at full cost.
	h, _ := password.HashWith(password.Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}, "fuzz-secret-1")
	c, err := st.CreateCustomer(ctx, store.Customer{Username: "fuzz", PasswordHash: h})
	if err != nil {
		f.Fatal(err)
	}
	for _, n := range []string{"5552000091", "5552000092"} {
		if err := st.AddNumber(ctx, store.Number{Number: n, CustomerID: c.ID}); err != nil {
			f.Fatal(err)
		}
	}
	tok := store.NewToken()
	now := svc.now()
	if err := st.CreateSession(ctx, store.Session{TokenHash: store.TokenHash(tok), Kind: store.SessionZDial,
		CustomerID: c.ID, CreatedAt: now, ExpiresAt: now.Add(cfg.SessionTTL)}); err != nil {
		f.Fatal(err)
	}
	return svc, tok
}

func serve(t *testing.T, svc *Service, path, contentType, token string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(body)))
	req.RemoteAddr = "127.0.0.1:40000"
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	svc.ServeHTTP(w, req)
	if w.Code >= 500 {
		t.Fatalf("POST %s %q: %d %s", path, body, w.Code, w.Body)
	}
	if w.Code >= 400 && !strings.HasPrefix(w.Body.String(), `{"error":{"code":"`) {
		t.Fatalf("POST %s %q: %d without a JSON error: %s", path, body, w.Code, w.Body)
	}
	return w
}

// FuzzLogin posts arbitrary bodies to /api/v1/login: never a 5xx, never a
// panic, every refusal a JSON error.
func FuzzLogin(f *testing.F) {
	for _, s := range []string{
		`{"username":"fuzz","password":"fuzz-secret-1"}`,
		`{"username":"fuzz","password":"wrong-password"}`,
		`{"username":"nobody","password":"whatever-pw"}`,
		`{"username":"fuzz","password":"fuzz-secret-1","x":1}`,
		`{"username":["fuzz"],"password":{}}`,
		`{"username":"\u0000","password":"\ud800"}`,
		`{"USERNAME":"fuzz","Password":"fuzz-secret-1"}`,
		`{"username":"fuzz","username":"other","password":"p"}`,
		`[1,2,3]`, `null`, `true`, `1e999`, `{`, ``, "\xff\xfe", `{}{}`, `{"a":` + strings.Repeat("[", 10000),
	} {
		f.Add(s, "application/json")
	}
	f.Add(`{"username":"fuzz","password":"fuzz-secret-1"}`, "application/json; charset=UTF-8")
	f.Add(`{}`, "text/plain")
	f.Add(`{}`, "application/json; charset")
	svc, _ := fuzzService(f)
	f.Fuzz(func(t *testing.T, body, contentType string) {
		w := serve(t, svc, "/api/v1/login", contentType, "", []byte(body))
		if w.Code == 200 && !strings.Contains(w.Body.String(), `"token":"`) {
			t.Fatalf("200 without a token: %s", w.Body)
		}
	})
}

// FuzzSelect posts arbitrary bodies to /api/v1/select with a valid token.
func FuzzSelect(f *testing.F) {
	for _, s := range []string{
		`{"number":"5552000091","device_name":"pc","instance_id":"<urn:uuid:1>"}`,
		`{"number":"5552000092","instance_id":"i"}`,
		`{"number":"5552000099","instance_id":"i"}`,
		`{"number":"555200009","instance_id":"i"}`,
		`{"number":"5552000091","instance_id":"` + strings.Repeat("i", 300) + `"}`,
		`{"number":"5552000091","instance_id":"i","device_name":"\u202e\u0000"}`,
		`{"number":5552000091}`, `{"number":null,"instance_id":null}`, `{"extra":1}`, ``, `{`,
	} {
		f.Add(s)
	}
	svc, tok := fuzzService(f)
	f.Fuzz(func(t *testing.T, body string) {
		w := serve(t, svc, "/api/v1/select", "application/json", tok, []byte(body))
		if w.Code == 200 && !strings.Contains(w.Body.String(), `"mcs_token":"`) {
			t.Fatalf("200 without an MCS token: %s", w.Body)
		}
	})
}
