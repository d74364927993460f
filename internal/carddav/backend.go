package carddav

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"

	"github.com/emersion/go-vcard"
	webdavcarddav "github.com/emersion/go-webdav/carddav"

	"github.com/z5vrs/z5/internal/addressbook"
	"github.com/z5vrs/z5/internal/clip"
	"github.com/z5vrs/z5/internal/httpcond"
	"github.com/z5vrs/z5/internal/store"
)

// Backend is go-webdav's carddav.Backend over the store's contacts: the number in
// the request context (WithOwner) owns one book, BookPath(number). Paths
// are URL paths as in requests. Errors carry their HTTP status.
type Backend struct {
	store       Store
	maxContacts int
	maxSize     int64
}

var _ webdavcarddav.Backend = (*Backend)(nil)

// NewBackend serves st's address books; maxContacts bounds a book and
// maxSize is the advertised CARDDAV:max-resource-size.
func NewBackend(st Store, maxContacts int, maxSize int64) *Backend {
	return &Backend{store: st, maxContacts: maxContacts, maxSize: maxSize}
}

func (b *Backend) owner(ctx context.Context) (string, error) {
	n, ok := OwnerFrom(ctx)
	if !ok {
		return "", &davError{status: http.StatusUnauthorized, msg: "no logged-in number"}
	}
	return n, nil
}

// resolve parses path and checks that it is the owner's resource of kind k.
func (b *Backend) resolve(ctx context.Context, path string, k kind) (resource, error) {
	owner, err := b.owner(ctx)
	if err != nil {
		return resource{}, err
	}
	res, ok := parsePath(path)
	if !ok || res.kind != k {
		return resource{}, notFound("no such resource %s", clip.String(path, 80))
	}
	if res.owner != owner {
		return resource{}, &davError{status: http.StatusForbidden, msg: fmt.Sprintf("%s is not %s's", clip.String(path, 80), owner)}
	}
	return res, nil
}

// CurrentUserPrincipal implements webdav.UserPrincipalBackend.
func (b *Backend) CurrentUserPrincipal(ctx context.Context) (string, error) {
	owner, err := b.owner(ctx)
	if err != nil {
		return "", err
	}
	return PrincipalPath(owner), nil
}

// AddressBookHomeSetPath is the owner's home set.
func (b *Backend) AddressBookHomeSetPath(ctx context.Context) (string, error) {
	owner, err := b.owner(ctx)
	if err != nil {
		return "", err
	}
	return HomePath(owner), nil
}

func (b *Backend) book(owner string) webdavcarddav.AddressBook {
	return webdavcarddav.AddressBook{
		Path:            BookPath(owner),
		Name:            "Contacts",
		Description:     "Address book of " + owner,
		MaxResourceSize: b.maxSize,
		SupportedAddressData: []webdavcarddav.AddressDataType{
			{ContentType: vcard.MIMEType, Version: "3.0"},
			{ContentType: vcard.MIMEType, Version: "4.0"},
		},
	}
}

// ListAddressBooks returns the owner's one book.
func (b *Backend) ListAddressBooks(ctx context.Context) ([]webdavcarddav.AddressBook, error) {
	owner, err := b.owner(ctx)
	if err != nil {
		return nil, err
	}
	return []webdavcarddav.AddressBook{b.book(owner)}, nil
}

// GetAddressBook returns the book at path.
func (b *Backend) GetAddressBook(ctx context.Context, path string) (*webdavcarddav.AddressBook, error) {
	res, err := b.resolve(ctx, path, kindBook)
	if err != nil {
		return nil, err
	}
	ab := b.book(res.owner)
	return &ab, nil
}

// CreateAddressBook is refused: a number has exactly one book.
func (b *Backend) CreateAddressBook(ctx context.Context, ab *webdavcarddav.AddressBook) error {
	return &davError{status: http.StatusForbidden, msg: "each number has exactly one address book; no other can be made"}
}

// DeleteAddressBook is refused: delete the contacts instead.
func (b *Backend) DeleteAddressBook(ctx context.Context, path string) error {
	return &davError{status: http.StatusForbidden, msg: "the address book itself cannot be deleted; delete its contacts instead"}
}

func (b *Backend) object(c store.Contact) webdavcarddav.AddressObject {
	return webdavcarddav.AddressObject{
		Path:    ObjectPath(c.Owner, c.ID),
		ModTime: c.UpdatedAt,
		ETag:    strconv.FormatInt(c.Version, 10),
		Card:    addressbook.ToVCard(c),
	}
}

// contact reads one contact, 404 when it is not there.
func (b *Backend) contact(ctx context.Context, owner, id string) (store.Contact, error) {
	c, err := b.store.Contact(ctx, owner, id)
	if errors.Is(err, store.ErrNotFound) {
		return c, notFound("no contact %q in this address book", clip.String(id, 64))
	}
	if err != nil {
		return c, fmt.Errorf("contact %s/%s: %w", owner, id, err)
	}
	return c, nil
}

// GetAddressObject returns the contact at path as a vCard 4.0 card.
func (b *Backend) GetAddressObject(ctx context.Context, path string, req *webdavcarddav.AddressDataRequest) (*webdavcarddav.AddressObject, error) {
	res, err := b.resolve(ctx, path, kindObject)
	if err != nil {
		return nil, err
	}
	c, err := b.contact(ctx, res.owner, res.id)
	if err != nil {
		return nil, err
	}
	ao := b.object(c)
	return &ao, nil
}

// ListAddressObjects returns every contact of the book at path.
func (b *Backend) ListAddressObjects(ctx context.Context, path string, req *webdavcarddav.AddressDataRequest) ([]webdavcarddav.AddressObject, error) {
	res, err := b.resolve(ctx, path, kindBook)
	if err != nil {
		return nil, err
	}
	cs, err := b.store.ListContacts(ctx, res.owner)
	if err != nil {
		return nil, fmt.Errorf("list contacts of %s: %w", res.owner, err)
	}
	out := make([]webdavcarddav.AddressObject, len(cs))
	for i, c := range cs {
		out[i] = b.object(c)
	}
	return out, nil
}

// QueryAddressObjects returns the contacts of the book at path that match
// query (RFC 6352 section 10.5), at most query.Limit of them.
func (b *Backend) QueryAddressObjects(ctx context.Context, path string, query *webdavcarddav.AddressBookQuery) ([]webdavcarddav.AddressObject, error) {
	all, err := b.ListAddressObjects(ctx, path, nil)
	if err != nil {
		return nil, err
	}
	out, _, err := filterObjects(query, all)
	return out, err
}

// PutAddressObject stores card at path, honouring If-Match and
// If-None-Match (no lost updates).
func (b *Backend) PutAddressObject(ctx context.Context, path string, card vcard.Card, opts *webdavcarddav.PutAddressObjectOptions) (*webdavcarddav.AddressObject, error) {
	res, err := b.resolve(ctx, path, kindObject)
	if err != nil {
		return nil, err
	}
	var cond conditions
	if opts != nil {
		cond = conditions{ifMatch: string(opts.IfMatch), ifNoneMatch: string(opts.IfNoneMatch)}
	}
	c, _, err := b.putCard(ctx, res, card, cond)
	if err != nil {
		return nil, err
	}
	ao := b.object(c)
	return &ao, nil
}

// DeleteAddressObject deletes the contact at path unconditionally.
func (b *Backend) DeleteAddressObject(ctx context.Context, path string) error {
	res, err := b.resolve(ctx, path, kindObject)
	if err != nil {
		return err
	}
	return b.deleteContact(ctx, res, "")
}

// conditions are a request's If-Match and If-None-Match headers.
type conditions struct {
	ifMatch, ifNoneMatch string
}

// putCard maps card to a contact and writes it at res: created when the
// resource did not exist.
func (b *Backend) putCard(ctx context.Context, res resource, card vcard.Card, cond conditions) (store.Contact, bool, error) {
	c, err := addressbook.FromVCard(card)
	if err != nil {
		msg := err.Error()
		if pe, ok := errors.AsType[*addressbook.PropertyError](err); ok && pe.Property == "" {
			msg = pe.Err.Error()
		}
		return c, false, &davError{status: http.StatusForbidden, cond: condValidData,
			msg: "the vCard is not a contact this address book can hold: " + msg}
	}
	c.Owner, c.ID = res.owner, res.id

	cur, err := b.store.Contact(ctx, res.owner, res.id)
	exists := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return c, false, fmt.Errorf("contact %s/%s: %w", res.owner, res.id, err)
	}
	etag := ""
	if exists {
		etag = httpcond.VersionETag(cur.Version)
	}
	if cond.ifNoneMatch != "" {
		tags, star, err := httpcond.ParseETags(cond.ifNoneMatch)
		if err != nil {
			return c, false, badRequest("If-None-Match: %v", err)
		}
		if exists && (star || httpcond.MatchWeak(tags, etag)) {
			return c, false, errPrecondition("the contact already exists (ETag %s); fetch it and PUT with If-Match to change it", etag)
		}
	}
	var ifVersion int64
	if cond.ifMatch != "" {
		tags, star, err := httpcond.ParseETags(cond.ifMatch)
		if err != nil {
			return c, false, badRequest("If-Match: %v", err)
		}
		if !exists {
			return c, false, errPrecondition("If-Match: there is no contact %q (deleted meanwhile?)", clip.String(res.id, 64))
		}
		if !star && !slices.Contains(tags, etag) {
			return c, false, errPrecondition("the contact changed since you read it (now ETag %s); fetch it, reapply your change and retry", etag)
		}
		ifVersion = cur.Version
	}

	if !exists {
		created, err := b.store.CreateContact(ctx, c, b.maxContacts)
		switch {
		case errors.Is(err, store.ErrLimit):
			return c, false, &davError{status: http.StatusInsufficientStorage, cond: condQuota,
				msg: fmt.Sprintf("address book full (%d contacts); delete some before adding more", b.maxContacts)}
		case errors.Is(err, store.ErrExists):
			return c, false, b.createConflict(ctx, res, c.UID)
		case err != nil:
			return c, false, fmt.Errorf("create contact %s/%s: %w", res.owner, res.id, err)
		}
		return created, true, nil
	}

	if c.UID == "" {
		c.UID = cur.UID // a card without UID keeps the contact's
	} else if c.UID != cur.UID {
		return c, false, &davError{status: http.StatusConflict, cond: condNoUIDConflict, href: ObjectPath(res.owner, res.id),
			msg: fmt.Sprintf("a contact's UID cannot change (it is %q); create a new resource for another UID", clip.String(cur.UID, 80))}
	}
	updated, err := b.store.UpdateContact(ctx, c, ifVersion)
	switch {
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
		if cond.ifMatch != "" {
			return c, false, errPrecondition("the contact changed while you wrote it; fetch it, reapply your change and retry")
		}
		return c, false, &davError{status: http.StatusConflict, msg: "the contact changed while you wrote it; retry"}
	case errors.Is(err, store.ErrExists):
		return c, false, b.createConflict(ctx, res, c.UID)
	case err != nil:
		return c, false, fmt.Errorf("update contact %s/%s: %w", res.owner, res.id, err)
	}
	return updated, false, nil
}

// createConflict explains a create the store refused as existing: the
// resource was created meanwhile, or another contact has the UID.
func (b *Backend) createConflict(ctx context.Context, res resource, uid string) error {
	if _, err := b.store.Contact(ctx, res.owner, res.id); err == nil {
		return errPrecondition("contact %q was created meanwhile by someone else; fetch it and PUT with If-Match", clip.String(res.id, 64))
	}
	cs, err := b.store.ListContacts(ctx, res.owner)
	if err != nil {
		return fmt.Errorf("list contacts of %s: %w", res.owner, err)
	}
	for _, o := range cs {
		if o.UID == uid {
			return &davError{status: http.StatusConflict, cond: condNoUIDConflict, href: ObjectPath(o.Owner, o.ID),
				msg: fmt.Sprintf("another contact in this book already has UID %q; change that one instead", clip.String(uid, 80))}
		}
	}
	return &davError{status: http.StatusConflict, msg: "the contact conflicts with one written meanwhile; retry"}
}

// deleteContact deletes res, guarded by an If-Match header when given.
func (b *Backend) deleteContact(ctx context.Context, res resource, ifMatch string) error {
	var ifVersion int64
	if ifMatch != "" {
		tags, star, err := httpcond.ParseETags(ifMatch)
		if err != nil {
			return badRequest("If-Match: %v", err)
		}
		cur, err := b.store.Contact(ctx, res.owner, res.id)
		if errors.Is(err, store.ErrNotFound) {
			return errPrecondition("If-Match: there is no contact %q (deleted meanwhile?)", clip.String(res.id, 64))
		}
		if err != nil {
			return fmt.Errorf("contact %s/%s: %w", res.owner, res.id, err)
		}
		if !star && !slices.Contains(tags, httpcond.VersionETag(cur.Version)) {
			return errPrecondition("the contact changed since you read it (now ETag %s); fetch it and decide again", httpcond.VersionETag(cur.Version))
		}
		ifVersion = cur.Version
	}
	err := b.store.DeleteContact(ctx, res.owner, res.id, ifVersion)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if ifMatch != "" {
			return errPrecondition("the contact was deleted meanwhile")
		}
		return notFound("no contact %q in this address book", clip.String(res.id, 64))
	case errors.Is(err, store.ErrConflict):
		return errPrecondition("the contact changed while you deleted it; fetch it and decide again")
	case err != nil:
		return fmt.Errorf("delete contact %s/%s: %w", res.owner, res.id, err)
	}
	return nil
}

// bookRev is the owner's book revision: the sync token's number and the
// CTag.
func (b *Backend) bookRev(ctx context.Context, owner string) (int64, error) {
	_, rev, err := b.store.ContactChanges(ctx, owner, math.MaxInt64)
	if err != nil {
		return 0, fmt.Errorf("book rev of %s: %w", owner, err)
	}
	return rev, nil
}

func errPrecondition(format string, args ...any) *davError {
	return &davError{status: http.StatusPreconditionFailed, msg: fmt.Sprintf(format, args...)}
}
