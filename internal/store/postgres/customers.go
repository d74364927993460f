package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/z5vrs/z5/internal/store"
)

const customerCols = `id, username, display_name, password_hash, failures, locked_until, created_at`

func scanCustomer(sc scanner) (store.Customer, error) {
	var c store.Customer
	var locked, created pgtype.Timestamptz
	err := sc.Scan(&c.ID, &c.Username, &c.DisplayName, &c.PasswordHash, &c.Failures, &locked, &created)
	c.LockedUntil, c.CreatedAt = goTime(locked), goTime(created)
	return c, err
}

// CreateCustomer stores c under a new ID; CreatedAt defaults to now.
func (s *Store) CreateCustomer(ctx context.Context, c store.Customer) (store.Customer, error) {
	if c.Username == "" {
		return store.Customer{}, errors.New("postgres: create customer: empty username")
	}
	c.CreatedAt = pgTime(orNow(c.CreatedAt))
	c.LockedUntil = pgTime(c.LockedUntil)
	err := s.write(ctx, fmt.Sprintf("create customer %q", c.Username), func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO customers
			(username, display_name, password_hash, failures, locked_until, created_at)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			c.Username, c.DisplayName, c.PasswordHash, c.Failures, nullTime(c.LockedUntil), c.CreatedAt,
		).Scan(&c.ID)
	})
	if err != nil {
		return store.Customer{}, err
	}
	return c, nil
}

// Customer returns the customer with id, or store.ErrNotFound.
func (s *Store) Customer(ctx context.Context, id int64) (store.Customer, error) {
	c, err := scanCustomer(s.pool.QueryRow(ctx, `SELECT `+customerCols+` FROM customers WHERE id = $1`, id))
	if err != nil {
		return store.Customer{}, readErr(fmt.Sprintf("customer %d", id), err)
	}
	return c, nil
}

// CustomerByUsername returns the customer with username (exact match), or
// store.ErrNotFound.
func (s *Store) CustomerByUsername(ctx context.Context, username string) (store.Customer, error) {
	c, err := scanCustomer(s.pool.QueryRow(ctx, `SELECT `+customerCols+` FROM customers WHERE username = $1`, username))
	if err != nil {
		return store.Customer{}, readErr(fmt.Sprintf("customer %q", username), err)
	}
	return c, nil
}

// ListCustomers returns every customer in ID order.
func (s *Store) ListCustomers(ctx context.Context) ([]store.Customer, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+customerCols+` FROM customers ORDER BY id`)
	cs, err := collect(rows, err, scanCustomer)
	if err != nil {
		return nil, readErr("list customers", err)
	}
	return cs, nil
}

// SetPasswordHash replaces a customer's password hash.
func (s *Store) SetPasswordHash(ctx context.Context, customerID int64, hash string) error {
	return s.write(ctx, fmt.Sprintf("set password of customer %d", customerID), func(tx pgx.Tx) error {
		return mustAffect(tx.Exec(ctx, `UPDATE customers SET password_hash = $1 WHERE id = $2`, hash, customerID))
	})
}

// RecordLoginFailure counts a failed login. A lock that has run out is
// cleared first, so the count starts again; a failure while the account is
// still locked is counted but does not extend the lock. The row is locked
// (FOR UPDATE) between read and write, so failures counted at once on
// several nodes are all counted.
func (s *Store) RecordLoginFailure(ctx context.Context, customerID int64, now time.Time, maxFailures int, lockout time.Duration) (store.Customer, error) {
	var c store.Customer
	err := s.write(ctx, fmt.Sprintf("record login failure of customer %d", customerID), func(tx pgx.Tx) error {
		var err error
		c, err = scanCustomer(tx.QueryRow(ctx, `SELECT `+customerCols+` FROM customers WHERE id = $1 FOR UPDATE`, customerID))
		if err != nil {
			return err
		}
		c.Failures, c.LockedUntil = nextFailure(c.Failures, c.LockedUntil, now, maxFailures, lockout)
		c.LockedUntil = pgTime(c.LockedUntil)
		_, err = tx.Exec(ctx, `UPDATE customers SET failures = $1, locked_until = $2 WHERE id = $3`,
			c.Failures, nullTime(c.LockedUntil), customerID)
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
	return s.write(ctx, fmt.Sprintf("reset login failures of customer %d", customerID), func(tx pgx.Tx) error {
		return mustAffect(tx.Exec(ctx, `UPDATE customers SET failures = 0, locked_until = NULL WHERE id = $1`, customerID))
	})
}
