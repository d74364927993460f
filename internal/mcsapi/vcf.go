package mcsapi

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/z5vrs/z5/internal/addressbook"
	"github.com/z5vrs/z5/internal/store"
)

// vCard media types accepted on import: RFC 6350's, the older x- form and
// vCard 3.0's text/directory, as other software labels its exports.
var vcardTypes = []string{"text/vcard", "text/x-vcard", "text/directory"}

type importJSON struct {
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
}

// handleExport sends the whole book as vCard 4.0.
func (s *Service) handleExport(w http.ResponseWriter, r *http.Request, sess store.Session) error {
	rev, err := s.bookRev(r, sess.Number)
	if err != nil {
		return err
	}
	// Not the JSON list's tag: a strong ETag names one representation.
	etag := `"rev-` + strconv.FormatInt(rev, 10) + `-vcf"`
	w.Header().Set("Cache-Control", "private, no-cache")
	if !noneMatch(r, etag) {
		return notModified(w, etag)
	}
	cs, err := s.store.ListContacts(r.Context(), sess.Number)
	if err != nil {
		return fmt.Errorf("list contacts of %s: %w", sess.Number, err)
	}
	var buf bytes.Buffer
	if err := addressbook.Encode(&buf, cs); err != nil {
		return fmt.Errorf("export %s: %w", sess.Number, err)
	}
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Content-Type", addressbook.ContentType)
	h.Set("Content-Disposition", `attachment; filename="`+sess.Number+`.vcf"`)
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
	return nil
}

// handleImport merges vCards into the book by UID: a card whose UID is in
// the book updates that contact, any other card is created. Every card is
// checked, and the book's limit too, before anything is written.
func (s *Service) handleImport(w http.ResponseWriter, r *http.Request, sess store.Session) error {
	body, err := s.readBody(w, r, vcardTypes...)
	if err != nil {
		return err
	}
	cards, err := addressbook.Decode(bytes.NewReader(body), s.cfg.MaxContacts, s.cfg.MaxBody)
	if err != nil {
		return s.vcardError(err)
	}
	return s.importContacts(w, r, sess, cards, "vcard")
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
					msg: fmt.Sprintf("card %d: a contact with UID %q was added while importing", i+1, clip(c.UID, 80))})
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
				msg: fmt.Sprintf("card %d: contact %q (UID %q) changed while importing", i+1, clip(ex.Name, 64), clip(c.UID, 80))})
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
