package carddav

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/z5vrs/z5/internal/addressbook"
	"github.com/z5vrs/z5/internal/clip"
	"github.com/z5vrs/z5/internal/store"
)

// report serves the three REPORTs clients use on an address book:
// addressbook-multiget and addressbook-query (RFC 6352 section 8) and
// sync-collection (RFC 6578).
func (h *Handler) report(w http.ResponseWriter, r *http.Request, res resource) error {
	root, err := readXML(w, r, h.cfg.MaxBody)
	if err != nil {
		return err
	}
	if root == nil {
		return badRequest("a REPORT needs a body naming the report")
	}
	if res.kind != kindBook && !(res.kind == kindObject && root.is(nsCardDAV, "addressbook-multiget")) {
		owner, _ := OwnerFrom(r.Context())
		return &davError{status: http.StatusForbidden, cond: condSupportedReport,
			msg: "reports are served on the address book, " + BookPath(owner)}
	}
	req, ok := parsePropReq(root)
	if !ok {
		req = propReq{all: true}
	}
	if err := checkAddressData(req.addressDataReq()); err != nil {
		return err
	}
	switch {
	case root.is(nsCardDAV, "addressbook-multiget"):
		return h.multiget(w, r, res, root, req)
	case root.is(nsCardDAV, "addressbook-query"):
		return h.query(w, r, res, root, req)
	case root.is(nsDAV, "sync-collection"):
		return h.syncCollection(w, r, res, root, req)
	}
	return &davError{status: http.StatusForbidden, cond: condSupportedReport,
		msg: fmt.Sprintf("report {%s}%s is not supported; use addressbook-multiget, addressbook-query or sync-collection", clip.String(root.name.Space, 64), clip.String(root.name.Local, 32))}
}

// multiget answers each DAV:href: the contact's properties, or 404.
func (h *Handler) multiget(w http.ResponseWriter, r *http.Request, res resource, root *node, req propReq) error {
	ctx := r.Context()
	x := newXMLWriter()
	x.open(dav("multistatus"), true)
	for _, hn := range root.children {
		if !hn.is(nsDAV, "href") {
			continue
		}
		href := strings.TrimSpace(hn.text)
		obj, ok := parsePath(href)
		if !ok || obj.kind != kindObject || obj.owner != res.owner {
			writeStatus(x, href, http.StatusNotFound)
			continue
		}
		c, err := h.store.Contact(ctx, obj.owner, obj.id)
		if errors.Is(err, store.ErrNotFound) {
			writeStatus(x, href, http.StatusNotFound)
			continue
		}
		if err != nil {
			return fmt.Errorf("contact %s/%s: %w", obj.owner, obj.id, err)
		}
		if err := writeResponse(x, href, h.objectProps(c, true), req); err != nil {
			return err
		}
	}
	x.close(dav("multistatus"))
	x.send(w, r, http.StatusMultiStatus)
	return nil
}

// query answers the contacts matching a CARDDAV:filter. When more match
// than CARDDAV:limit allows, the book itself is reported 507 (RFC 6352
// section 8.6.1).
func (h *Handler) query(w http.ResponseWriter, r *http.Request, res resource, root *node, req propReq) error {
	f, err := parseFilter(root)
	if err != nil {
		return err
	}
	ctx := r.Context()
	cs, err := h.store.ListContacts(ctx, res.owner)
	if err != nil {
		return fmt.Errorf("list contacts of %s: %w", res.owner, err)
	}
	x := newXMLWriter()
	x.open(dav("multistatus"), true)
	n := 0
	truncated := false
	for _, c := range cs {
		if !f.matches(addressbook.ToVCard(c)) {
			continue
		}
		if f.limit > 0 && n == f.limit {
			truncated = true
			break
		}
		n++
		if err := writeResponse(x, ObjectPath(c.Owner, c.ID), h.objectProps(c, true), req); err != nil {
			return err
		}
	}
	if truncated {
		writeLimited(x, BookPath(res.owner))
	}
	x.close(dav("multistatus"))
	x.send(w, r, http.StatusMultiStatus)
	return nil
}

// syncCollection reports what changed in the book since the client's sync
// token (RFC 6578 section 3): changed contacts with the requested
// properties, deleted ones as 404, and the token to use next time. The
// token is the book's revision in the store's change log, so changes made
// through the JSON API, a vCard import or another node show up too.
func (h *Handler) syncCollection(w http.ResponseWriter, r *http.Request, res resource, root *node, req propReq) error {
	// RFC 6578 section 3.2: the report is defined for Depth 0 only.
	if d := strings.TrimSpace(r.Header.Get("Depth")); d != "" && d != "0" {
		return badRequest("sync-collection takes Depth: 0 (or no Depth header), not %q", clip.String(d, 16))
	}
	level := root.child(nsDAV, "sync-level")
	if level == nil {
		return badRequest("sync-collection needs a DAV:sync-level element (1)")
	}
	// The book holds no collections, so "infinite" reports the same as 1.
	if l := strings.TrimSpace(level.text); l != "1" && l != "infinite" {
		return badRequest("DAV:sync-level %q: want 1 or infinite", clip.String(l, 16))
	}
	tokEl := root.child(nsDAV, "sync-token")
	if tokEl == nil {
		return badRequest("sync-collection needs a DAV:sync-token element (empty for the first sync)")
	}
	limit := 0
	if l := root.child(nsDAV, "limit"); l != nil {
		if nr := l.child(nsDAV, "nresults"); nr != nil {
			n, err := strconv.Atoi(strings.TrimSpace(nr.text))
			if err != nil || n < 1 {
				return badRequest("DAV:nresults %q: want a positive number", clip.String(nr.text, 20))
			}
			limit = n
		}
	}
	ctx := r.Context()
	since, initial, err := h.parseSyncToken(ctx, res.owner, strings.TrimSpace(tokEl.text))
	if err != nil {
		return err
	}
	changes, rev, err := h.store.ContactChanges(ctx, res.owner, since)
	if err != nil {
		return fmt.Errorf("contact changes of %s since %d: %w", res.owner, since, err)
	}
	if initial {
		// RFC 6578 section 3.4: a first sync lists the members; there is
		// nothing the client could have to forget.
		live := changes[:0]
		for _, ch := range changes {
			if !ch.Deleted {
				live = append(live, ch)
			}
		}
		changes = live
	}
	truncated := false
	if limit > 0 && len(changes) > limit {
		// Changes are in revision order, each contact once at its latest
		// revision: everything up to the last one sent is covered by it.
		changes, rev, truncated = changes[:limit], changes[limit-1].Rev, true
	}
	x := newXMLWriter()
	x.open(dav("multistatus"), true)
	for _, ch := range changes {
		if ch.Deleted {
			writeStatus(x, ObjectPath(res.owner, ch.ID), http.StatusNotFound)
			continue
		}
		if err := writeResponse(x, ObjectPath(ch.Contact.Owner, ch.Contact.ID), h.objectProps(ch.Contact, true), req); err != nil {
			return err
		}
	}
	if truncated {
		writeLimited(x, BookPath(res.owner))
	}
	x.textElem(dav("sync-token"), syncToken(res.owner, rev))
	x.close(dav("multistatus"))
	h.log.Debug("carddav sync", "number", res.owner, "since", since, "rev", rev, "changes", len(changes), "truncated", truncated)
	x.send(w, r, http.StatusMultiStatus)
	return nil
}

// parseSyncToken checks a client's token: ours, for this book, and not
// from the future (a book restored from a backup rewinds its revision).
// An empty token is the first sync.
func (h *Handler) parseSyncToken(ctx context.Context, owner, tok string) (since int64, initial bool, err error) {
	if tok == "" {
		return 0, true, nil
	}
	invalid := func(why string) error {
		return &davError{status: http.StatusForbidden, cond: condValidSyncToken,
			msg: fmt.Sprintf("sync token %q %s; sync again from an empty token", clip.String(tok, 80), why)}
	}
	rest, ok := strings.CutPrefix(tok, SyncTokenPrefix+owner+"/")
	if !ok {
		return 0, false, invalid("is not one this address book issued")
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || n < 0 {
		return 0, false, invalid("is not one this address book issued")
	}
	rev, err := h.backend.bookRev(ctx, owner)
	if err != nil {
		return 0, false, err
	}
	if n > rev {
		return 0, false, invalid(fmt.Sprintf("is newer than the book (revision %d)", rev))
	}
	return n, false, nil
}

// writeStatus writes a response with only a status, as for a member that
// is gone.
func writeStatus(x *xmlWriter, href string, code int) {
	x.open(dav("response"), false)
	x.textElem(dav("href"), href)
	x.textElem(dav("status"), statusLine(code))
	x.close(dav("response"))
}

// writeLimited marks a truncated result (RFC 6578 section 3.6, RFC 6352
// section 8.6.1).
func writeLimited(x *xmlWriter, href string) {
	x.open(dav("response"), false)
	x.textElem(dav("href"), href)
	x.textElem(dav("status"), statusLine(http.StatusInsufficientStorage))
	x.open(dav("error"), false)
	x.empty(dav("number-of-matches-within-limits"))
	x.close(dav("error"))
	x.close(dav("response"))
}
