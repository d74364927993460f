package mcsapi

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/z5vrs/z5/internal/profile"
	"github.com/z5vrs/z5/internal/rue"
)

const davBook = "/dav/addressbooks/2025550100/contacts/"

// davMS is a multistatus as these tests read it: per href, the status and
// the getetag and address-data properties.
type davMS struct {
	Responses []struct {
		Href     string `xml:"DAV: href"`
		Status   string `xml:"DAV: status"`
		Propstat []struct {
			Prop struct {
				ETag        string `xml:"DAV: getetag"`
				AddressData string `xml:"urn:ietf:params:xml:ns:carddav address-data"`
			} `xml:"DAV: prop"`
		} `xml:"DAV: propstat"`
	} `xml:"DAV: response"`
	SyncToken string `xml:"DAV: sync-token"`
}

type davItem struct{ status, etag, data string }

func (e *env) davSync(t *testing.T, token string) (map[string]davItem, string) {
	t.Helper()
	body := `<?xml version="1.0" encoding="utf-8" ?>
<D:sync-collection xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">
  <D:sync-token>` + token + `</D:sync-token>
  <D:sync-level>1</D:sync-level>
  <D:prop><D:getetag/><C:address-data/></D:prop>
</D:sync-collection>`
	r := e.do("REPORT", davBook, e.alice, body, "Content-Type", "application/xml").want(t, http.StatusMultiStatus)
	var m davMS
	if err := xml.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("%v\n%s", err, r.body)
	}
	out := map[string]davItem{}
	for _, rs := range m.Responses {
		it := davItem{status: rs.Status}
		for _, p := range rs.Propstat {
			it.etag += p.Prop.ETag
			it.data += p.Prop.AddressData
		}
		out[strings.TrimPrefix(rs.Href, davBook)] = it
	}
	return out, m.SyncToken
}

// One book, two doors: what the JSON API writes, CardDAV reads and syncs,
// and the other way round, with one ETag per version in both, so neither
// side can overwrite a change it has not seen.
func TestCardDAVAndJSON(t *testing.T) {
	e := newEnv(t)
	var ann contactJSON
	e.do("POST", PathContacts, e.alice, `{"name":"Ann Lee","number":"2025550111","note":"from JSON"}`).want(t, 201).json(t, &ann)

	items, tok := e.davSync(t, "")
	got, ok := items[ann.ID]
	if !ok || got.etag != `"1"` || !strings.Contains(got.data, "FN:Ann Lee\r\n") || !strings.Contains(got.data, "NOTE:from JSON\r\n") {
		t.Fatalf("JSON contact seen over CardDAV: %+v (all: %v)", got, items)
	}

	// CardDAV creates; the JSON API lists it under the resource's name.
	card := "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:urn:uuid:dav-1\r\nFN:Dav Made\r\nTEL;TYPE=VIDEO:+1 312 555 0100\r\nEND:VCARD\r\n"
	e.do("PUT", davBook+"dav-1.vcf", e.alice, card, "Content-Type", "text/vcard", "If-None-Match", "*").want(t, 201)
	var dav contactJSON
	r := e.do("GET", PathContacts+"/dav-1.vcf", e.alice, "").want(t, 200)
	r.json(t, &dav)
	if dav.Name != "Dav Made" || dav.Number != "3125550100" || dav.UID != "urn:uuid:dav-1" || r.Header.Get("ETag") != `"1"` {
		t.Errorf("CardDAV contact over JSON: %+v ETag %s", dav, r.Header.Get("ETag"))
	}

	// JSON updates Ann; CardDAV sees the new version, and its stale
	// If-Match loses.
	e.do("PUT", PathContacts+"/"+ann.ID, e.alice, `{"name":"Ann Updated","number":"2025550111"}`, "If-Match", `"1"`).want(t, 200)
	stale := strings.Replace(got.data, "FN:Ann Lee", "FN:Ann Overwritten", 1)
	e.do("PUT", davBook+ann.ID, e.alice, stale, "Content-Type", "text/vcard", "If-Match", `"1"`).want(t, 412)
	items, tok2 := e.davSync(t, tok)
	if it := items[ann.ID]; it.etag != `"2"` || !strings.Contains(it.data, "FN:Ann Updated\r\n") {
		t.Errorf("JSON update over CardDAV: %+v", it)
	}
	// And the other way: CardDAV updates, the JSON client's If-Match loses.
	e.do("PUT", davBook+"dav-1.vcf", e.alice, strings.Replace(card, "Dav Made", "Dav Edited", 1), "Content-Type", "text/vcard", "If-Match", `"1"`).want(t, 204)
	e.do("PUT", PathContacts+"/dav-1.vcf", e.alice, `{"name":"JSON Overwrite","number":"3125550100"}`, "If-Match", `"1"`).want(t, 412)
	e.do("GET", PathContacts+"/dav-1.vcf", e.alice, "").want(t, 200).json(t, &dav)
	if dav.Name != "Dav Edited" || dav.Version != 2 {
		t.Errorf("after CardDAV update: %+v", dav)
	}

	// Deletions both ways.
	e.do("DELETE", davBook+"dav-1.vcf", e.alice, "", "If-Match", `"2"`).want(t, 204)
	e.do("GET", PathContacts+"/dav-1.vcf", e.alice, "").want(t, 404)
	e.do("DELETE", PathContacts+"/"+ann.ID, e.alice, "").want(t, 204)
	items, _ = e.davSync(t, tok2)
	if items[ann.ID].status != "HTTP/1.1 404 Not Found" || items["dav-1.vcf"].status != "HTTP/1.1 404 Not Found" {
		t.Errorf("deletions over CardDAV: %+v", items)
	}

	// Bob's token does not open Alice's book, and the well-known URI
	// points at the service.
	e.do("PROPFIND", davBook, e.bob, "", "Depth", "0").want(t, 403)
	// (The client follows the redirect, and is then asked to log in.)
	r = e.do("PROPFIND", "/.well-known/carddav", "", "")
	if r.Request.URL.Path != "/dav/" || r.StatusCode != http.StatusUnauthorized {
		t.Errorf("well-known: ended at %s with %d", r.Request.URL.Path, r.StatusCode)
	}
	e.do("PROPFIND", "/", e.alice, "", "Depth", "0").want(t, http.StatusMultiStatus)
	e.do("GET", "/", e.alice, "").want(t, 404)
}

func TestXCardAPI(t *testing.T) {
	e := newEnv(t)
	for _, c := range []string{
		`{"name":"Ann <Lee> & Co","given_name":"Ann","family_name":"Lee","number":"2025550111","phones":[{"type":"cell","number":"+442079460000"}],"email":"ann@example.com","organization":"Acme; Sales","note":"line 1\nline 2","favorite":true}`,
		`{"name":"Bob","number":"sip:bob@example.com"}`,
	} {
		e.do("POST", PathContacts, e.alice, c).want(t, 201)
	}
	r := e.do("GET", PathContactsXML, e.alice, "").want(t, 200)
	if ct := r.Header.Get("Content-Type"); ct != "application/vcard+xml; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if !strings.Contains(string(r.body), `<vcards xmlns="urn:ietf:params:xml:ns:vcard-4.0">`) || strings.Count(string(r.body), "<vcard>") != 2 {
		t.Errorf("export:\n%s", r.body)
	}
	e.do("GET", PathContactsXML, e.alice, "", "If-None-Match", r.Header.Get("ETag")).want(t, http.StatusNotModified)

	imp := func(body, ctype string) importJSON {
		var res importJSON
		e.do("POST", PathContactsXML, e.bob, body, "Content-Type", ctype).want(t, 200).json(t, &res)
		return res
	}
	if got := imp(string(r.body), "application/vcard+xml"); got != (importJSON{Created: 2}) {
		t.Errorf("import: %+v", got)
	}
	var alice, bob listJSON
	e.do("GET", PathContacts, e.alice, "").want(t, 200).json(t, &alice)
	e.do("GET", PathContacts, e.bob, "").want(t, 200).json(t, &bob)
	byName := cmpopts.SortSlices(func(a, b contactJSON) bool { return a.Name < b.Name })
	if d := cmp.Diff(alice.Contacts, bob.Contacts, byName, cmpopts.IgnoreFields(contactJSON{}, "ID", "Version", "UpdatedAt")); d != "" {
		t.Errorf("xCard export -> import (-alice +bob):\n%s", d)
	}
	if got := imp(string(r.body), "application/xml"); got != (importJSON{Unchanged: 2}) {
		t.Errorf("second import: %+v", got)
	}

	// All or nothing: a bad card anywhere writes nothing.
	bad := strings.Replace(string(r.body), "<text>Bob</text>", "<text>Bob</text></fn><fn><text>x</text>", 1)
	bad = strings.Replace(bad, "sip:bob@example.com", "not a number", 1)
	res := e.do("POST", PathContactsXML, e.bob, bad, "Content-Type", "application/vcard+xml").want(t, 422)
	if got := res.err(); got.Code != "invalid_vcard" || got.Card == 0 || got.Line == 0 || got.Property != "TEL" {
		t.Errorf("bad card: %+v", got)
	}
	e.do("GET", PathContacts, e.bob, "").want(t, 200).json(t, &bob)
	if len(bob.Contacts) != 2 {
		t.Errorf("a refused import changed the book: %d contacts", len(bob.Contacts))
	}
	res = e.do("POST", PathContactsXML, e.alice, "<vcards>", "Content-Type", "application/vcard+xml").want(t, 400)
	if got := res.err(); got.Code != "invalid_vcard" || got.Line != 1 {
		t.Errorf("bad xml: %+v", got)
	}
	e.do("POST", PathContactsXML, e.alice, string(r.body), "Content-Type", "text/vcard").want(t, 415)
	e.do("DELETE", PathContactsXML, e.alice, "").want(t, 405)
}

func TestRUEConfig(t *testing.T) {
	// The dev stack's names and ports, as internal/provider puts them in
	// the profile.
	e := newEnv(t, func(c *Config) {
		c.RUE = rue.ForProfile(&profile.Profile{
			Names: profile.Names{LBMCS: "lb.mcs.z5.test", SIPDomain: "mcs.z5.test", MCS: []string{"mcs1.mcs.z5.test"}},
			Ports: profile.Ports{MCSHTTPS: 9443, SIP: 5060},
		})
		c.Provider = "Z5 dev"
	})
	r := e.do("GET", rue.PathConfig, "", "").want(t, 200)
	anon, err := rue.Parse(r.body)
	if err != nil {
		t.Fatalf("%v\n%s", err, r.body)
	}
	if anon.PhoneNumber != "" || anon.ProviderDomain != "mcs.z5.test" || !slices.Contains(anon.OutboundProxies, "sip:mcs1.mcs.z5.test:5060;transport=tcp;lr") {
		t.Errorf("anonymous config: %+v", anon)
	}
	if r.Header.Get("Vary") != "Authorization" || !strings.HasPrefix(r.Header.Get("Cache-Control"), "public, max-age=86400") {
		t.Errorf("headers %v", r.Header)
	}

	r = e.do("GET", rue.PathConfig, e.alice, "").want(t, 200)
	mine, err := rue.Parse(r.body)
	if err != nil {
		t.Fatal(err)
	}
	if mine.PhoneNumber != "+12025550100" || mine.DisplayName != "alice" || mine.CardDAV != "2025550100@lb.mcs.z5.test:9443" ||
		mine.Contacts != "https://lb.mcs.z5.test:9443"+PathContactsXML || !strings.HasPrefix(r.Header.Get("Cache-Control"), "private") {
		t.Errorf("subscriber config: %+v", mine)
	}
	e.do("GET", rue.PathConfig, "not-a-token", "").want(t, 401)

	var list struct {
		Providers []struct {
			Name       string `json:"name"`
			EntryPoint string `json:"providerEntryPoint"`
		} `json:"providers"`
	}
	if err := json.Unmarshal(e.do("GET", rue.PathProviders, "", "").want(t, 200).body, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Providers) != 1 || list.Providers[0].Name != "Z5 dev" || list.Providers[0].EntryPoint != "https://lb.mcs.z5.test:9443"+rue.PathConfig {
		t.Errorf("providers %+v", list)
	}

	// Without a configuration, the routes say so.
	plain := newEnv(t)
	plain.do("GET", rue.PathConfig, "", "").want(t, 404)
}

// vdirsyncer, a standard CardDAV client from Debian, discovers the book
// from the server's root and syncs it both ways with the JSON API.
func TestVdirsyncer(t *testing.T) {
	bin, err := exec.LookPath("vdirsyncer")
	if err != nil {
		t.Skip("vdirsyncer not installed (Debian package vdirsyncer); skipping the real-client sync")
	}
	e := newEnv(t)
	var ann, bob contactJSON
	e.do("POST", PathContacts, e.alice, `{"name":"Ann Lee","number":"2025550111"}`).want(t, 201).json(t, &ann)
	e.do("POST", PathContacts, e.alice, `{"name":"Bob Ray","number":"2025550112","note":"to delete"}`).want(t, 201).json(t, &bob)

	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, e.ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config")
	conf := `[general]
status_path = "` + filepath.Join(dir, "status") + `/"

[pair book]
a = "book_local"
b = "book_remote"
collections = ["from b"]
conflict_resolution = "b wins"

[storage book_local]
type = "filesystem"
path = "` + filepath.Join(dir, "local") + `/"
fileext = ".vcf"

[storage book_remote]
type = "carddav"
url = "` + e.base + `/"
username = "2025550100"
password = "` + e.alice + `"
verify = "` + ca + `"
`
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"-c", cfg}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+dir, "LC_ALL=C.UTF-8", "LANG=C.UTF-8")
		cmd.Stdin = strings.NewReader("y\ny\n")
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("vdirsyncer %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	t.Log(run("discover", "book"))
	t.Log(run("sync"))

	local := filepath.Join(dir, "local", "contacts")
	files := func() map[string]string {
		out := map[string]string{}
		ents, err := os.ReadDir(local)
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range ents {
			b, err := os.ReadFile(filepath.Join(local, en.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out[en.Name()] = string(b)
		}
		return out
	}
	find := func(fs map[string]string, s string) string {
		for name, body := range fs {
			if strings.Contains(body, s) {
				return name
			}
		}
		return ""
	}
	fs := files()
	annFile, bobFile := find(fs, "FN:Ann Lee"), find(fs, "FN:Bob Ray")
	if len(fs) != 2 || annFile == "" || bobFile == "" {
		t.Fatalf("after the first sync, local holds %v", fs)
	}

	// Local edits: a new card, Ann renamed, Bob deleted.
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(local, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("new-one.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:new-one\r\nFN:New One\r\nTEL;TYPE=VIDEO:2025550113\r\nEND:VCARD\r\n")
	write(annFile, strings.Replace(fs[annFile], "FN:Ann Lee", "FN:Ann Local", 1))
	if err := os.Remove(filepath.Join(local, bobFile)); err != nil {
		t.Fatal(err)
	}
	run("sync")

	var list listJSON
	e.do("GET", PathContacts, e.alice, "").want(t, 200).json(t, &list)
	names := map[string]contactJSON{}
	for _, c := range list.Contacts {
		names[c.Name] = c
	}
	if _, ok := names["New One"]; !ok || len(names) != 2 || names["Ann Local"].ID != ann.ID {
		t.Fatalf("after pushing local edits, the JSON API lists %+v", list.Contacts)
	}

	// Server edits through the JSON API reach the local copy.
	n := names["New One"]
	e.do("PUT", PathContacts+"/"+n.ID, e.alice, `{"name":"New One Renamed","number":"2025550113"}`, "If-Match", `"1"`).want(t, 200)
	e.do("DELETE", PathContacts+"/"+ann.ID, e.alice, "").want(t, 204)
	e.do("POST", PathContacts, e.alice, `{"name":"Server Side","number":"2025550114"}`).want(t, 201)
	run("sync")
	fs = files()
	if len(fs) != 2 || find(fs, "FN:New One Renamed") == "" || find(fs, "FN:Server Side") == "" || find(fs, "Ann") != "" {
		t.Errorf("after pulling server edits, local holds %v", fs)
	}
}
