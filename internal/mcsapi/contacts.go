package mcsapi

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"time"

	"github.com/z5vrs/z5/internal/addressbook"
	"github.com/z5vrs/z5/internal/clip"
	"github.com/z5vrs/z5/internal/httpcond"
	"github.com/z5vrs/z5/internal/store"
)

// contactJSON is a contact on the wire. id, version and updated_at are the
// server's: ignored when creating, and on PUT id must match the URL.
type contactJSON struct {
	ID           string      `json:"id"`
	UID          string      `json:"uid"`
	Name         string      `json:"name"`
	GivenName    string      `json:"given_name"`
	FamilyName   string      `json:"family_name"`
	Number       string      `json:"number"`
	Phones       []phoneJSON `json:"phones"`
	Email        string      `json:"email"`
	Organization string      `json:"organization"`
	Note         string      `json:"note"`
	Favorite     bool        `json:"favorite"`
	Version      int64       `json:"version"`
	UpdatedAt    time.Time   `json:"updated_at"`
}

type phoneJSON struct {
	Type   string `json:"type"`
	Number string `json:"number"`
}

type listJSON struct {
	Contacts []contactJSON `json:"contacts"`
	Rev      int64         `json:"rev"`
}

func toJSON(c store.Contact) contactJSON {
	out := contactJSON{
		ID: c.ID, UID: c.UID, Name: c.Name, GivenName: c.GivenName, FamilyName: c.FamilyName,
		Number: c.Number, Phones: make([]phoneJSON, len(c.Phones)), Email: c.Email,
		Organization: c.Organization, Note: c.Note, Favorite: c.Favorite, Version: c.Version,
		UpdatedAt: c.UpdatedAt.UTC(),
	}
	for i, p := range c.Phones {
		out.Phones[i] = phoneJSON(p)
	}
	return out
}

// fromJSON is the writable part of a contact, normalized.
func fromJSON(in contactJSON, owner string) store.Contact {
	c := store.Contact{
		Owner: owner, UID: in.UID, Name: in.Name, GivenName: in.GivenName, FamilyName: in.FamilyName,
		Number: in.Number, Email: in.Email, Organization: in.Organization, Note: in.Note, Favorite: in.Favorite,
	}
	for _, p := range in.Phones {
		c.Phones = append(c.Phones, store.Phone(p))
	}
	return addressbook.Normalize(c)
}

// invalid turns a contact's validation failure into 422 with one entry per
// field.
func invalid(err error) error {
	return unprocessable[addressbook.Invalid](err, "invalid_contact", func(fe *addressbook.FieldError) fieldJSON {
		return fieldJSON{Field: fe.Field, Message: fe.Msg}
	})
}

func (s *Service) errBookFull() *apiError {
	return &apiError{status: http.StatusConflict, code: "book_full",
		msg: fmt.Sprintf("address book full (%d contacts); delete some before adding more", s.cfg.MaxContacts)}
}

func errNoContact(id string) *apiError {
	return &apiError{status: http.StatusNotFound, code: "not_found",
		msg: fmt.Sprintf("no contact %q in this address book", clip.String(id, 64))}
}

// contactID is the {id} of the URL; store IDs are at most 255 bytes.
func contactID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if id == "" || len(id) > 255 {
		return "", errNoContact(id)
	}
	return id, nil
}

// bookRev is the book's current revision. Read before the contacts: a
// write in between then makes the ETag older than the body, never newer,
// so a client can never be told "not modified" about a change it missed.
func (s *Service) bookRev(r *http.Request, owner string) (int64, error) {
	_, rev, err := s.store.ContactChanges(r.Context(), owner, math.MaxInt64)
	if err != nil {
		return 0, fmt.Errorf("book rev of %s: %w", owner, err)
	}
	return rev, nil
}

func (s *Service) handleListContacts(w http.ResponseWriter, r *http.Request, sess store.Session) error {
	b, err := s.loadBook(w, r, sess.Number, bookETag)
	if b == nil {
		return err
	}
	out := listJSON{Contacts: make([]contactJSON, len(b.contacts)), Rev: b.rev}
	for i, c := range b.contacts {
		out.Contacts[i] = toJSON(c)
	}
	w.Header().Set("ETag", b.etag)
	return writeJSON(w, r, http.StatusOK, out)
}

func (s *Service) handleCreateContact(w http.ResponseWriter, r *http.Request, sess store.Session) error {
	var in contactJSON
	if err := s.readJSON(w, r, &in); err != nil {
		return err
	}
	c := fromJSON(in, sess.Number)
	if err := addressbook.Validate(c); err != nil {
		return invalid(err)
	}
	created, err := s.store.CreateContact(r.Context(), c, s.cfg.MaxContacts)
	switch {
	case errors.Is(err, store.ErrLimit):
		return s.errBookFull()
	case errors.Is(err, store.ErrExists):
		return &apiError{status: http.StatusConflict, code: "uid_taken",
			msg: fmt.Sprintf("a contact with uid %q is already in the book; change that one with PUT, or leave uid empty", clip.String(c.UID, 80))}
	case err != nil:
		return fmt.Errorf("create contact in %s: %w", sess.Number, err)
	}
	w.Header().Set("Location", PathContacts+"/"+url.PathEscape(created.ID))
	w.Header().Set("ETag", httpcond.VersionETag(created.Version))
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, r, http.StatusCreated, toJSON(created))
}

func (s *Service) handleGetContact(w http.ResponseWriter, r *http.Request, sess store.Session) error {
	id, err := contactID(r)
	if err != nil {
		return err
	}
	c, err := s.contact(r, sess.Number, id)
	if err != nil {
		return err
	}
	etag := httpcond.VersionETag(c.Version)
	w.Header().Set("Cache-Control", "private, no-cache")
	if !httpcond.NoneMatch(r, etag) {
		return notModified(w, etag)
	}
	w.Header().Set("ETag", etag)
	return writeJSON(w, r, http.StatusOK, toJSON(c))
}

func (s *Service) contact(r *http.Request, owner, id string) (store.Contact, error) {
	c, err := s.store.Contact(r.Context(), owner, id)
	if errors.Is(err, store.ErrNotFound) {
		return c, errNoContact(id)
	}
	if err != nil {
		return c, fmt.Errorf("contact %s/%s: %w", owner, id, err)
	}
	return c, nil
}

// precondition checks If-Match against the current contact and returns
// the version the write must still find (0 for "*": any). Comparison is
// strong (RFC 9110 13.1.1): a weak tag never matches.
func precondition(header string, cur store.Contact) (int64, error) {
	tags, star, err := httpcond.ParseETags(header)
	if err != nil {
		return 0, badRequest("invalid_if_match", "If-Match: %v", err)
	}
	if star {
		return 0, nil
	}
	etag := httpcond.VersionETag(cur.Version)
	for _, t := range tags {
		if t == etag {
			return cur.Version, nil
		}
	}
	return 0, errStale(cur)
}

func errStale(cur store.Contact) *apiError {
	etag := httpcond.VersionETag(cur.Version)
	return &apiError{status: http.StatusPreconditionFailed, code: "precondition_failed", etag: etag,
		msg: fmt.Sprintf("contact %q changed since you read it (now version %d, ETag %s); fetch it, reapply your change and retry", clip.String(cur.ID, 64), cur.Version, etag)}
}

// conflict answers a write that lost a race after its precondition held:
// 412 with the version that won, or 404 when the contact went away.
func (s *Service) conflict(r *http.Request, owner, id string) error {
	cur, err := s.contact(r, owner, id)
	if err != nil {
		return err
	}
	return errStale(cur)
}

func (s *Service) handlePutContact(w http.ResponseWriter, r *http.Request, sess store.Session) error {
	id, err := contactID(r)
	if err != nil {
		return err
	}
	im := r.Header.Get("If-Match")
	if im == "" {
		return &apiError{status: http.StatusPreconditionRequired, code: "precondition_required",
			msg: "PUT needs If-Match with the ETag you read (e.g. If-Match: \"3\"), so no one else's change is overwritten"}
	}
	cur, err := s.contact(r, sess.Number, id)
	if err != nil {
		return err
	}
	ifVersion, err := precondition(im, cur)
	if err != nil {
		return err
	}
	var in contactJSON
	if err := s.readJSON(w, r, &in); err != nil {
		return err
	}
	if in.ID != "" && in.ID != id {
		return badRequest("id_mismatch", "the body's id %q is not the URL's %q", clip.String(in.ID, 64), clip.String(id, 64))
	}
	c := fromJSON(in, sess.Number)
	c.ID = id
	verr := addressbook.Validate(c)
	if c.UID == "" {
		c.UID = cur.UID // a client that does not know UIDs keeps it
	} else if c.UID != cur.UID {
		inv, _ := errors.AsType[addressbook.Invalid](verr)
		verr = append(addressbook.Invalid{{Field: "uid", Msg: fmt.Sprintf("cannot change (it is %q); create a new contact instead", clip.String(cur.UID, 80))}}, inv...)
	}
	if verr != nil {
		return invalid(verr)
	}
	updated, err := s.store.UpdateContact(r.Context(), c, ifVersion)
	switch {
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
		return s.conflict(r, sess.Number, id)
	case err != nil:
		return fmt.Errorf("update contact %s/%s: %w", sess.Number, id, err)
	}
	w.Header().Set("ETag", httpcond.VersionETag(updated.Version))
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, r, http.StatusOK, toJSON(updated))
}

func (s *Service) handleDeleteContact(w http.ResponseWriter, r *http.Request, sess store.Session) error {
	id, err := contactID(r)
	if err != nil {
		return err
	}
	var ifVersion int64
	if im := r.Header.Get("If-Match"); im != "" {
		cur, err := s.contact(r, sess.Number, id)
		if err != nil {
			return err
		}
		if ifVersion, err = precondition(im, cur); err != nil {
			return err
		}
	}
	err = s.store.DeleteContact(r.Context(), sess.Number, id, ifVersion)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errNoContact(id)
	case errors.Is(err, store.ErrConflict):
		return s.conflict(r, sess.Number, id)
	case err != nil:
		return fmt.Errorf("delete contact %s/%s: %w", sess.Number, id, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
