package carddav

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/pki"
	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/store/sqlite"
	"github.com/z5vrs/z5/internal/testenv"
	"github.com/z5vrs/z5/internal/testenv/teststore"
)

// env is one CardDAV handler over TLS on loopback, on a fresh SQLite
// store holding Alice (2025550100) and Bob (3125550100) with MCS tokens.
type env struct {
	t          *testing.T
	st         *sqlite.Store
	h          *Handler
	srv        *httptest.Server
	ca         *pki.CA
	client     *http.Client
	alice, bob string // MCS tokens
	aliceDev   store.Device
	aliceCust  int64
	zdialTok   string // Alice's ZDial login token
}

const (
	alice = "2025550100"
	bob   = "3125550100"
)

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, st: teststore.SQLite(t)}
	e.aliceDev, e.alice, e.aliceCust = teststore.Provision(t, e.st, "alice", alice)
	_, e.bob, _ = teststore.Provision(t, e.st, "bob", bob)
	e.zdialTok = teststore.NewSession(t, e.st, store.Session{Kind: store.SessionZDial, CustomerID: e.aliceCust, ExpiresAt: time.Now().Add(time.Hour)})
	var err error
	e.h, err = New(Config{MaxContacts: 20, MaxBody: 64 << 10}, Deps{Store: e.st})
	if err != nil {
		t.Fatal(err)
	}
	e.ca, err = pki.LoadOrCreateCA(t.TempDir(), "Z5 test")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := e.ca.Issue([]string{"mcs1.mcs.z5.test"}, []netip.Addr{netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewUnstartedServer(e.h)
	e.srv.TLS = pki.ServerTLS(cert)
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.ca.Pool(), ServerName: "mcs1.mcs.z5.test"}}
	t.Cleanup(tr.CloseIdleConnections)
	e.client = &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return e
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// resp is a response with its body read.
type resp struct {
	*http.Response
	body string
}

// do sends a request; hdr holds header pairs. Without an Authorization
// pair the request goes as Alice over Basic.
func (e *env) do(method, path, body string, hdr ...string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", basic(alice, e.alice))
	if body != "" {
		req.Header.Set("Content-Type", "application/xml; charset=utf-8")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, b := testenv.Fetch(e.t, e.client, req)
	return resp{res, string(b)}
}

func (r resp) want(t *testing.T, code int) resp {
	t.Helper()
	if r.StatusCode != code {
		t.Fatalf("%s %s: status %d, want %d\n%s", r.Request.Method, r.Request.URL.Path, r.StatusCode, code, r.body)
	}
	return r
}

// putCard PUTs a vCard as Alice.
func (e *env) putCard(path, card string, hdr ...string) resp {
	e.t.Helper()
	return e.do("PUT", path, card, append([]string{"Content-Type", "text/vcard; charset=utf-8"}, hdr...)...)
}

// A multistatus as the test reads it.
type msXML struct {
	Responses []struct {
		Hrefs     []string `xml:"DAV: href"`
		Status    string   `xml:"DAV: status"`
		Error     *anyXML  `xml:"DAV: error"`
		Propstats []struct {
			Any    anyProps `xml:"DAV: prop"`
			Status string   `xml:"DAV: status"`
		} `xml:"DAV: propstat"`
	} `xml:"DAV: response"`
	SyncToken string `xml:"DAV: sync-token"`
}

type anyProps struct {
	Elems []anyXML `xml:",any"`
}

type anyXML struct {
	XMLName xml.Name
	Inner   string `xml:",innerxml"`
	Text    string `xml:",chardata"`
}

// propResult is one property of one response: the status of its propstat
// and its content.
type propResult struct {
	status string
	inner  string
	text   string
}

// ms is a parsed multistatus: per href, its status and its properties
// keyed "{namespace}local".
type ms struct {
	order     []string
	status    map[string]string
	props     map[string]map[string]propResult
	syncToken string
}

func parseMS(t *testing.T, r resp) ms {
	t.Helper()
	if r.StatusCode != http.StatusMultiStatus {
		t.Fatalf("%s %s: status %d, want 207\n%s", r.Request.Method, r.Request.URL.Path, r.StatusCode, r.body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/xml") {
		t.Errorf("Content-Type %q", ct)
	}
	var m msXML
	if err := xml.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("multistatus: %v\n%s", err, r.body)
	}
	out := ms{status: map[string]string{}, props: map[string]map[string]propResult{}, syncToken: m.SyncToken}
	for _, rs := range m.Responses {
		if len(rs.Hrefs) != 1 {
			t.Fatalf("response with %d hrefs:\n%s", len(rs.Hrefs), r.body)
		}
		h := rs.Hrefs[0]
		out.order = append(out.order, h)
		out.status[h] = rs.Status
		ps := map[string]propResult{}
		for _, p := range rs.Propstats {
			for _, a := range p.Any.Elems {
				ps["{"+a.XMLName.Space+"}"+a.XMLName.Local] = propResult{status: p.Status, inner: a.Inner, text: a.Text}
			}
		}
		out.props[h] = ps
	}
	return out
}

const (
	ok200  = "HTTP/1.1 200 OK"
	nf404  = "HTTP/1.1 404 Not Found"
	ins507 = "HTTP/1.1 507 Insufficient Storage"
)

// vcf is a small vCard 3.0 as clients send them.
func vcf(uid, fn, tel string, extra ...string) string {
	lines := []string{"BEGIN:VCARD", "VERSION:3.0", "UID:" + uid, "FN:" + fn, "TEL;TYPE=VIDEO:" + tel}
	lines = append(lines, extra...)
	lines = append(lines, "END:VCARD")
	return strings.Join(lines, "\r\n") + "\r\n"
}
