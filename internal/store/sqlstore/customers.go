package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/z5vrs/z5/internal/store"
)

const customerCols = `id, username, display_name, password_hash, role, ca_id, failures, locked_until, created_at`

func scanCustomer(sc scanner) (store.Customer, error) {
	var c store.Customer
	err := sc.Scan(&c.ID, &c.Username, &c.DisplayName, &c.PasswordHash, &c.Role, &c.CAID, &c.Failures,
		timeCol{&c.LockedUntil}, timeCol{&c.CreatedAt})
	return c, err
}

// CreateCustomer stores c under a new ID; CreatedAt defaults to now and
// the empty Role is stored (and returned) as store.RoleCustomer. A CA ID
// is for interpreters only, unique (store.ErrExists).
func (s *Store) CreateCustomer(ctx context.Context, c store.Customer) (store.Customer, error) {
	if c.Username == "" {
		return store.Customer{}, s.errorf("create customer: empty username")
	}
	c.Role = c.EffectiveRole()
	switch {
	case c.Role != store.RoleCustomer && c.Role != store.RoleInterpreter && c.Role != store.RoleStaff:
		return store.Customer{}, s.errorf("create customer %q: unknown role %q", c.Username, c.Role)
	case c.Role == store.RoleInterpreter && !store.CAIDPattern.MatchString(c.CAID):
		return store.Customer{}, s.errorf("create interpreter %q: CA ID %q is not 1-16 letters and digits", c.Username, c.CAID)
	case c.Role != store.RoleInterpreter && c.CAID != "":
		return store.Customer{}, s.errorf("create customer %q: only interpreters have a CA ID", c.Username)
	}
	c.CreatedAt = s.d.Round(orNow(c.CreatedAt))
	c.LockedUntil = s.d.Round(c.LockedUntil)
	err := s.update(ctx, fmt.Sprintf("create customer %q", c.Username), func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO customers
			(username, display_name, password_hash, role, ca_id, failures, locked_until, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
			c.Username, c.DisplayName, c.PasswordHash, c.Role, c.CAID, c.Failures, s.d.NullTime(c.LockedUntil), s.d.Time(c.CreatedAt),
		).Scan(&c.ID)
	})
	if err != nil {
		return store.Customer{}, err
	}
	return c, nil
}

// Customer returns the customer with id, or store.ErrNotFound.
func (s *Store) Customer(ctx context.Context, id int64) (store.Customer, error) {
	c, err := scanCustomer(s.read.QueryRowContext(ctx, `SELECT `+customerCols+` FROM customers WHERE id = $1`, id))
	if err != nil {
		return store.Customer{}, s.readErr(fmt.Sprintf("customer %d", id), err)
	}
	return c, nil
}

// CustomerByUsername returns the customer with username (exact match), or
// store.ErrNotFound.
func (s *Store) CustomerByUsername(ctx context.Context, username string) (store.Customer, error) {
	c, err := scanCustomer(s.read.QueryRowContext(ctx, `SELECT `+customerCols+` FROM customers WHERE username = $1`, username))
	if err != nil {
		return store.Customer{}, s.readErr(fmt.Sprintf("customer %q", username), err)
	}
	return c, nil
}

// ListCustomers returns every customer in ID order.
func (s *Store) ListCustomers(ctx context.Context) ([]store.Customer, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+customerCols+` FROM customers ORDER BY id`)
	cs, err := collect(rows, err, scanCustomer)
	if err != nil {
		return nil, s.readErr("list customers", err)
	}
	return cs, nil
}

// SetPasswordHash replaces a customer's password hash.
func (s *Store) SetPasswordHash(ctx context.Context, customerID int64, hash string) error {
	return s.update(ctx, fmt.Sprintf("set password of customer %d", customerID), func(tx *sql.Tx) error {
		return mustAffect(tx.ExecContext(ctx, `UPDATE customers SET password_hash = $1 WHERE id = $2`, hash, customerID))
	})
}

// RecordLoginFailure counts a failed login. A lock that has run out is
// cleared first, so the count starts again; a failure while the account is
// still locked is counted but does not extend the lock. The row is locked
// (ForUpdate) between read and write, so failures counted at once on
// several nodes are all counted.
func (s *Store) RecordLoginFailure(ctx context.Context, customerID int64, now time.Time, maxFailures int, lockout time.Duration) (store.Customer, error) {
	var c store.Customer
	err := s.update(ctx, fmt.Sprintf("record login failure of customer %d", customerID), func(tx *sql.Tx) error {
		var err error
		c, err = scanCustomer(tx.QueryRowContext(ctx, `SELECT `+customerCols+` FROM customers WHERE id = $1`+s.d.ForUpdate, customerID))
		if err != nil {
			return err
		}
		c.Failures, c.LockedUntil = nextFailure(c.Failures, c.LockedUntil, now, maxFailures, lockout)
		c.LockedUntil = s.d.Round(c.LockedUntil)
		_, err = tx.ExecContext(ctx, `UPDATE customers SET failures = $1, locked_until = $2 WHERE id = $3`,
			c.Failures, s.d.NullTime(c.LockedUntil), customerID)
		return err
	})
	if err != nil {
		return store.Customer{}, err
	}
	return c, nil
}

// nextFailure is the lockout rule: the failure count and lock after one
// more failure at now.
func nextFailure(failures int, lockedUntil, now time.Time, maxFailures int, lockout time.Duration) (int, time.Time) {
	if !lockedUntil.IsZero() && !now.Before(lockedUntil) {
		failures, lockedUntil = 0, time.Time{}
	}
	failures++
	if maxFailures > 0 && failures >= maxFailures && lockedUntil.IsZero() {
		lockedUntil = now.Add(lockout)
	}
	return failures, lockedUntil
}

// ResetLoginFailures clears the failure count and any lock (after a
// successful login or by an administrator).
func (s *Store) ResetLoginFailures(ctx context.Context, customerID int64) error {
	return s.update(ctx, fmt.Sprintf("reset login failures of customer %d", customerID), func(tx *sql.Tx) error {
		return mustAffect(tx.ExecContext(ctx, `UPDATE customers SET failures = 0, locked_until = `+s.d.Never+` WHERE id = $1`, customerID))
	})
}
