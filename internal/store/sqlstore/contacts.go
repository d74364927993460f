package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"
	"unicode"

	"github.com/z5vrs/z5/internal/store"
)

// dbPhone is the stored JSON form of a store.Phone; explicit tags keep the
// stored format independent of Go field names.
type dbPhone struct {
	Type   string `json:"type"`
	Number string `json:"number"`
}

// phonesJSON encodes phones for a JSON column; none is NULL.
func phonesJSON(ps []store.Phone) (any, error) {
	return listJSON(ps, func(p store.Phone) dbPhone { return dbPhone(p) })
}

func phonesFromJSON(b []byte) ([]store.Phone, error) {
	ps, err := listFromJSON(b, func(p dbPhone) store.Phone { return store.Phone(p) })
	if err != nil {
		return nil, fmt.Errorf("decode phones: %w", err)
	}
	return ps, nil
}

const contactCols = `owner, id, uid, name, given_name, family_name, number, phones, email, organization, note,
	favorite, version, rev, updated_at`

func scanContact(sc scanner) (store.Contact, error) {
	var c store.Contact
	var phones []byte
	err := sc.Scan(&c.Owner, &c.ID, &c.UID, &c.Name, &c.GivenName, &c.FamilyName, &c.Number, &phones,
		&c.Email, &c.Organization, &c.Note, &c.Favorite, &c.Version, &c.Rev, timeCol{&c.UpdatedAt})
	if err != nil {
		return store.Contact{}, err
	}
	c.Phones, err = phonesFromJSON(phones)
	return c, err
}

// checkContactID accepts IDs that can stand as one URL path segment after
// escaping: no slash, no control or space characters, at most 255 bytes.
func checkContactID(id string) error {
	if id == "" || len(id) > 255 {
		return fmt.Errorf("contact id %q: want 1 to 255 bytes", id)
	}
	for _, r := range id {
		if r == '/' || r == '\\' || unicode.IsControl(r) || unicode.IsSpace(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("contact id %q: character %q not allowed", id, r)
		}
	}
	return nil
}

// nextRev bumps and returns the book's revision. Every contact write calls
// it first: the row it writes is the book's lock, held to COMMIT, so writes
// to one book are serialized across nodes and Revs are handed out in commit
// order (a sync-collection reader that sees rev N sees every change up to
// N); a rollback undoes the bump, so there are no gaps either. The lock is
// also why the contact limit holds under concurrent creators.
func nextRev(ctx context.Context, tx *sql.Tx, owner string) (int64, error) {
	var rev int64
	err := tx.QueryRowContext(ctx, `INSERT INTO book_revs (owner, rev) VALUES ($1, 1)
		ON CONFLICT (owner) DO UPDATE SET rev = book_revs.rev + 1 RETURNING rev`, owner).Scan(&rev)
	return rev, err
}

// ListContacts returns the contacts of owner's book in ID order.
func (s *Store) ListContacts(ctx context.Context, owner string) ([]store.Contact, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+contactCols+` FROM contacts WHERE owner = $1 ORDER BY id`, owner)
	cs, err := collect(rows, err, scanContact)
	if err != nil {
		return nil, s.readErr("list contacts of "+owner, err)
	}
	return cs, nil
}

// Contact returns one contact, or store.ErrNotFound.
func (s *Store) Contact(ctx context.Context, owner, id string) (store.Contact, error) {
	c, err := scanContact(s.read.QueryRowContext(ctx, `SELECT `+contactCols+` FROM contacts WHERE owner = $1 AND id = $2`, owner, id))
	if err != nil {
		return store.Contact{}, s.readErr(fmt.Sprintf("contact %s/%s", owner, id), err)
	}
	return c, nil
}

// CreateContact adds c to its owner's book. It assigns a random ID and a
// urn:uuid UID when they are empty, Version 1, the next Rev and UpdatedAt.
// An ID or UID already in the book is store.ErrExists; a book holding
// maxContacts entries is store.ErrLimit (maxContacts <= 0: no limit).
func (s *Store) CreateContact(ctx context.Context, c store.Contact, maxContacts int) (store.Contact, error) {
	if c.Owner == "" {
		return store.Contact{}, s.errorf("create contact: empty owner")
	}
	if c.ID == "" {
		c.ID = newID()
	}
	if err := checkContactID(c.ID); err != nil {
		return store.Contact{}, s.errorf("create contact in %s: %w", c.Owner, err)
	}
	if c.UID == "" {
		c.UID = newUID()
	}
	phones, err := phonesJSON(c.Phones)
	if err != nil {
		return store.Contact{}, s.errorf("create contact %s/%s: %w", c.Owner, c.ID, err)
	}
	c.Version, c.UpdatedAt = 1, s.d.Round(time.Now().UTC())
	err = s.update(ctx, fmt.Sprintf("create contact %s/%s", c.Owner, c.ID), func(tx *sql.Tx) error {
		var err error
		// The book's lock first: the count below then sees every create
		// that committed before, so concurrent creators cannot overshoot.
		if c.Rev, err = nextRev(ctx, tx, c.Owner); err != nil {
			return err
		}
		if maxContacts > 0 {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM contacts WHERE owner = $1`, c.Owner).Scan(&n); err != nil {
				return err
			}
			if n >= maxContacts {
				return fmt.Errorf("%w: book holds %d of %d contacts", store.ErrLimit, n, maxContacts)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO contacts (`+contactCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
			c.Owner, c.ID, c.UID, c.Name, c.GivenName, c.FamilyName, c.Number, phones, c.Email, c.Organization,
			c.Note, c.Favorite, c.Version, c.Rev, s.d.Time(c.UpdatedAt)); err != nil {
			return err
		}
		// A contact created again under a deleted ID is live again.
		_, err = tx.ExecContext(ctx, `DELETE FROM contact_tombstones WHERE owner = $1 AND id = $2`, c.Owner, c.ID)
		return err
	})
	if err != nil {
		return store.Contact{}, err
	}
	return c, nil
}

// currentVersion reads and locks a contact inside tx and checks its version
// against ifVersion (0: any), so check and write are atomic.
func (s *Store) currentVersion(ctx context.Context, tx *sql.Tx, owner, id string, ifVersion int64) (version int64, uid string, err error) {
	err = tx.QueryRowContext(ctx, `SELECT version, uid FROM contacts WHERE owner = $1 AND id = $2`+s.d.ForUpdate,
		owner, id).Scan(&version, &uid)
	if err != nil {
		return 0, "", err
	}
	if ifVersion != 0 && ifVersion != version {
		return 0, "", fmt.Errorf("%w: version is %d, not %d", store.ErrConflict, version, ifVersion)
	}
	return version, uid, nil
}

// UpdateContact replaces every field of the contact (Owner, ID) when its
// Version equals ifVersion (0: unconditional), bumping Version and Rev. An
// empty UID keeps the stored one.
func (s *Store) UpdateContact(ctx context.Context, c store.Contact, ifVersion int64) (store.Contact, error) {
	phones, err := phonesJSON(c.Phones)
	if err != nil {
		return store.Contact{}, s.errorf("update contact %s/%s: %w", c.Owner, c.ID, err)
	}
	c.UpdatedAt = s.d.Round(time.Now().UTC())
	keepUID := c.UID == ""
	err = s.update(ctx, fmt.Sprintf("update contact %s/%s", c.Owner, c.ID), func(tx *sql.Tx) error {
		var err error
		if c.Rev, err = nextRev(ctx, tx, c.Owner); err != nil {
			return err
		}
		version, uid, err := s.currentVersion(ctx, tx, c.Owner, c.ID, ifVersion)
		if err != nil {
			return err
		}
		if keepUID {
			c.UID = uid
		}
		c.Version = version + 1
		_, err = tx.ExecContext(ctx, `UPDATE contacts SET uid = $1, name = $2, given_name = $3, family_name = $4,
			number = $5, phones = $6, email = $7, organization = $8, note = $9, favorite = $10, version = $11,
			rev = $12, updated_at = $13 WHERE owner = $14 AND id = $15`,
			c.UID, c.Name, c.GivenName, c.FamilyName, c.Number, phones, c.Email, c.Organization, c.Note,
			c.Favorite, c.Version, c.Rev, s.d.Time(c.UpdatedAt), c.Owner, c.ID)
		return err
	})
	if err != nil {
		return store.Contact{}, err
	}
	return c, nil
}

// DeleteContact removes a contact when its Version equals ifVersion (0:
// unconditional) and leaves a tombstone in the change log.
func (s *Store) DeleteContact(ctx context.Context, owner, id string, ifVersion int64) error {
	return s.update(ctx, fmt.Sprintf("delete contact %s/%s", owner, id), func(tx *sql.Tx) error {
		rev, err := nextRev(ctx, tx, owner)
		if err != nil {
			return err
		}
		if _, _, err := s.currentVersion(ctx, tx, owner, id, ifVersion); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM contacts WHERE owner = $1 AND id = $2`, owner, id); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO contact_tombstones (owner, id, rev) VALUES ($1, $2, $3)
			ON CONFLICT (owner, id) DO UPDATE SET rev = excluded.rev`, owner, id, rev)
		return err
	})
}

// ContactChanges returns, in Rev order, each contact created, updated or
// deleted after sinceRev (one entry per ID, its latest state) and the
// book's current rev, read from one snapshot.
func (s *Store) ContactChanges(ctx context.Context, owner string, sinceRev int64) ([]store.ContactChange, int64, error) {
	var changes []store.ContactChange
	var rev int64
	err := InTx(ctx, s.read, &s.d.Snapshot, func(tx *sql.Tx) error {
		var err error
		changes, rev, err = contactChanges(ctx, tx, owner, sinceRev)
		return err
	})
	if err != nil {
		return nil, 0, s.readErr(fmt.Sprintf("contact changes of %s since %d", owner, sinceRev), err)
	}
	return changes, rev, nil
}

func contactChanges(ctx context.Context, tx *sql.Tx, owner string, sinceRev int64) ([]store.ContactChange, int64, error) {
	var rev int64
	err := tx.QueryRowContext(ctx, `SELECT rev FROM book_revs WHERE owner = $1`, owner).Scan(&rev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, 0, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+contactCols+` FROM contacts WHERE owner = $1 AND rev > $2`, owner, sinceRev)
	live, err := collect(rows, err, scanContact)
	if err != nil {
		return nil, 0, err
	}
	rows, err = tx.QueryContext(ctx, `SELECT id, rev FROM contact_tombstones WHERE owner = $1 AND rev > $2`, owner, sinceRev)
	dead, err := collect(rows, err, func(sc scanner) (store.ContactChange, error) {
		ch := store.ContactChange{Deleted: true}
		return ch, sc.Scan(&ch.ID, &ch.Rev)
	})
	if err != nil {
		return nil, 0, err
	}
	changes := dead
	for _, c := range live {
		changes = append(changes, store.ContactChange{ID: c.ID, Contact: c, Rev: c.Rev})
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].Rev < changes[j].Rev })
	return changes, rev, nil
}
