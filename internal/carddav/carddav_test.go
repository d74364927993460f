package carddav

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/z5vrs/z5/internal/addressbook"
	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/testenv/teststore"
)

const (
	book   = "/dav/addressbooks/2025550100/contacts/"
	propNS = `xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav" xmlns:CS="http://calendarserver.org/ns/"`
)

// RFC 6764 and RFC 6352 section 7: from the well-known URI to the book.
func TestDiscovery(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/.well-known/carddav", "", "Authorization", "")
	if r.StatusCode != http.StatusMovedPermanently || r.Header.Get("Location") != "/dav/" {
		t.Fatalf("well-known: %d Location %q", r.StatusCode, r.Header.Get("Location"))
	}

	principal := `<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:current-user-principal/><D:resourcetype/></D:prop></D:propfind>`
	for _, p := range []string{"/dav/", "/dav"} {
		m := parseMS(t, e.do("PROPFIND", p, principal, "Depth", "0"))
		got := m.props[m.order[0]]["{DAV:}current-user-principal"]
		if got.status != ok200 || !strings.Contains(got.inner, "/dav/principals/2025550100/") {
			t.Errorf("PROPFIND %s current-user-principal: %+v", p, got)
		}
	}

	m := parseMS(t, e.do("PROPFIND", "/dav/principals/2025550100/", `<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">
  <D:prop><C:addressbook-home-set/><D:principal-URL/><D:displayname/><D:resourcetype/></D:prop></D:propfind>`, "Depth", "0"))
	ps := m.props["/dav/principals/2025550100/"]
	if !strings.Contains(ps["{urn:ietf:params:xml:ns:carddav}addressbook-home-set"].inner, "/dav/addressbooks/2025550100/") {
		t.Errorf("addressbook-home-set: %+v", ps)
	}
	if !strings.Contains(ps["{DAV:}resourcetype"].inner, "principal") {
		t.Errorf("principal resourcetype: %+v", ps["{DAV:}resourcetype"])
	}

	// The home lists the one book.
	m = parseMS(t, e.do("PROPFIND", "/dav/addressbooks/2025550100/", `<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:displayname/></D:prop></D:propfind>`, "Depth", "1"))
	if d := cmp.Diff([]string{"/dav/addressbooks/2025550100/", book}, m.order); d != "" {
		t.Errorf("home Depth 1 (-want +got):\n%s", d)
	}
	if rt := m.props[book]["{DAV:}resourcetype"].inner; !strings.Contains(rt, "addressbook") || !strings.Contains(rt, "collection") {
		t.Errorf("book resourcetype %q", rt)
	}

	// OPTIONS needs no login and names the addressbook class.
	r = e.do("OPTIONS", book, "", "Authorization", "").want(t, 200)
	if dav := r.Header.Get("DAV"); !strings.Contains(dav, "addressbook") {
		t.Errorf("DAV: %q", dav)
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	expired := teststore.NewSession(t, e.st, store.Session{Kind: store.SessionMCS, CustomerID: e.aliceCust, Number: alice, DeviceID: e.aliceDev.ID, ExpiresAt: time.Now().Add(-time.Minute)})
	tests := []struct {
		name, auth, path string
		code             int
	}{
		{"none", "", book, 401},
		{"basic number", basic(alice, e.alice), book, 207},
		{"basic sip user", basic(alice+"-1", e.alice), book, 207},
		{"bearer", "Bearer " + e.alice, book, 207},
		{"wrong user", basic(bob, e.alice), book, 401},
		{"wrong password", basic(alice, "nope"), book, 401},
		{"zdial token", basic(alice, e.zdialTok), book, 401},
		{"expired", basic(alice, expired), book, 401},
		{"garbage", "Basic !!!", book, 401},
		{"digest", `Digest username="2025550100"`, book, 401},
		{"other's book", basic(bob, e.bob), book, 403},
		{"other's principal", basic(bob, e.bob), "/dav/principals/2025550100/", 403},
		{"unknown path", basic(alice, e.alice), "/dav/calendars/2025550100/", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("PROPFIND", tt.path, "", "Authorization", tt.auth, "Depth", "0")
			if r.StatusCode != tt.code {
				t.Fatalf("status %d, want %d: %s", r.StatusCode, tt.code, r.body)
			}
			if tt.code == 401 {
				got := r.Header.Values("WWW-Authenticate")
				want := []string{`Basic realm="Z5 address book", charset="UTF-8"`, `Bearer realm="mcs"`}
				if d := cmp.Diff(want, got); d != "" {
					t.Errorf("WWW-Authenticate (-want +got):\n%s", d)
				}
			}
		})
	}
	// Logging out of ZDial revokes the MCS token, and CardDAV with it.
	tok := teststore.NewSession(t, e.st, store.Session{Kind: store.SessionMCS, CustomerID: e.aliceCust, Number: alice, DeviceID: e.aliceDev.ID, ExpiresAt: time.Now().Add(time.Hour)})
	e.do("PROPFIND", book, "", "Authorization", basic(alice, tok), "Depth", "0").want(t, 207)
	if err := e.st.RevokeSession(ctx, store.TokenHash(tok), time.Now()); err != nil {
		t.Fatal(err)
	}
	e.do("PROPFIND", book, "", "Authorization", basic(alice, tok), "Depth", "0").want(t, 401)
}

// The address book's properties, as DAVx5 and Apple Contacts ask for them.
func TestPropfindBook(t *testing.T) {
	e := newEnv(t)
	body := `<?xml version="1.0" encoding="utf-8" ?>
<D:propfind ` + propNS + `>
  <D:prop>
    <D:resourcetype/>
    <D:displayname/>
    <C:supported-address-data/>
    <C:max-resource-size/>
    <D:sync-token/>
    <CS:getctag/>
    <D:supported-report-set/>
    <D:current-user-privilege-set/>
    <D:quota-available-bytes/>
  </D:prop>
</D:propfind>`
	m := parseMS(t, e.do("PROPFIND", book, body, "Depth", "0"))
	ps := m.props[book]
	want := map[string]string{
		"{DAV:}resourcetype": `<D:collection/><C:addressbook/>`,
		"{DAV:}displayname":  `Contacts`,
		"{urn:ietf:params:xml:ns:carddav}supported-address-data": `<C:address-data-type content-type="text/vcard" version="3.0"/><C:address-data-type content-type="text/vcard" version="4.0"/>`,
		"{urn:ietf:params:xml:ns:carddav}max-resource-size":      `65536`,
		"{DAV:}sync-token":                       `http://z5.invalid/sync/2025550100/0`,
		"{http://calendarserver.org/ns/}getctag": `0`,
		"{DAV:}supported-report-set":             `<D:supported-report><D:report><C:addressbook-query/></D:report></D:supported-report><D:supported-report><D:report><C:addressbook-multiget/></D:report></D:supported-report><D:supported-report><D:report><D:sync-collection/></D:report></D:supported-report>`,
		"{DAV:}current-user-privilege-set":       `<D:privilege><D:read/></D:privilege><D:privilege><D:read-current-user-privilege-set/></D:privilege><D:privilege><D:write/></D:privilege><D:privilege><D:write-content/></D:privilege><D:privilege><D:bind/></D:privilege><D:privilege><D:unbind/></D:privilege>`,
	}
	for k, v := range want {
		if ps[k].status != ok200 || ps[k].inner != v {
			t.Errorf("%s: %s %q, want %q", k, ps[k].status, ps[k].inner, v)
		}
	}
	if q := ps["{DAV:}quota-available-bytes"]; q.status != nf404 {
		t.Errorf("unknown property: %+v, want 404", q)
	}

	// Writes through any API move the sync token and CTag.
	e.putCard(book+"a.vcf", vcf("a", "Ann", "2025550111")).want(t, 201)
	m = parseMS(t, e.do("PROPFIND", book, body, "Depth", "0"))
	if got := m.props[book]["{DAV:}sync-token"].inner; got != "http://z5.invalid/sync/2025550100/1" {
		t.Errorf("sync-token after a write: %q", got)
	}

	// Depth 1 lists the contacts with ETags; address-data is REPORT-only.
	m = parseMS(t, e.do("PROPFIND", book, `<D:propfind `+propNS+`><D:prop><D:getetag/><D:getcontenttype/><C:address-data/></D:prop></D:propfind>`, "Depth", "1"))
	if d := cmp.Diff([]string{book, book + "a.vcf"}, m.order); d != "" {
		t.Fatalf("Depth 1 (-want +got):\n%s", d)
	}
	obj := m.props[book+"a.vcf"]
	if obj["{DAV:}getetag"].text != `"1"` || obj["{DAV:}getcontenttype"].text != "text/vcard; charset=utf-8" {
		t.Errorf("object props: %+v", obj)
	}
	if obj["{urn:ietf:params:xml:ns:carddav}address-data"].status != nf404 {
		t.Errorf("address-data in PROPFIND: %+v", obj["{urn:ietf:params:xml:ns:carddav}address-data"])
	}

	// An empty body is allprop; propname lists names only.
	m = parseMS(t, e.do("PROPFIND", book+"a.vcf", "", "Depth", "0"))
	if m.props[book+"a.vcf"]["{DAV:}getetag"].text != `"1"` {
		t.Errorf("allprop: %+v", m.props)
	}
	m = parseMS(t, e.do("PROPFIND", book, `<D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>`, "Depth", "0"))
	if p := m.props[book]["{DAV:}sync-token"]; p.status != ok200 || p.inner != "" {
		t.Errorf("propname sync-token: %+v", p)
	}

	for _, bad := range []struct{ body, depth string }{
		{`<D:propfind xmlns:D="DAV:">`, "0"},
		{`<D:prop xmlns:D="DAV:"/>`, "0"},
		{`<!DOCTYPE x [<!ENTITY a "b">]><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>`, "0"},
		{`<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>`, "2"},
		{strings.Repeat("<a>", 40) + strings.Repeat("</a>", 40), "0"},
	} {
		e.do("PROPFIND", book, bad.body, "Depth", bad.depth).want(t, 400)
	}
}

// PUT, GET and DELETE with the preconditions of RFC 9110 section 13: no
// update is lost.
func TestObjectLifecycle(t *testing.T) {
	e := newEnv(t)
	path := book + "6f1c.vcf"
	card := vcf("urn:uuid:6f1c", "Cyrus Daboo", "(202) 555-0123", "EMAIL:cyrus@example.com", "N:Daboo;Cyrus;;;", "PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQ")

	r := e.putCard(path, card, "If-None-Match", "*").want(t, 201)
	if r.Header.Get("ETag") != "" {
		t.Errorf("PUT answered ETag %q though the stored card differs from the sent one", r.Header.Get("ETag"))
	}
	e.putCard(path, card, "If-None-Match", "*").want(t, 412)

	r = e.do("GET", path, "").want(t, 200)
	if r.Header.Get("ETag") != `"1"` || r.Header.Get("Content-Type") != "text/vcard; charset=utf-8" {
		t.Errorf("GET headers: %v", r.Header)
	}
	want3 := "BEGIN:VCARD\r\nVERSION:3.0\r\nPRODID:-//Z5//Z5 address book//EN\r\nUID:urn:uuid:6f1c\r\nFN:Cyrus Daboo\r\nN:Daboo;Cyrus;;;\r\n" +
		"TEL;TYPE=video,pref:+12025550123\r\nEMAIL:cyrus@example.com\r\nREV:"
	if !strings.HasPrefix(r.body, want3) {
		t.Errorf("GET body:\n%s\nwant prefix:\n%s", r.body, want3)
	}
	r = e.do("GET", path, "", "Accept", "text/vcard; version=4.0").want(t, 200)
	if !strings.Contains(r.body, "VERSION:4.0\r\n") || !strings.Contains(r.body, "TEL;PREF=1;TYPE=video;VALUE=uri:tel:+12025550123\r\n") {
		t.Errorf("GET 4.0:\n%s", r.body)
	}
	e.do("GET", path, "", "If-None-Match", `"1"`).want(t, 304)
	e.do("HEAD", path, "").want(t, 200)

	// A stale If-Match loses; the current one wins; replaying it loses.
	edited := strings.Replace(card, "FN:Cyrus Daboo", "FN:Cyrus D.", 1)
	e.putCard(path, edited, "If-Match", `"7"`).want(t, 412)
	e.putCard(path, edited, "If-Match", `"1"`).want(t, 204)
	e.putCard(path, edited, "If-Match", `"1"`).want(t, 412)
	e.putCard(path, edited, "If-Match", `W/"2"`).want(t, 412) // If-Match compares strongly
	r = e.do("GET", path, "").want(t, 200)
	if r.Header.Get("ETag") != `"2"` || !strings.Contains(r.body, "FN:Cyrus D.\r\n") {
		t.Errorf("after update: %s %s", r.Header.Get("ETag"), r.body)
	}

	// Refusals, each with its CardDAV precondition.
	tests := []struct {
		name, path, body, ctype string
		hdr                     []string
		code                    int
		cond                    string
	}{
		{"uid change", path, vcf("urn:uuid:other", "X", "2025550123"), "text/vcard", nil, 409, "no-uid-conflict><D:href>" + path},
		{"uid taken", book + "dup.vcf", vcf("urn:uuid:6f1c", "X", "2025550123"), "text/vcard", nil, 409, "no-uid-conflict><D:href>" + path},
		{"no tel", book + "n.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Only Mail\r\nEMAIL:a@example.com\r\nEND:VCARD\r\n", "text/vcard", nil, 403, "valid-address-data"},
		{"not vcard", book + "n.vcf", "hello", "text/vcard", nil, 403, "valid-address-data"},
		{"two cards", book + "n.vcf", vcf("x1", "A", "2025550123") + vcf("x2", "B", "2025550124"), "text/vcard", nil, 403, "valid-address-data"},
		{"json", book + "n.vcf", `{"name":"x"}`, "application/json", nil, 415, "supported-address-data"},
		{"too large", book + "n.vcf", vcf("x", "A", "2025550123", "NOTE:"+strings.Repeat("x", 70000)), "text/vcard", nil, 413, "max-resource-size"},
		{"bad name", book + "a%20b.vcf", vcf("x", "A", "2025550123"), "text/vcard", nil, 403, ""},
		{"if-match missing", book + "n.vcf", vcf("x", "A", "2025550123"), "text/vcard", []string{"If-Match", `"1"`}, 412, ""},
		{"collection", book, vcf("x", "A", "2025550123"), "text/vcard", nil, 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("PUT", tt.path, tt.body, append([]string{"Content-Type", tt.ctype}, tt.hdr...)...)
			if r.StatusCode != tt.code {
				t.Fatalf("status %d, want %d: %s", r.StatusCode, tt.code, r.body)
			}
			if tt.cond != "" && !strings.Contains(r.body, tt.cond) {
				t.Errorf("body lacks %q:\n%s", tt.cond, r.body)
			}
		})
	}

	e.do("DELETE", path, "", "If-Match", `"1"`).want(t, 412)
	e.do("DELETE", path, "", "If-Match", `"2"`).want(t, 204)
	e.do("GET", path, "").want(t, 404)
	e.do("DELETE", path, "").want(t, 404)
	e.do("DELETE", book, "").want(t, 403)
	e.do("MKCOL", "/dav/addressbooks/2025550100/other/", "").want(t, 404)
	e.do("MKCOL", book, "").want(t, 403)
	e.do("LOCK", path, "").want(t, 405)
}

// RFC 6352 section 8.7 (addressbook-multiget), in the shape of its
// example.
func TestMultiget(t *testing.T) {
	e := newEnv(t)
	e.putCard(book+"a.vcf", vcf("a", "Ann Smith", "2025550111", "NOTE:likes\\, commas;\\n and lines", "ORG:Acme\\; Inc.;Sales")).want(t, 201)
	e.putCard(book+"b.vcf", vcf("b", "Bob", "sip:bob@example.com")).want(t, 201)
	req := `<?xml version="1.0" encoding="utf-8" ?>
<C:addressbook-multiget ` + propNS + `>
  <D:prop>
    <D:getetag/>
    <C:address-data%s/>
  </D:prop>
  <D:href>/dav/addressbooks/2025550100/contacts/a.vcf</D:href>
  <D:href>https://mcs1.mcs.z5.test/dav/addressbooks/2025550100/contacts/b.vcf</D:href>
  <D:href>/dav/addressbooks/2025550100/contacts/gone.vcf</D:href>
  <D:href>/dav/addressbooks/3125550100/contacts/a.vcf</D:href>
</C:addressbook-multiget>`
	m := parseMS(t, e.do("REPORT", book, strings.Replace(req, "%s", "", 1), "Depth", "1"))
	a := m.props[book+"a.vcf"]
	if a["{DAV:}getetag"].text != `"1"` {
		t.Errorf("a getetag: %+v", a)
	}
	wantA := "BEGIN:VCARD\r\nVERSION:3.0\r\nPRODID:-//Z5//Z5 address book//EN\r\nUID:a\r\nFN:Ann Smith\r\nN:;;;;\r\nTEL;TYPE=video,pref:+12025550111\r\nORG:Acme\\; Inc.\\, Sales\r\nNOTE:likes\\, commas;\\n and lines\r\nREV:"
	if got := a["{urn:ietf:params:xml:ns:carddav}address-data"].text; !strings.HasPrefix(got, wantA) {
		t.Errorf("a address-data:\n%q\nwant prefix\n%q", got, wantA)
	}
	b := m.props["https://mcs1.mcs.z5.test/dav/addressbooks/2025550100/contacts/b.vcf"]
	if !strings.Contains(b["{urn:ietf:params:xml:ns:carddav}address-data"].text, "TEL;TYPE=video,pref:sip:bob@example.com\r\n") {
		t.Errorf("b: %+v", b)
	}
	for _, h := range []string{book + "gone.vcf", "/dav/addressbooks/3125550100/contacts/a.vcf"} {
		if m.status[h] != nf404 {
			t.Errorf("%s: status %q, want 404", h, m.status[h])
		}
	}

	// Version 4.0, and partial retrieval (RFC 6352 section 10.4.2).
	m = parseMS(t, e.do("REPORT", book, strings.Replace(req, "%s", ` content-type="text/vcard" version="4.0"`, 1)))
	if got := m.props[book+"a.vcf"]["{urn:ietf:params:xml:ns:carddav}address-data"].text; !strings.Contains(got, "VERSION:4.0\r\n") || !strings.Contains(got, "VALUE=uri:tel:+12025550111") {
		t.Errorf("4.0 address-data:\n%s", got)
	}
	partial := strings.Replace(req, "<C:address-data%s/>", `<C:address-data><C:prop name="FN"/><C:prop name="tel"/></C:address-data>`, 1)
	m = parseMS(t, e.do("REPORT", book, partial))
	if got := m.props[book+"a.vcf"]["{urn:ietf:params:xml:ns:carddav}address-data"].text; got != "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ann Smith\r\nTEL;TYPE=video,pref:+12025550111\r\nEND:VCARD\r\n" {
		t.Errorf("partial address-data:\n%q", got)
	}
	r := e.do("REPORT", book, strings.Replace(req, "%s", ` version="2.1"`, 1)).want(t, 403)
	if !strings.Contains(r.body, "supported-address-data-conversion") {
		t.Errorf("version 2.1: %s", r.body)
	}
}

// RFC 6352 section 8.6 (addressbook-query).
func TestQuery(t *testing.T) {
	e := newEnv(t)
	e.putCard(book+"c.vcf", vcf("c", "Cyrus Daboo", "2025550123", "EMAIL:cyrus@example.com", "TEL;TYPE=CELL:3125550199")).want(t, 201)
	e.putCard(book+"e.vcf", vcf("e", "Eric York", "2025550124", "EMAIL:eric@example.com")).want(t, 201)
	e.putCard(book+"d.vcf", vcf("d", "Daniel Dab", "2025550125")).want(t, 201)
	query := func(filter, limit string) string {
		return `<?xml version="1.0" encoding="utf-8" ?>
<C:addressbook-query ` + propNS + `>
  <D:prop><D:getetag/><C:address-data><C:prop name="FN"/></C:address-data></D:prop>
  <C:filter` + filter + `</C:filter>` + limit + `
</C:addressbook-query>`
	}
	tests := []struct {
		name, filter, limit string
		want                []string
	}{
		{"rfc 8.6.1 example: daboo in FN or EMAIL, any case", ` test="anyof">
    <C:prop-filter name="FN"><C:text-match collation="i;unicode-casemap" match-type="contains">daboo</C:text-match></C:prop-filter>
    <C:prop-filter name="EMAIL"><C:text-match collation="i;unicode-casemap" match-type="contains">daboo</C:text-match></C:prop-filter>`, "", []string{"c.vcf"}},
		{"starts-with, octet", `><C:prop-filter name="FN"><C:text-match collation="i;octet" match-type="starts-with">Da</C:text-match></C:prop-filter>`, "", []string{"d.vcf"}},
		{"octet is case-sensitive", `><C:prop-filter name="FN"><C:text-match collation="i;octet" match-type="starts-with">da</C:text-match></C:prop-filter>`, "", nil},
		{"second TEL matches", `><C:prop-filter name="TEL"><C:text-match>3125550199</C:text-match></C:prop-filter>`, "", []string{"c.vcf"}},
		{"param-filter", `><C:prop-filter name="TEL"><C:param-filter name="TYPE"><C:text-match match-type="equals">cell</C:text-match></C:param-filter></C:prop-filter>`, "", []string{"c.vcf"}},
		{"is-not-defined", `><C:prop-filter name="EMAIL"><C:is-not-defined/></C:prop-filter>`, "", []string{"d.vcf"}},
		{"negate allof", ` test="allof"><C:prop-filter name="EMAIL"/><C:prop-filter name="FN"><C:text-match negate-condition="yes">eric</C:text-match></C:prop-filter>`, "", []string{"c.vcf"}},
		{"empty filter", `>`, "", []string{"c.vcf", "d.vcf", "e.vcf"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := parseMS(t, e.do("REPORT", book, query(tt.filter, tt.limit), "Depth", "1"))
			var got []string
			for _, h := range m.order {
				got = append(got, strings.TrimPrefix(h, book))
			}
			if d := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("matches (-want +got):\n%s", d)
			}
		})
	}
	m := parseMS(t, e.do("REPORT", book, query(`>`, `<C:limit><C:nresults>2</C:nresults></C:limit>`)))
	if len(m.order) != 3 || m.status[book] != ins507 {
		t.Errorf("limit 2 of 3: %v %v", m.order, m.status)
	}
	r := e.do("REPORT", book, query(`><C:prop-filter name="FN"><C:text-match collation="i;klingon">x</C:text-match></C:prop-filter>`, "")).want(t, 403)
	if !strings.Contains(r.body, "supported-collation") {
		t.Errorf("collation: %s", r.body)
	}
	e.do("REPORT", book, `<D:expand-property xmlns:D="DAV:"/>`).want(t, 403)
	e.do("REPORT", book, "").want(t, 400)
}

// RFC 6578: the initial sync, then what changed — through any API — since
// the token, with deletions as 404.
func TestSyncCollection(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sync := func(tok, limit string) string {
		return `<?xml version="1.0" encoding="utf-8" ?>
<D:sync-collection ` + propNS + `>
  <D:sync-token>` + tok + `</D:sync-token>
  <D:sync-level>1</D:sync-level>` + limit + `
  <D:prop><D:getetag/></D:prop>
</D:sync-collection>`
	}
	m := parseMS(t, e.do("REPORT", book, sync("", "")))
	if len(m.order) != 0 || m.syncToken != "http://z5.invalid/sync/2025550100/0" {
		t.Fatalf("empty book: %v %q", m.order, m.syncToken)
	}
	e.putCard(book+"a.vcf", vcf("a", "Ann", "2025550111")).want(t, 201)
	e.putCard(book+"b.vcf", vcf("b", "Bob", "2025550112")).want(t, 201)
	e.putCard(book+"c.vcf", vcf("c", "Cat", "2025550113")).want(t, 201)
	e.do("DELETE", book+"c.vcf", "").want(t, 204)

	m = parseMS(t, e.do("REPORT", book, sync("", "")))
	if d := cmp.Diff([]string{book + "a.vcf", book + "b.vcf"}, m.order); d != "" {
		t.Errorf("initial sync lists the members only (-want +got):\n%s", d)
	}
	tok := m.syncToken
	if tok != "http://z5.invalid/sync/2025550100/4" {
		t.Errorf("token %q", tok)
	}
	m = parseMS(t, e.do("REPORT", book, sync(tok, "")))
	if len(m.order) != 0 || m.syncToken != tok {
		t.Errorf("nothing changed: %v %q", m.order, m.syncToken)
	}

	// Changes made through the store (the JSON API's path) and CardDAV.
	a, err := e.st.Contact(ctx, alice, "a.vcf")
	if err != nil {
		t.Fatal(err)
	}
	a.Name = "Ann Updated"
	if _, err := e.st.UpdateContact(ctx, a, a.Version); err != nil {
		t.Fatal(err)
	}
	e.do("DELETE", book+"b.vcf", "").want(t, 204)
	created, err := e.st.CreateContact(ctx, store.Contact{Owner: alice, Name: "Dan", Number: "2025550114"}, 20)
	if err != nil {
		t.Fatal(err)
	}
	m = parseMS(t, e.do("REPORT", book, sync(tok, "")))
	if d := cmp.Diff([]string{book + "a.vcf", book + "b.vcf", ObjectPath(alice, created.ID)}, m.order); d != "" {
		t.Errorf("changes (-want +got):\n%s", d)
	}
	if m.props[book+"a.vcf"]["{DAV:}getetag"].text != `"2"` || m.status[book+"b.vcf"] != nf404 {
		t.Errorf("updated a / deleted b: %+v %q", m.props[book+"a.vcf"], m.status[book+"b.vcf"])
	}
	next := m.syncToken
	if next != "http://z5.invalid/sync/2025550100/7" {
		t.Errorf("next token %q", next)
	}

	// A limit splits the changes; the token continues where it stopped.
	m = parseMS(t, e.do("REPORT", book, sync(tok, "<D:limit><D:nresults>2</D:nresults></D:limit>")))
	if len(m.order) != 3 || m.status[book] != ins507 || m.syncToken != "http://z5.invalid/sync/2025550100/6" {
		t.Errorf("limited: %v %v %q", m.order, m.status, m.syncToken)
	}
	m = parseMS(t, e.do("REPORT", book, sync(m.syncToken, "")))
	if len(m.order) != 1 || m.syncToken != next {
		t.Errorf("rest after the limit: %v %q", m.order, m.syncToken)
	}

	for _, bad := range []string{"http://z5.invalid/sync/2025550100/99", "http://z5.invalid/sync/3125550100/1", "opaque", "http://z5.invalid/sync/2025550100/-1"} {
		r := e.do("REPORT", book, sync(bad, "")).want(t, 403)
		if !strings.Contains(r.body, "<D:valid-sync-token/>") {
			t.Errorf("token %q: %s", bad, r.body)
		}
	}
	e.do("REPORT", book, sync("", ""), "Depth", "1").want(t, 400)
	e.do("REPORT", book, strings.Replace(sync("", ""), "<D:sync-level>1</D:sync-level>", "", 1)).want(t, 400)
}

// Cards we serve as vCard 3.0 read back as the same contact.
func TestVCard3RoundTrip(t *testing.T) {
	cs := []store.Contact{
		{Owner: alice, ID: "x", UID: "urn:uuid:1", Name: "Ana María O'Neil, Jr.", GivenName: "Ana María", FamilyName: "O'Neil; Jr\\",
			Number: "2025550123", Phones: []store.Phone{{Type: "video", Number: "sip:ana@example.org;transport=tcp"}, {Type: "text", Number: "+442079460000"}, {Type: "cell", Number: "3125550199"}},
			Email: "ana@example.org", Organization: "Acme, Inc.; Sales", Note: "a\nb, c; d \\ e", Favorite: true, UpdatedAt: time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)},
		{Owner: alice, ID: "y", Name: "SIP", Number: "sips:bob@[2001:db8::1]:5061"},
	}
	for _, c := range cs {
		b, err := render(c, v3)
		if err != nil {
			t.Fatal(err)
		}
		got, err := addressbook.Decode(bytes.NewReader(b), 1, 1<<20)
		if err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		if d := cmp.Diff(c, got[0], cmpopts.IgnoreFields(store.Contact{}, "Owner", "ID", "Version", "Rev"), cmpopts.EquateEmpty()); d != "" {
			t.Errorf("3.0 round trip (-want +got):\n%s\n%s", d, b)
		}
	}
}

func TestAcceptVersion(t *testing.T) {
	for in, want := range map[string]string{
		"":                        v3,
		"text/vcard":              v3,
		"text/vcard; version=4.0": v4,
		"text/vcard;q=0.9, text/vcard;version=4.0":  v4,
		"application/json, text/vcard; version=3.0": v3,
		"*/*; version=4.0":                          v4,
		"garbage;;;":                                v3,
	} {
		if got := acceptVersion(in); got != want {
			t.Errorf("acceptVersion(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestParsePath(t *testing.T) {
	tests := map[string]resource{
		"/":                                     {kind: kindRoot},
		"/dav":                                  {kind: kindRoot},
		"/dav/principals/2025550100/":           {kind: kindPrincipal, owner: alice},
		"/dav/addressbooks/2025550100":          {kind: kindHome, owner: alice},
		"/dav/addressbooks/2025550100/contacts": {kind: kindBook, owner: alice},
		"/dav/addressbooks/2025550100/contacts/a%3Ab.vcf":    {kind: kindObject, owner: alice, id: "a:b.vcf"},
		"https://h:1/dav/addressbooks/2025550100/contacts/x": {kind: kindObject, owner: alice, id: "x"},
	}
	for in, want := range tests {
		got, ok := parsePath(in)
		if !ok || got != want {
			t.Errorf("parsePath(%q) = %+v, %v; want %+v", in, got, ok, want)
		}
	}
	for _, bad := range []string{"/x", "/dav/addressbooks/2025550100/contacts/a%2Fb/c", "/dav/addressbooks/2025550100/contacts/x/",
		"/dav/addressbooks/2025550100/contacts/..", "/dav/addressbooks/2025550100/other", "/dav/addressbooks/2025550100/contacts/%zz", "/davx"} {
		if got, ok := parsePath(bad); ok {
			t.Errorf("parsePath(%q) = %+v, want not found", bad, got)
		}
	}
}

// FuzzRequest sends arbitrary bodies with every method: never a 5xx, a
// panic or a hang.
func FuzzRequest(f *testing.F) {
	st := teststore.SQLite(f)
	_, tok, _ := teststore.Provision(f, st, "fuzz", alice)
	h, err := New(Config{MaxContacts: 5, MaxBody: 16 << 10}, Deps{Store: st})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		`<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><D:sync-token/></D:prop></D:propfind>`,
		`<C:addressbook-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"><D:prop><C:address-data version="4.0"><C:prop name="FN"/></C:address-data></D:prop><D:href>/dav/addressbooks/2025550100/contacts/a</D:href></C:addressbook-multiget>`,
		`<C:addressbook-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"><C:filter test="allof"><C:prop-filter name="TEL"><C:param-filter name="TYPE"><C:is-not-defined/></C:param-filter></C:prop-filter></C:filter><C:limit><C:nresults>1</C:nresults></C:limit></C:addressbook-query>`,
		`<D:sync-collection xmlns:D="DAV:"><D:sync-token>http://z5.invalid/sync/2025550100/0</D:sync-token><D:sync-level>1</D:sync-level></D:sync-collection>`,
		`<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>x</D:displayname></D:prop></D:set></D:propertyupdate>`,
		vcf("a", "A", "2025550123"),
	} {
		for _, m := range []string{"PROPFIND", "REPORT", "PUT", "PROPPATCH"} {
			f.Add(m, s)
		}
	}
	f.Fuzz(func(t *testing.T, method, body string) {
		methods := []string{"PROPFIND", "REPORT", "PUT", "PROPPATCH", "GET", "DELETE"}
		if !slices.Contains(methods, method) {
			method = methods[len(method)%len(methods)]
		}
		path := book
		if method == "PUT" || method == "GET" || method == "DELETE" {
			path += "a"
		}
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", basic(alice, tok))
		req.Header.Set("Content-Type", "text/vcard")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusInsufficientStorage {
			t.Fatalf("%s %q: status %d: %s", method, body, rec.Code, rec.Body)
		}
	})
}
