package mcsapi

import (
	"fmt"
	"net/http"

	"github.com/z5vrs/z5/internal/addressbook"
	"github.com/z5vrs/z5/internal/carddav"
)

// PathContactsXML is the book as xCard (RFC 6351), the contact list
// format of RFC 9248 section 7.2.
const PathContactsXML = "/api/v1/contacts.xml"

// xcardFile is xCard (RFC 6351). On import it accepts RFC 6351's media
// type, and generic XML as some software labels it.
var xcardFile = bookFile{
	name: "xcard", ext: "xml", contentType: addressbook.XCardContentType,
	accept: []string{"application/vcard+xml", "application/xml", "text/xml"},
	encode: addressbook.EncodeXCard, decode: addressbook.DecodeXCard,
}

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
