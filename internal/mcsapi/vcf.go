package mcsapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"

	"github.com/z5vrs/z5/internal/addressbook"
	"github.com/z5vrs/z5/internal/clip"
	"github.com/z5vrs/z5/internal/httpcond"
	"github.com/z5vrs/z5/internal/store"
)

// bookFile is a file format of the whole book: vCard (this file) or
// xCard (dav.go). Export and import are the same for both but for these.
type bookFile struct {
	name        string   // the upload's name in the log
	ext         string   // the ETag's suffix and the file name's extension
	contentType string   // of the export
	accept      []string // media types accepted on import
	encode      func(io.Writer, []store.Contact) error
	decode      func(r io.Reader, maxCards int, maxBytes int64) ([]store.Contact, error)
}

// vcardFile is vCard 4.0. On import it accepts RFC 6350's media type, the
// older x- form and vCard 3.0's text/directory, as other software labels
// its exports.
var vcardFile = bookFile{
	name: "vcard", ext: "vcf", contentType: addressbook.ContentType,
	accept: []string{"text/vcard", "text/x-vcard", "text/directory"},
	encode: addressbook.Encode, decode: addressbook.Decode,
}

type importJSON struct {
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
}

// loadBook answers a conditional GET of the whole book: tag is the
// representation's ETag at the book's revision. It returns nil, having
// answered 304, when the client's copy is current.
func (s *Service) loadBook(w http.ResponseWriter, r *http.Request, number string, tag func(rev int64) string) (*book, error) {
	rev, err := s.bookRev(r, number)
	if err != nil {
		return nil, err
	}
	etag := tag(rev)
	// Private data: caches may keep it only to revalidate with the ETag.
	w.Header().Set("Cache-Control", "private, no-cache")
	if !httpcond.NoneMatch(r, etag) {
		return nil, notModified(w, etag)
	}
	cs, err := s.store.ListContacts(r.Context(), number)
	if err != nil {
		return nil, fmt.Errorf("list contacts of %s: %w", number, err)
	}
	return &book{contacts: cs, rev: rev, etag: etag}, nil
}

// book is the whole address book at one revision.
type book struct {
	contacts []store.Contact
	rev      int64
	etag     string
}

// handleExport sends the whole book as one file of format f.
func (s *Service) handleExport(f bookFile) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, sess store.Session) error {
		// Not the JSON list's tag: a strong ETag names one representation.
		b, err := s.loadBook(w, r, sess.Number, func(rev int64) string {
			return `"rev-` + strconv.FormatInt(rev, 10) + `-` + f.ext + `"`
		})
		if b == nil {
			return err
		}
		var buf bytes.Buffer
		if err := f.encode(&buf, b.contacts); err != nil {
			return fmt.Errorf("export %s: %w", sess.Number, err)
		}
		h := w.Header()
		h.Set("ETag", b.etag)
		h.Set("Content-Type", f.contentType)
		h.Set("Content-Disposition", `attachment; filename="`+sess.Number+`.`+f.ext+`"`)
		h.Set("Content-Length", strconv.Itoa(buf.Len()))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(buf.Bytes())
		}
		return nil
	}
}

// handleImport merges a file of format f into the book by UID: a card
// whose UID is in the book updates that contact, any other card is
// created. Every card is checked, and the book's limit too, before
// anything is written.
func (s *Service) handleImport(f bookFile) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, sess store.Session) error {
		body, err := s.readBody(w, r, f.accept...)
		if err != nil {
			return err
		}
		cards, err := f.decode(bytes.NewReader(body), s.cfg.MaxContacts, s.cfg.MaxBody)
		if err != nil {
			return s.vcardError(err)
		}
		return s.importContacts(w, r, sess, cards, f.name)
	}
}

// importContacts merges decoded contacts into the session's book (see
// handleImport); format names the upload in the log.
func (s *Service) importContacts(w http.ResponseWriter, r *http.Request, sess store.Session, cards []store.Contact, format string) error {
	ctx := r.Context()
	existing, err := s.store.ListContacts(ctx, sess.Number)
	if err != nil {
		return fmt.Errorf("list contacts of %s: %w", sess.Number, err)
	}
	byUID := make(map[string]store.Contact, len(existing))
	for _, c := range existing {
		byUID[c.UID] = c
	}
	creates := 0
	for _, c := range cards {
		if _, ok := byUID[c.UID]; !ok || c.UID == "" {
			creates++
		}
	}
	if len(existing)+creates > s.cfg.MaxContacts {
		return &apiError{status: http.StatusConflict, code: "book_full",
			msg: fmt.Sprintf("address book full: %d new contacts on top of %d would exceed the limit of %d; nothing was imported",
				creates, len(existing), s.cfg.MaxContacts)}
	}

	var res importJSON
	partial := func(err *apiError) *apiError {
		err.msg += fmt.Sprintf(" (%d created and %d updated before this; import the file again to finish: cards merge by UID)", res.Created, res.Updated)
		return err
	}
	for i, c := range cards {
		c.Owner = sess.Number
		ex, ok := byUID[c.UID]
		if !ok || c.UID == "" {
			_, err := s.store.CreateContact(ctx, c, s.cfg.MaxContacts)
			switch {
			case errors.Is(err, store.ErrLimit):
				return partial(s.errBookFull())
			case errors.Is(err, store.ErrExists):
				return partial(&apiError{status: http.StatusConflict, code: "conflict",
					msg: fmt.Sprintf("card %d: a contact with UID %q was added while importing", i+1, clip.String(c.UID, 80))})
			case err != nil:
				return fmt.Errorf("import card %d into %s: %w", i+1, sess.Number, err)
			}
			res.Created++
			continue
		}
		if sameContent(ex, c) {
			res.Unchanged++
			continue
		}
		c.ID = ex.ID
		// Guarded by the version just read: a contact edited elsewhere
		// meanwhile is reported, not overwritten.
		_, err := s.store.UpdateContact(ctx, c, ex.Version)
		switch {
		case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
			return partial(&apiError{status: http.StatusConflict, code: "conflict",
				msg: fmt.Sprintf("card %d: contact %q (UID %q) changed while importing", i+1, clip.String(ex.Name, 64), clip.String(c.UID, 80))})
		case err != nil:
			return fmt.Errorf("import card %d into %s: %w", i+1, sess.Number, err)
		}
		res.Updated++
	}
	s.metrics.imported.WithLabelValues("created").Add(float64(res.Created))
	s.metrics.imported.WithLabelValues("updated").Add(float64(res.Updated))
	s.metrics.imported.WithLabelValues("unchanged").Add(float64(res.Unchanged))
	s.log.Info("contacts import", "format", format, "number", sess.Number, "created", res.Created, "updated", res.Updated, "unchanged", res.Unchanged)
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, r, http.StatusOK, res)
}

// vcardError maps a decoding failure to its answer: 413 for size, 400 for
// syntax, 422 for a card that parses but is not a valid contact; each names
// the card, line and property.
func (s *Service) vcardError(err error) error {
	if errors.Is(err, addressbook.ErrTooLarge) {
		return s.errTooLarge()
	}
	if errors.Is(err, addressbook.ErrTooManyCards) {
		return &apiError{status: http.StatusRequestEntityTooLarge, code: "too_many_cards",
			msg: fmt.Sprintf("the file holds more than %d cards, the most one address book holds", s.cfg.MaxContacts)}
	}
	ve, ok := errors.AsType[*addressbook.Error](err)
	if !ok {
		return err
	}
	ae := &apiError{status: http.StatusUnprocessableEntity, code: "invalid_vcard", msg: err.Error(),
		card: ve.Card, line: ve.Line, property: ve.Property}
	if errors.Is(err, addressbook.ErrSyntax) {
		ae.status = http.StatusBadRequest
	}
	return ae
}

// sameContent reports whether an import would change nothing a person
// sees (the card's REV is the other side's bookkeeping, not ours).
func sameContent(a, b store.Contact) bool {
	return a.UID == b.UID && a.Name == b.Name && a.GivenName == b.GivenName && a.FamilyName == b.FamilyName &&
		a.Number == b.Number && a.Email == b.Email && a.Organization == b.Organization && a.Note == b.Note &&
		a.Favorite == b.Favorite && slices.Equal(a.Phones, b.Phones)
}
