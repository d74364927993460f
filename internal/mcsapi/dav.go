package mcsapi

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"

	"github.com/z5vrs/z5/internal/addressbook"
	"github.com/z5vrs/z5/internal/carddav"
	"github.com/z5vrs/z5/internal/store"
)

// PathContactsXML is the book as xCard (RFC 6351), the contact list
// format of RFC 9248 section 7.2.
const PathContactsXML = "/api/v1/contacts.xml"

// xCard media types accepted on import: RFC 6351's, and generic XML as
// some software labels it.
var xcardTypes = []string{"application/vcard+xml", "application/xml", "text/xml"}

// initDAV builds the CardDAV handler over the same store and limits, so
// the book a CardDAV client syncs is the one the JSON API edits.
func (s *Service) initDAV() error {
	dav, err := carddav.New(carddav.Config{MaxContacts: s.cfg.MaxContacts, MaxBody: s.cfg.MaxBody},
		carddav.Deps{Store: s.store, Log: s.log.With("component", "carddav"), Now: s.now})
	if err != nil {
		return fmt.Errorf("mcsapi: %w", err)
	}
	s.dav = dav
	return nil
}

// davRoutes mounts CardDAV (docs/carddav.md): the well-known URI, the
// /dav/ tree, and PROPFIND on "/" for clients that look for
// current-user-principal at the server's root first.
func (s *Service) davRoutes() {
	h := s.wrap(func(w http.ResponseWriter, r *http.Request) error {
		s.dav.ServeHTTP(w, r)
		return nil
	})
	for _, p := range []string{carddav.PathWellKnown, carddav.PathWellKnown + "/", "/dav", carddav.PathRoot, "PROPFIND /{$}"} {
		s.mux.Handle(p, h)
	}
}

// handleExportXML sends the whole book as one xCard document.
func (s *Service) handleExportXML(w http.ResponseWriter, r *http.Request, sess store.Session) error {
	rev, err := s.bookRev(r, sess.Number)
	if err != nil {
		return err
	}
	etag := `"rev-` + strconv.FormatInt(rev, 10) + `-xml"`
	w.Header().Set("Cache-Control", "private, no-cache")
	if !noneMatch(r, etag) {
		return notModified(w, etag)
	}
	cs, err := s.store.ListContacts(r.Context(), sess.Number)
	if err != nil {
		return fmt.Errorf("list contacts of %s: %w", sess.Number, err)
	}
	var buf bytes.Buffer
	if err := addressbook.EncodeXCard(&buf, cs); err != nil {
		return fmt.Errorf("export %s: %w", sess.Number, err)
	}
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Content-Type", addressbook.XCardContentType)
	h.Set("Content-Disposition", `attachment; filename="`+sess.Number+`.xml"`)
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
	return nil
}

// handleImportXML merges an xCard document into the book, exactly as a
// vCard import: every card and the book's limit are checked before
// anything is written.
func (s *Service) handleImportXML(w http.ResponseWriter, r *http.Request, sess store.Session) error {
	body, err := s.readBody(w, r, xcardTypes...)
	if err != nil {
		return err
	}
	cards, err := addressbook.DecodeXCard(bytes.NewReader(body), s.cfg.MaxContacts, s.cfg.MaxBody)
	if err != nil {
		return s.vcardError(err)
	}
	return s.importContacts(w, r, sess, cards, "xcard")
}
