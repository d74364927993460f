// Package carddav serves each phone number's address book over CardDAV
// (RFC 6352) with collection synchronization (RFC 6578), so standard
// address-book software (DAVx5, Apple Contacts, Thunderbird, vdirsyncer)
// can sync it. It is the same book as the MCS JSON API's: both read and
// write the store's contacts, a contact's ETag is its version in both, and
// the sync token is the book's revision in the store's change log.
//
// URLs (see docs/carddav.md):
//
//	/.well-known/carddav                    redirect to /dav/ (RFC 6764)
//	/dav/                                   context path: current-user-principal
//	/dav/principals/<number>/               the number's principal
//	/dav/addressbooks/<number>/             its address book home
//	/dav/addressbooks/<number>/contacts/    its one address book
//	/dav/addressbooks/<number>/contacts/<id> one contact; <id> is the JSON API's id
//
// Authentication is the MCS token of number selection, as a bearer token or
// as the password of HTTP Basic with the number (or the device's SIP user
// name) as user name, since most CardDAV clients only speak Basic.
//
// Backend implements go-webdav's carddav.Backend over the store. The
// HTTP side is served by Handler rather than go-webdav's carddav.Handler
// because that one (v0.6.0) writes and reads cards with go-vcard's
// encoder and decoder (which double-escape compound values, do not fold,
// and read without limits), has no sync-collection REPORT nor the
// DAV:sync-token, CS:getctag and DAV:supported-report-set properties
// clients look for, passes no If-Match to DeleteAddressObject, answers
// every PUT 201, and types resources by path depth so that a principal
// under /dav/principals/ is taken for a home set. go-webdav's Backend
// contract, types and client are used as they are.
package carddav

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/z5vrs/z5/internal/clip"
	"github.com/z5vrs/z5/internal/store"
)

// Paths of the CardDAV service.
const (
	PathWellKnown = "/.well-known/carddav"
	PathRoot      = "/dav/"
	// BookName is the name of each number's one address book.
	BookName = "contacts"
)

// SyncTokenPrefix starts every sync token: the rest is <number>/<rev>.
// RFC 6578 wants a URI; .invalid never resolves (RFC 6761).
const SyncTokenPrefix = "http://z5.invalid/sync/"

// PrincipalPath is the principal URL of number.
func PrincipalPath(number string) string { return PathRoot + "principals/" + number + "/" }

// HomePath is number's address book home set.
func HomePath(number string) string { return PathRoot + "addressbooks/" + number + "/" }

// BookPath is number's address book collection.
func BookPath(number string) string { return HomePath(number) + BookName + "/" }

// ObjectPath is the URL path of contact id in number's book.
func ObjectPath(number, id string) string { return BookPath(number) + url.PathEscape(id) }

// Config bounds what one request may do.
type Config struct {
	MaxContacts int   // per book, as the JSON API's
	MaxBody     int64 // bytes of any request body, a vCard PUT included
}

// Store is what CardDAV needs of the provider's store: the address books,
// and the sessions and devices its logins are checked against.
type Store interface {
	ListContacts(ctx context.Context, owner string) ([]store.Contact, error)
	Contact(ctx context.Context, owner, id string) (store.Contact, error)
	CreateContact(ctx context.Context, c store.Contact, maxContacts int) (store.Contact, error)
	UpdateContact(ctx context.Context, c store.Contact, ifVersion int64) (store.Contact, error)
	DeleteContact(ctx context.Context, owner, id string, ifVersion int64) error
	ContactChanges(ctx context.Context, owner string, sinceRev int64) (changes []store.ContactChange, rev int64, err error)
	Session(ctx context.Context, tokenHash []byte) (store.Session, error)
	Device(ctx context.Context, id int64) (store.Device, error)
}

// Deps are the collaborators of a Handler.
type Deps struct {
	Store Store
	Log   *slog.Logger     // nil: discard
	Now   func() time.Time // nil: time.Now
}

// Handler serves CardDAV. It is safe for concurrent use.
type Handler struct {
	cfg     Config
	store   Store
	backend *Backend
	log     *slog.Logger
	now     func() time.Time
}

// New validates cfg and deps and builds the Handler.
func New(cfg Config, deps Deps) (*Handler, error) {
	var errs []error
	if deps.Store == nil {
		errs = append(errs, errors.New("deps.Store is required"))
	}
	if cfg.MaxContacts < 1 {
		errs = append(errs, fmt.Errorf("MaxContacts %d: must be at least 1", cfg.MaxContacts))
	}
	if cfg.MaxBody < 1024 {
		errs = append(errs, fmt.Errorf("MaxBody %d: must be at least 1024 bytes", cfg.MaxBody))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("carddav config: %w", errors.Join(errs...))
	}
	h := &Handler{cfg: cfg, store: deps.Store, log: deps.Log, now: deps.Now}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.backend = NewBackend(deps.Store, cfg.MaxContacts, cfg.MaxBody)
	return h, nil
}

// Backend is the store-backed go-webdav backend the Handler uses.
func (h *Handler) Backend() *Backend { return h.backend }

type ownerKey struct{}

// WithOwner returns ctx for requests made by number: the Backend serves
// only that number's book.
func WithOwner(ctx context.Context, number string) context.Context {
	return context.WithValue(ctx, ownerKey{}, number)
}

// OwnerFrom is the number set by WithOwner.
func OwnerFrom(ctx context.Context) (string, bool) {
	n, ok := ctx.Value(ownerKey{}).(string)
	return n, ok && n != ""
}

// Resource kinds, from the root down.
type kind int

const (
	kindRoot kind = iota
	kindPrincipal
	kindHome
	kindBook
	kindObject
)

// resource is what a request path names.
type resource struct {
	kind  kind
	owner string // number, except for the root
	id    string // contact id, for objects
}

func (r resource) path() string {
	switch r.kind {
	case kindPrincipal:
		return PrincipalPath(r.owner)
	case kindHome:
		return HomePath(r.owner)
	case kindBook:
		return BookPath(r.owner)
	case kindObject:
		return ObjectPath(r.owner, r.id)
	}
	return PathRoot
}

// parsePath maps an escaped URL path (or a full URL, as hrefs in a REPORT
// may be) to the resource it names. Segments are unescaped one by one, so
// an encoded '/' never splits one.
func parsePath(p string) (resource, bool) {
	if u, err := url.Parse(p); err == nil && (u.Scheme != "" || u.Host != "") {
		p = u.EscapedPath()
	}
	if p == "/" || p == "" {
		return resource{kind: kindRoot}, true
	}
	rest, ok := strings.CutPrefix(p, strings.TrimSuffix(PathRoot, "/"))
	if !ok {
		return resource{}, false
	}
	trailing := strings.HasSuffix(rest, "/")
	rest = strings.Trim(rest, "/")
	if rest == "" {
		return resource{kind: kindRoot}, true
	}
	raw := strings.Split(rest, "/")
	segs := make([]string, len(raw))
	for i, s := range raw {
		v, err := url.PathUnescape(s)
		if err != nil || v == "" || v == "." || v == ".." {
			return resource{}, false
		}
		segs[i] = v
	}
	switch {
	case len(segs) == 2 && segs[0] == "principals":
		return resource{kind: kindPrincipal, owner: segs[1]}, true
	case len(segs) == 2 && segs[0] == "addressbooks":
		return resource{kind: kindHome, owner: segs[1]}, true
	case len(segs) == 3 && segs[0] == "addressbooks" && segs[2] == BookName:
		return resource{kind: kindBook, owner: segs[1]}, true
	case len(segs) == 4 && segs[0] == "addressbooks" && segs[2] == BookName && !trailing && len(segs[3]) <= 255:
		return resource{kind: kindObject, owner: segs[1], id: segs[3]}, true
	}
	return resource{}, false
}

// ServeHTTP answers one CardDAV request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.TrimSuffix(r.URL.Path, "/") == PathWellKnown {
		// RFC 6764 section 5: the well-known URI redirects to the context
		// path, where current-user-principal is found once logged in.
		http.Redirect(w, r, PathRoot, http.StatusMovedPermanently)
		return
	}
	if err := h.serve(w, r); err != nil {
		h.writeError(w, r, err)
	}
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) error {
	res, ok := parsePath(r.URL.EscapedPath())
	if !ok {
		return notFound("no such CardDAV resource %s; the address book is at %s<number>/%s/", clip.String(r.URL.Path, 80), PathRoot+"addressbooks/", BookName)
	}
	if r.Method == http.MethodOptions {
		return h.options(w, res) // no login needed to learn what is served
	}
	sess, err := h.authenticate(r)
	if err != nil {
		return err
	}
	if res.kind != kindRoot && res.owner != sess.Number {
		return &davError{status: http.StatusForbidden,
			msg: fmt.Sprintf("you are logged in as %s; this is %s's; your address book is %s", sess.Number, clip.String(res.owner, 20), BookPath(sess.Number))}
	}
	r = r.WithContext(WithOwner(r.Context(), sess.Number))
	switch r.Method {
	case "PROPFIND":
		return h.propfind(w, r, res)
	case "REPORT":
		return h.report(w, r, res)
	case http.MethodGet, http.MethodHead:
		return h.get(w, r, res)
	case http.MethodPut:
		return h.put(w, r, res)
	case http.MethodDelete:
		return h.delete(w, r, res)
	case "PROPPATCH":
		return h.proppatch(w, r, res)
	case "MKCOL", "MKCALENDAR":
		return &davError{status: http.StatusForbidden, msg: "each number has exactly one address book, " + BookPath(sess.Number) + "; no other collection can be made"}
	}
	return &davError{status: http.StatusMethodNotAllowed, allow: allowed(res.kind),
		msg: fmt.Sprintf("method %s is not supported here; use %s", clip.String(r.Method, 16), allowed(res.kind))}
}

func allowed(k kind) string {
	switch k {
	case kindBook:
		return "OPTIONS, PROPFIND, PROPPATCH, REPORT"
	case kindObject:
		return "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND"
	}
	return "OPTIONS, PROPFIND"
}

func (h *Handler) options(w http.ResponseWriter, res resource) error {
	w.Header().Set("DAV", "1, 3, addressbook")
	w.Header().Set("Allow", allowed(res.kind))
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	return nil
}
