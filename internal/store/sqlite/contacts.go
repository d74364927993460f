package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"
	"unicode"

	"github.com/z5vrs/z5/internal/store"
)

// dbPhone is the stored JSON form of a store.Phone; explicit tags keep the
// file format independent of Go field names.
type dbPhone struct {
	Type   string `json:"type"`
	Number string `json:"number"`
}

func phonesJSON(ps []store.Phone) (any, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	out := make([]dbPhone, len(ps))
	for i, p := range ps {
		out[i] = dbPhone(p)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func phonesFromJSON(s sql.NullString) ([]store.Phone, error) {
	if !s.Valid || s.String == "" {
		return nil, nil
	}
	var in []dbPhone
	if err := json.Unmarshal([]byte(s.String), &in); err != nil {
		return nil, fmt.Errorf("decode phones: %w", err)
	}
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]store.Phone, len(in))
	for i, p := range in {
		out[i] = store.Phone(p)
	}
	return out, nil
}

const contactCols = `owner, id, uid, name, given_name, family_name, number, phones, email, organization, note,
	favorite, version, rev, updated_at`

func scanContact(sc scanner) (store.Contact, error) {
	var c store.Contact
	var phones sql.NullString
	var updated int64
	err := sc.Scan(&c.Owner, &c.ID, &c.UID, &c.Name, &c.GivenName, &c.FamilyName, &c.Number, &phones,
		&c.Email, &c.Organization, &c.Note, &c.Favorite, &c.Version, &c.Rev, &updated)
	if err != nil {
		return store.Contact{}, err
	}
	c.UpdatedAt = goTime(updated)
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

// nextRev bumps and returns the book's revision.
func nextRev(ctx context.Context, tx *sql.Tx, owner string) (int64, error) {
	var rev int64
	err := tx.QueryRowContext(ctx, `INSERT INTO book_revs (owner, rev) VALUES (?, 1)
		ON CONFLICT (owner) DO UPDATE SET rev = rev + 1 RETURNING rev`, owner).Scan(&rev)
	return rev, err
}

// ListContacts returns the contacts of owner's book in ID order.
func (s *Store) ListContacts(ctx context.Context, owner string) ([]store.Contact, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+contactCols+` FROM contacts WHERE owner = ? ORDER BY id`, owner)
	cs, err := collect(rows, err, scanContact)
	if err != nil {
		return nil, readErr("list contacts of "+owner, err)
	}
	return cs, nil
}

// Contact returns one contact, or store.ErrNotFound.
func (s *Store) Contact(ctx context.Context, owner, id string) (store.Contact, error) {
	c, err := scanContact(s.r.QueryRowContext(ctx, `SELECT `+contactCols+` FROM contacts WHERE owner = ? AND id = ?`, owner, id))
	if err != nil {
		return store.Contact{}, readErr(fmt.Sprintf("contact %s/%s", owner, id), err)
	}
	return c, nil
}

// CreateContact adds c to its owner's book. It assigns a random ID and a
// urn:uuid UID when they are empty, Version 1, the next Rev and UpdatedAt.
// An ID or UID already in the book is store.ErrExists; a book holding
// maxContacts entries is store.ErrLimit (maxContacts <= 0: no limit).
func (s *Store) CreateContact(ctx context.Context, c store.Contact, maxContacts int) (store.Contact, error) {
	if c.Owner == "" {
		return store.Contact{}, errors.New("sqlite: create contact: empty owner")
	}
	if c.ID == "" {
		c.ID = newID()
	}
	if err := checkContactID(c.ID); err != nil {
		return store.Contact{}, fmt.Errorf("sqlite: create contact in %s: %w", c.Owner, err)
	}
	if c.UID == "" {
		c.UID = newUID()
	}
	phones, err := phonesJSON(c.Phones)
	if err != nil {
		return store.Contact{}, fmt.Errorf("sqlite: create contact %s/%s: %w", c.Owner, c.ID, err)
	}
	c.Version, c.UpdatedAt = 1, time.Now().UTC()
	err = s.write(ctx, fmt.Sprintf("create contact %s/%s", c.Owner, c.ID), func(tx *sql.Tx) error {
		if maxContacts > 0 {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM contacts WHERE owner = ?`, c.Owner).Scan(&n); err != nil {
				return err
			}
			if n >= maxContacts {
				return fmt.Errorf("%w: book holds %d of %d contacts", store.ErrLimit, n, maxContacts)
			}
		}
		var err error
		if c.Rev, err = nextRev(ctx, tx, c.Owner); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO contacts (`+contactCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.Owner, c.ID, c.UID, c.Name, c.GivenName, c.FamilyName, c.Number, phones, c.Email, c.Organization,
			c.Note, boolInt(c.Favorite), c.Version, c.Rev, dbTime(c.UpdatedAt)); err != nil {
			return err
		}
		// A contact created again under a deleted ID is live again.
		_, err = tx.ExecContext(ctx, `DELETE FROM contact_tombstones WHERE owner = ? AND id = ?`, c.Owner, c.ID)
		return err
	})
	if err != nil {
		return store.Contact{}, err
	}
	return c, nil
}

// currentVersion reads a contact's version inside tx and checks it against
// ifVersion. Running in the write transaction makes check and write atomic.
func currentVersion(ctx context.Context, tx *sql.Tx, owner, id string, ifVersion int64) (version int64, uid string, err error) {
	err = tx.QueryRowContext(ctx, `SELECT version, uid FROM contacts WHERE owner = ? AND id = ?`, owner, id).Scan(&version, &uid)
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
		return store.Contact{}, fmt.Errorf("sqlite: update contact %s/%s: %w", c.Owner, c.ID, err)
	}
	c.UpdatedAt = time.Now().UTC()
	err = s.write(ctx, fmt.Sprintf("update contact %s/%s", c.Owner, c.ID), func(tx *sql.Tx) error {
		version, uid, err := currentVersion(ctx, tx, c.Owner, c.ID, ifVersion)
		if err != nil {
			return err
		}
		if c.UID == "" {
			c.UID = uid
		}
		c.Version = version + 1
		if c.Rev, err = nextRev(ctx, tx, c.Owner); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE contacts SET uid = ?, name = ?, given_name = ?, family_name = ?,
			number = ?, phones = ?, email = ?, organization = ?, note = ?, favorite = ?, version = ?, rev = ?,
			updated_at = ? WHERE owner = ? AND id = ?`,
			c.UID, c.Name, c.GivenName, c.FamilyName, c.Number, phones, c.Email, c.Organization, c.Note,
			boolInt(c.Favorite), c.Version, c.Rev, dbTime(c.UpdatedAt), c.Owner, c.ID)
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
	return s.write(ctx, fmt.Sprintf("delete contact %s/%s", owner, id), func(tx *sql.Tx) error {
		if _, _, err := currentVersion(ctx, tx, owner, id, ifVersion); err != nil {
			return err
		}
		rev, err := nextRev(ctx, tx, owner)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM contacts WHERE owner = ? AND id = ?`, owner, id); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO contact_tombstones (owner, id, rev) VALUES (?, ?, ?)
			ON CONFLICT (owner, id) DO UPDATE SET rev = excluded.rev`, owner, id, rev)
		return err
	})
}

// ContactChanges returns, in Rev order, each contact created, updated or
// deleted after sinceRev (one entry per ID, its latest state) and the
// book's current rev, read from one snapshot.
func (s *Store) ContactChanges(ctx context.Context, owner string, sinceRev int64) ([]store.ContactChange, int64, error) {
	changes, rev, err := s.contactChanges(ctx, owner, sinceRev)
	if err != nil {
		return nil, 0, readErr(fmt.Sprintf("contact changes of %s since %d", owner, sinceRev), err)
	}
	return changes, rev, nil
}

func (s *Store) contactChanges(ctx context.Context, owner string, sinceRev int64) ([]store.ContactChange, int64, error) {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, err
	}
	defer tx.Rollback()
	var rev int64
	err = tx.QueryRowContext(ctx, `SELECT rev FROM book_revs WHERE owner = ?`, owner).Scan(&rev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, 0, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+contactCols+` FROM contacts WHERE owner = ? AND rev > ?`, owner, sinceRev)
	live, err := collect(rows, err, scanContact)
	if err != nil {
		return nil, 0, err
	}
	rows, err = tx.QueryContext(ctx, `SELECT id, rev FROM contact_tombstones WHERE owner = ? AND rev > ?`, owner, sinceRev)
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
