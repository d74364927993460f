package mcsapi

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/z5vrs/z5/internal/addressbook"
	"github.com/z5vrs/z5/internal/license"
	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/testenv/teststore"
)

func TestTLSOnly(t *testing.T) {
	e := newEnv(t)
	e.do("GET", PathHealth, "", "").want(t, http.StatusOK)

	// Plain HTTP to the HTTPS port is no API exchange.
	plain := &http.Client{Timeout: 5 * time.Second}
	res, err := plain.Get("http://" + e.addr + PathContacts)
	if err == nil {
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP: status %d, want 400 (client sent HTTP to an HTTPS server)", res.StatusCode)
		}
	}
	// A client that does not trust our CA, or expects another name, refuses.
	for name, tc := range map[string]*tls.Config{
		"system roots": {ServerName: serverName},
		"wrong name":   {RootCAs: e.ca.Pool(), ServerName: "zdial.z5.test"},
	} {
		_, err := e.tlsClient(tc).Get(e.base + PathHealth)
		if err == nil {
			t.Errorf("%s: TLS handshake succeeded", name)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	for _, r := range []resp{
		e.do("GET", PathHealth, "", ""),
		e.do("GET", PathContacts, "", ""),
		e.do("GET", "/nope", "", ""),
	} {
		for k, v := range map[string]string{
			"Strict-Transport-Security": "max-age=31536000",
			"X-Content-Type-Options":    "nosniff",
			"X-Frame-Options":           "DENY",
			"Content-Security-Policy":   "default-src 'none'; frame-ancestors 'none'",
		} {
			if got := r.Header.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", r.Request.URL.Path, k, got, v)
			}
		}
	}
}

func TestLicense(t *testing.T) {
	e := newEnv(t)
	before := time.Now().Truncate(time.Second)
	r := e.do("POST", PathLicense, e.alice, "").want(t, http.StatusOK)
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	var got licenseJSON
	r.json(t, &got)

	claims, err := license.Verify(got.License, time.Now(), e.pub)
	if err != nil {
		t.Fatalf("license does not verify with the public key: %v", err)
	}
	want := license.Claims{
		Version: 1, ID: got.ID, Issuer: "mcs.z5.test", KeyID: license.KeyID(e.pub),
		Number: "2025550100", DeviceID: e.aliceDev.ID, SIPUser: e.aliceDev.SIPUser,
		Features: []string{"video", "audio", "addressbook"},
	}
	if d := cmp.Diff(want, claims, cmpopts.IgnoreFields(license.Claims{}, "NotBefore", "NotAfter")); d != "" {
		t.Errorf("claims (-want +got):\n%s", d)
	}
	if nbf := time.Unix(claims.NotBefore, 0); nbf.After(before.Add(-time.Minute)) || nbf.Before(before.Add(-time.Minute-5*time.Second)) {
		t.Errorf("not before %v, want about now-1m", nbf)
	}
	if d := claims.Expires().Sub(time.Unix(claims.NotBefore, 0)); d != e.cfg.LicenseTTL+time.Minute {
		t.Errorf("validity %v, want TTL+1m", d)
	}
	if got.Number != claims.Number || got.DeviceID != claims.DeviceID || !got.NotAfter.Equal(claims.Expires()) ||
		got.NotBefore.Unix() != claims.NotBefore || !cmp.Equal(got.Features, claims.Features) {
		t.Errorf("response fields %+v do not match the claims %+v", got, claims)
	}

	// A tampered license fails: another number with the old signature.
	body, sig, _ := strings.Cut(got.License, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(body)
	forged := base64.RawURLEncoding.EncodeToString(bytes.Replace(raw, []byte("2025550100"), []byte("3125550100"), 1)) + "." + sig
	if _, err := license.Verify(forged, time.Now(), e.pub); !errors.Is(err, license.ErrBadSignature) {
		t.Errorf("tampered license: %v, want ErrBadSignature", err)
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := license.Verify(got.License, time.Now(), other); !errors.Is(err, license.ErrUnknownKey) {
		t.Errorf("another provider's key: %v, want ErrUnknownKey", err)
	}
	if _, err := license.Verify(got.License, time.Now().Add(e.cfg.LicenseTTL+time.Hour), e.pub); !errors.Is(err, license.ErrExpired) {
		t.Errorf("after the TTL: %v, want ErrExpired", err)
	}
	if r := e.do("GET", PathLicense, e.alice, ""); r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "POST" {
		t.Errorf("GET license: %d Allow %q, want 405 Allow POST", r.StatusCode, r.Header.Get("Allow"))
	}
}

func TestLicenseNumberGone(t *testing.T) {
	e := newEnv(t)
	// A token for a device that does not exist (deleted since) gets no license.
	tok := teststore.NewSession(t, e.st, store.Session{Kind: store.SessionMCS, CustomerID: e.aliceCustomer, Number: "2025550100",
		DeviceID: 9999, ExpiresAt: time.Now().Add(time.Hour)})
	if r := e.do("POST", PathLicense, tok, "").want(t, http.StatusForbidden); r.err().Code != "device_gone" {
		t.Errorf("code %q", r.err().Code)
	}
	// Nor a token whose number another customer holds.
	tok = teststore.NewSession(t, e.st, store.Session{Kind: store.SessionMCS, CustomerID: e.aliceCustomer, Number: "3125550100",
		DeviceID: e.bobDev.ID, ExpiresAt: time.Now().Add(time.Hour)})
	if r := e.do("POST", PathLicense, tok, "").want(t, http.StatusForbidden); r.err().Code != "number_gone" {
		t.Errorf("code %q", r.err().Code)
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	zdial := teststore.NewSession(t, e.st, store.Session{Kind: store.SessionZDial, CustomerID: e.aliceCustomer, ExpiresAt: now.Add(time.Hour)})
	expired := teststore.NewSession(t, e.st, store.Session{Kind: store.SessionMCS, CustomerID: e.aliceCustomer, Number: "2025550100",
		DeviceID: e.aliceDev.ID, CreatedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)})
	revoked := teststore.NewSession(t, e.st, store.Session{Kind: store.SessionMCS, CustomerID: e.aliceCustomer, Number: "2025550100",
		DeviceID: e.aliceDev.ID, ExpiresAt: now.Add(time.Hour)})
	if err := e.st.RevokeSession(context.Background(), store.TokenHash(revoked), now); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, header string
		code         int
		errCode      string
	}{
		{"valid", "Bearer " + e.alice, 200, ""},
		{"scheme case", "bearer " + e.alice, 200, ""},
		{"none", "", 401, "unauthorized"},
		{"basic", "Basic YWxpY2U6cHc=", 401, "unauthorized"},
		{"empty bearer", "Bearer ", 401, "unauthorized"},
		{"unknown", "Bearer " + store.NewToken(), 401, "invalid_token"},
		{"huge", "Bearer " + strings.Repeat("a", 4000), 401, "invalid_token"},
		{"zdial token", "Bearer " + zdial, 401, "invalid_token"},
		{"expired", "Bearer " + expired, 401, "invalid_token"},
		{"revoked", "Bearer " + revoked, 401, "invalid_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{PathContacts, PathContactsVCF, PathContacts + "/x"} {
				method := "GET"
				r := e.do(method, path, "", "", "Authorization", tt.header)
				code := tt.code
				if code == 200 && strings.HasSuffix(path, "/x") {
					code = 404
				}
				r.want(t, code)
				if code != 401 {
					continue
				}
				if r.err().Code != tt.errCode {
					t.Errorf("%s: code %q, want %q", path, r.err().Code, tt.errCode)
				}
				if wa := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(wa, "Bearer") {
					t.Errorf("%s: WWW-Authenticate %q", path, wa)
				}
			}
			r := e.do("POST", PathLicense, "", "", "Authorization", tt.header)
			if tt.code == 200 {
				r.want(t, 200)
			} else {
				r.want(t, 401)
			}
		})
	}
}

const bobJSON = `{"name":"Bob Smith","given_name":"Bob","family_name":"Smith","number":"(312) 555-0100",
	"phones":[{"type":"voice","number":"+1 312 555 0199"}],"email":"bob@example.com","note":"ASL, mornings","favorite":true}`

func TestContactsCRUD(t *testing.T) {
	e := newEnv(t)
	list := func() (listJSON, string) {
		r := e.do("GET", PathContacts, e.alice, "").want(t, 200)
		var l listJSON
		r.json(t, &l)
		return l, r.Header.Get("ETag")
	}
	l0, tag0 := list()
	if len(l0.Contacts) != 0 || l0.Contacts == nil || tag0 == "" {
		t.Fatalf("empty book: %+v, ETag %q", l0, tag0)
	}

	r := e.do("POST", PathContacts, e.alice, bobJSON).want(t, http.StatusCreated)
	var c contactJSON
	r.json(t, &c)
	if r.Header.Get("ETag") != `"1"` || c.Version != 1 {
		t.Errorf("created: ETag %q version %d, want \"1\"", r.Header.Get("ETag"), c.Version)
	}
	if loc := r.Header.Get("Location"); loc != PathContacts+"/"+c.ID {
		t.Errorf("Location %q", loc)
	}
	want := contactJSON{ID: c.ID, UID: c.UID, Name: "Bob Smith", GivenName: "Bob", FamilyName: "Smith", Number: "3125550100",
		Phones: []phoneJSON{{"voice", "3125550199"}}, Email: "bob@example.com", Note: "ASL, mornings", Favorite: true, Version: 1, UpdatedAt: c.UpdatedAt}
	if d := cmp.Diff(want, c); d != "" || c.UID == "" || c.UpdatedAt.IsZero() {
		t.Errorf("created (-want +got):\n%s", d)
	}

	path := PathContacts + "/" + c.ID
	r = e.do("GET", path, e.alice, "").want(t, 200)
	var got contactJSON
	r.json(t, &got)
	if d := cmp.Diff(c, got); d != "" {
		t.Errorf("GET (-created +got):\n%s", d)
	}
	e.do("GET", path, e.alice, "", "If-None-Match", `"1"`).want(t, http.StatusNotModified)

	l1, tag1 := list()
	if len(l1.Contacts) != 1 || tag1 == tag0 || l1.Rev <= l0.Rev {
		t.Errorf("after create: %d contacts, ETag %q (was %q), rev %d", len(l1.Contacts), tag1, tag0, l1.Rev)
	}
	if r := e.do("GET", PathContacts, e.alice, "", "If-None-Match", tag1).want(t, http.StatusNotModified); r.Header.Get("ETag") != tag1 || len(r.body) != 0 {
		t.Errorf("304: ETag %q body %q", r.Header.Get("ETag"), r.body)
	}

	// PUT without If-Match: 428; with the version read: 200 and version 2.
	upd := strings.Replace(bobJSON, "Bob Smith", "Robert Smith", 1)
	if r := e.do("PUT", path, e.alice, upd).want(t, http.StatusPreconditionRequired); r.err().Code != "precondition_required" {
		t.Errorf("code %q", r.err().Code)
	}
	r = e.do("PUT", path, e.alice, upd, "If-Match", `"1"`).want(t, 200)
	r.json(t, &got)
	if got.Name != "Robert Smith" || got.Version != 2 || r.Header.Get("ETag") != `"2"` || got.UID != c.UID {
		t.Errorf("updated: %+v ETag %q", got, r.Header.Get("ETag"))
	}
	// The same stale version again: 412 with the current ETag.
	r = e.do("PUT", path, e.alice, bobJSON, "If-Match", `"1"`).want(t, http.StatusPreconditionFailed)
	if r.Header.Get("ETag") != `"2"` || r.err().Code != "precondition_failed" {
		t.Errorf("stale: ETag %q, error %+v", r.Header.Get("ETag"), r.err())
	}
	e.do("PUT", path, e.alice, upd, "If-Match", `W/"2"`).want(t, http.StatusPreconditionFailed)
	e.do("PUT", path, e.alice, upd, "If-Match", `"7", "2"`).want(t, 200)
	e.do("PUT", path, e.alice, upd, "If-Match", `3`).want(t, http.StatusBadRequest)
	e.do("PUT", path, e.alice, `{"id":"other","name":"x","number":"2025550123"}`, "If-Match", `"3"`).want(t, http.StatusBadRequest)
	e.do("PUT", path, e.alice, `{"uid":"new-uid","name":"x","number":"2025550123"}`, "If-Match", `"3"`).want(t, http.StatusUnprocessableEntity)
	e.do("PUT", path, e.alice, upd, "If-Match", `*`).want(t, 200)
	e.do("PUT", PathContacts+"/nope", e.alice, upd, "If-Match", `"1"`).want(t, http.StatusNotFound)

	// Another book cannot see or touch it.
	e.do("GET", path, e.bob, "").want(t, http.StatusNotFound)
	e.do("PUT", path, e.bob, upd, "If-Match", `"4"`).want(t, http.StatusNotFound)
	e.do("DELETE", path, e.bob, "").want(t, http.StatusNotFound)

	// DELETE honours If-Match when present.
	e.do("DELETE", path, e.alice, "", "If-Match", `"1"`).want(t, http.StatusPreconditionFailed)
	e.do("DELETE", path, e.alice, "", "If-Match", `"4"`).want(t, http.StatusNoContent)
	e.do("GET", path, e.alice, "").want(t, http.StatusNotFound)
	e.do("DELETE", path, e.alice, "").want(t, http.StatusNotFound)
	if l, tag := list(); len(l.Contacts) != 0 || tag == tag1 {
		t.Errorf("after delete: %d contacts, ETag %q", len(l.Contacts), tag)
	}

	// Unconditional DELETE.
	r = e.do("POST", PathContacts, e.alice, bobJSON).want(t, http.StatusCreated)
	r.json(t, &c)
	e.do("DELETE", PathContacts+"/"+c.ID, e.alice, "").want(t, http.StatusNoContent)
}

// Two devices edit the same contact from the same version: exactly one
// wins, the other is told, nothing is lost silently.
func TestNoLostUpdate(t *testing.T) {
	e := newEnv(t)
	var c contactJSON
	e.do("POST", PathContacts, e.alice, bobJSON).want(t, http.StatusCreated).json(t, &c)
	path := PathContacts + "/" + c.ID
	const n = 8
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := strings.Replace(bobJSON, "ASL, mornings", fmt.Sprintf("edit %d", i), 1)
			req, _ := http.NewRequest("PUT", e.base+path, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+e.alice)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("If-Match", `"1"`)
			res, err := e.client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			codes[i] = res.StatusCode
		})
	}
	wg.Wait()
	won := 0
	for i, code := range codes {
		switch code {
		case 200:
			won++
		case http.StatusPreconditionFailed:
		default:
			t.Errorf("writer %d: status %d", i, code)
		}
	}
	if won != 1 {
		t.Errorf("%d writers won from version 1, want exactly 1 (codes %v)", won, codes)
	}
	var got contactJSON
	e.do("GET", path, e.alice, "").want(t, 200).json(t, &got)
	if got.Version != 2 {
		t.Errorf("version %d after one winning write, want 2", got.Version)
	}
}

func TestContactErrors(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxContacts = 2; c.MaxBody = 2048 })
	tests := []struct {
		name, method, path, body string
		hdr                      []string
		code                     int
		errCode, msg             string
	}{
		{"malformed json", "POST", PathContacts, `{"name":`, nil, 400, "invalid_json", "the JSON body ends too early; send a complete object"},
		{"syntax", "POST", PathContacts, `{"name" "x"}`, nil, 400, "invalid_json", "malformed JSON at byte 9: invalid character '\"' after object key"},
		{"unknown field", "POST", PathContacts, `{"name":"x","numbr":"2025550123"}`, nil, 400, "unknown_field", ""},
		{"wrong type", "POST", PathContacts, `{"name":"x","favorite":"yes"}`, nil, 400, "invalid_field", `field "favorite" must be a boolean, not a JSON string`},
		{"two objects", "POST", PathContacts, `{"name":"x"}{}`, nil, 400, "invalid_json", ""},
		{"array", "POST", PathContacts, `[]`, nil, 400, "invalid_json", ""},
		{"empty", "POST", PathContacts, ` `, nil, 400, "empty_body", ""},
		{"content type", "POST", PathContacts, `{"name":"x"}`, []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type", ""},
		{"charset", "POST", PathContacts, `{"name":"x"}`, []string{"Content-Type", "application/json; charset=latin1"}, 415, "unsupported_media_type", ""},
		{"too large", "POST", PathContacts, `{"note":"` + strings.Repeat("x", 4000) + `"}`, nil, 413, "body_too_large", "the request body is larger than 2048 bytes"},
		{"invalid", "POST", PathContacts, `{"name":"","number":"555-1234","phones":[{"type":"fax","number":"2025550123"}]}`, nil, 422, "invalid_contact",
			`name: required; number: "555-1234" is not a 10-digit NANP number (2025550123) or a sip: URI; phones[0].type: "fax" is not one of video, cell, text, home, work, voice`},
		{"method", "PATCH", PathContacts + "/x", `{}`, nil, 405, "method_not_allowed", "method PATCH is not allowed here; use DELETE, GET, HEAD, PUT"},
		{"unknown path", "GET", "/api/v2/contacts", "", nil, 404, "not_found", "no such endpoint /api/v2/contacts; see docs/api-mcs.md for the routes"},
		{"empty id", "GET", PathContacts + "/", "", nil, 404, "not_found", ""},
		{"nested id", "GET", PathContacts + "/a/b", "", nil, 404, "not_found", ""},
		{"options", "OPTIONS", PathLicense, "", nil, 405, "method_not_allowed", "method OPTIONS is not allowed here; use POST"},
		{"import json", "POST", PathContactsVCF, `{}`, nil, 415, "unsupported_media_type", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, tt.path, e.alice, tt.body, tt.hdr...).want(t, tt.code)
			got := r.err()
			if got.Code != tt.errCode || (tt.msg != "" && got.Message != tt.msg) {
				t.Errorf("error %+v, want code %q message %q", got, tt.errCode, tt.msg)
			}
		})
	}
	r := e.do("POST", PathContacts, e.alice, `{"name":"","number":"x"}`).want(t, 422)
	if d := cmp.Diff([]fieldJSON{{"name", "required"}, {"number", `"x" is not a 10-digit NANP number (2025550123) or a sip: URI`}}, r.err().Fields); d != "" {
		t.Errorf("fields (-want +got):\n%s", d)
	}

	// The book's limit.
	e.do("POST", PathContacts, e.alice, `{"name":"a","number":"2025550101","uid":"u1"}`).want(t, 201)
	r = e.do("POST", PathContacts, e.alice, `{"name":"b","number":"2025550102","uid":"u1"}`).want(t, 409)
	if r.err().Code != "uid_taken" {
		t.Errorf("duplicate uid: %+v", r.err())
	}
	e.do("POST", PathContacts, e.alice, `{"name":"b","number":"2025550102"}`).want(t, 201)
	r = e.do("POST", PathContacts, e.alice, `{"name":"c","number":"2025550103"}`).want(t, 409)
	if got := r.err(); got.Code != "book_full" || got.Message != "address book full (2 contacts); delete some before adding more" {
		t.Errorf("full: %+v", got)
	}
}

func TestVCardRoundTrip(t *testing.T) {
	e := newEnv(t)
	for _, body := range []string{
		bobJSON,
		`{"name":"Ana María O'Neil","given_name":"Ana María","family_name":"O'Neil; Jr","number":"sip:ana@vrs.example.org",
		  "phones":[{"type":"cell","number":"+44 20 7946 0000"},{"type":"video","number":"2025550177"},{"type":"text","number":"2025550178"}],
		  "organization":"Acme, Inc.; Sales","note":"line 1\nline 2, with comma \\ and backslash 🎉","email":"ana@example.org"}`,
		`{"name":"Minimal","number":"2125550123"}`,
	} {
		e.do("POST", PathContacts, e.alice, body).want(t, http.StatusCreated)
	}
	var alice listJSON
	e.do("GET", PathContacts, e.alice, "").want(t, 200).json(t, &alice)

	r := e.do("GET", PathContactsVCF, e.alice, "").want(t, 200)
	if ct := r.Header.Get("Content-Type"); ct != "text/vcard; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	vcf := string(r.body)
	if n := strings.Count(vcf, "BEGIN:VCARD\r\nVERSION:4.0\r\n"); n != 3 {
		t.Errorf("%d vCard 4.0 cards in export:\n%s", n, vcf)
	}
	e.do("GET", PathContactsVCF, e.alice, "", "If-None-Match", r.Header.Get("ETag")).want(t, http.StatusNotModified)

	// Import into Bob's empty book: the same contacts.
	imp := func(body string) importJSON {
		var res importJSON
		e.do("POST", PathContactsVCF, e.bob, body, "Content-Type", "text/vcard").want(t, 200).json(t, &res)
		return res
	}
	if got := imp(vcf); got != (importJSON{Created: 3}) {
		t.Errorf("first import: %+v", got)
	}
	var bob listJSON
	e.do("GET", PathContacts, e.bob, "").want(t, 200).json(t, &bob)
	byName := cmpopts.SortSlices(func(a, b contactJSON) bool { return a.Name < b.Name })
	if d := cmp.Diff(alice.Contacts, bob.Contacts, byName, cmpopts.IgnoreFields(contactJSON{}, "ID", "Version", "UpdatedAt")); d != "" {
		t.Errorf("export -> import changed contacts (-alice +bob):\n%s", d)
	}

	// Again: merged by UID, nothing changes; then an edited card updates.
	if got := imp(vcf); got != (importJSON{Unchanged: 3}) {
		t.Errorf("second import: %+v", got)
	}
	if got := imp(strings.Replace(vcf, "FN:Minimal", "FN:Minimal Renamed", 1)); got != (importJSON{Updated: 1, Unchanged: 2}) {
		t.Errorf("edited import: %+v", got)
	}
}

func TestImportErrors(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxContacts = 3 })
	card := func(lines ...string) string {
		return "BEGIN:VCARD\r\nVERSION:4.0\r\n" + strings.Join(lines, "\r\n") + "\r\nEND:VCARD\r\n"
	}
	good := card("FN:Good", "TEL:2025550111")
	tests := []struct {
		name, body string
		code       int
		want       errorJSON
	}{
		{"not vcard", "hello\r\n", 400, errorJSON{Code: "invalid_vcard", Line: 1,
			Message: `vcard line 1: vcard syntax error: "hello" has no ':'`}},
		{"missing end", good + "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x\r\n", 400, errorJSON{Code: "invalid_vcard", Card: 2, Line: 6,
			Message: "vcard card 2, line 6: vcard syntax error: END:VCARD missing"}},
		{"version 2.1", "BEGIN:VCARD\r\nVERSION:2.1\r\nFN:x\r\nEND:VCARD\r\n", 400, errorJSON{Code: "invalid_vcard", Card: 1, Line: 2, Property: "VERSION",
			Message: `vcard card 1, line 2: VERSION: vcard syntax error: "2.1" not supported, want 3.0 or 4.0`}},
		{"bad tel in second card", good + card("FN:Bad", "TEL:2025550123", "TEL;TYPE=cell:not a number"), 422, errorJSON{Code: "invalid_vcard", Card: 2, Line: 10, Property: "TEL",
			Message: `vcard card 2, line 10: TEL: "not a number" is not a 10-digit NANP number, an E.164 number (+442079460000) or a sip: URI`}},
		{"too many", good + good + good + good, 413, errorJSON{Code: "too_many_cards", Message: "the file holds more than 3 cards, the most one address book holds"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("POST", PathContactsVCF, e.alice, tt.body, "Content-Type", "text/vcard").want(t, tt.code)
			if d := cmp.Diff(tt.want, r.err()); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
	// All or nothing: none of the failed imports wrote anything.
	var l listJSON
	e.do("GET", PathContacts, e.alice, "").want(t, 200).json(t, &l)
	if len(l.Contacts) != 0 || l.Rev != 0 {
		t.Errorf("failed imports wrote %d contacts (rev %d)", len(l.Contacts), l.Rev)
	}
	// Over the book's limit counting what is there: refused before writing.
	e.do("POST", PathContacts, e.alice, `{"name":"a","number":"2025550101"}`).want(t, 201)
	r := e.do("POST", PathContactsVCF, e.alice, good+card("FN:B", "TEL:2025550112")+card("FN:C", "TEL:2025550113"), "Content-Type", "text/vcard").want(t, 409)
	if got := r.err(); got.Code != "book_full" {
		t.Errorf("%+v", got)
	}
	e.do("GET", PathContacts, e.alice, "").want(t, 200).json(t, &l)
	if len(l.Contacts) != 1 {
		t.Errorf("refused import wrote: %d contacts", len(l.Contacts))
	}
	e.do("POST", PathContactsVCF, e.alice, strings.Repeat("x", int(e.cfg.MaxBody)+1), "Content-Type", "text/vcard").want(t, 413)
}

func TestNew(t *testing.T) {
	st := teststore.SQLite(t)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := New(Config{}, Deps{}); err == nil ||
		!strings.Contains(err.Error(), "deps.Store is required") || !strings.Contains(err.Error(), "LicenseTTL 0s: must be at least 1m") {
		t.Errorf("empty config: %v", err)
	}
	if _, err := New(testConfig(), Deps{Store: st, LicenseKey: key}); err != nil {
		t.Errorf("test config: %v", err)
	}
}

func newHandler(t testing.TB) (*Service, string) {
	t.Helper()
	st := teststore.SQLite(t)
	_, tok, _ := teststore.Provision(t, st, "fuzz", "2025550100")
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	svc, err := New(testConfig(), Deps{Store: st, LicenseKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return svc, tok
}

// FuzzContactJSON posts arbitrary bodies: the answer is never a 5xx and
// never a panic, and whatever is accepted reads back valid.
func FuzzContactJSON(f *testing.F) {
	for _, s := range []string{
		bobJSON, `{}`, `null`, `{"name":"x","number":"2025550123","phones":null}`,
		`{"name":"x","number":"sip:a@b","phones":[{"type":"cell","number":"+442079460000"}],"favorite":true,"version":9,"id":"q","updated_at":"2024-01-01T00:00:00Z"}`,
		`{"name":"\u0000"}`, `{"note":"` + strings.Repeat("é", 3000) + `"}`, `[1,2]`, `{"phones":[{}]}`, "\xff",
	} {
		f.Add(s, "application/json")
	}
	f.Add("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\nTEL:2025550123\r\nEND:VCARD\r\n", "text/vcard")
	svc, tok := newHandler(f)
	f.Fuzz(func(t *testing.T, body, ctype string) {
		path := PathContacts
		if strings.HasPrefix(ctype, "text/") {
			path = PathContactsVCF
		}
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", ctype)
		rec := httptest.NewRecorder()
		svc.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code == http.StatusCreated {
			var c contactJSON
			if err := json.Unmarshal(rec.Body.Bytes(), &c); err != nil {
				t.Fatal(err)
			}
			stored, err := svc.store.Contact(context.Background(), "2025550100", c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := addressbook.Validate(stored); err != nil {
				t.Fatalf("accepted %q, stored invalid: %v", body, err)
			}
		}
		// Keep the book small so creates keep being exercised.
		cs, _ := svc.store.ListContacts(context.Background(), "2025550100")
		for _, c := range cs {
			svc.store.DeleteContact(context.Background(), "2025550100", c.ID, 0)
		}
	})
}
