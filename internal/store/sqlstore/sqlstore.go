// Package sqlstore is the one implementation of store.Store over
// database/sql, shared by the SQLite and PostgreSQL drivers: every query is
// written here once, and a Dialect says what differs between the two
// databases (time columns, row locks, list columns, error codes,
// migrations).
//
// Queries use $N placeholders, which PostgreSQL takes natively and the
// SQLite driver binds by ordinal too.
//
// A driver owns its connections and how a write transaction runs: SQLite
// group-commits writes on one connection, PostgreSQL retries a transaction
// that hit a deadlock. It hands New a WriteFunc for that and a pool for
// reads, and supplies Close itself.
package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/z5vrs/z5/internal/store"
)

// Violation is a constraint failure a driver reports.
type Violation int

const (
	NoViolation Violation = iota
	Unique                // a unique or primary key value is taken
	ForeignKey            // a referenced row is missing
)

// Dialect is what differs between the databases under one Store.
type Dialect struct {
	// Name begins every error: "sqlite", "postgres".
	Name string
	// ForUpdate ends a SELECT whose rows a write reads before it changes
	// them: the row lock that keeps writers on other nodes from losing
	// updates. Empty where writes are serialized anyway.
	ForUpdate string
	// Never is the SQL value a time column holds for "never" (the zero
	// time) in the columns where NullTime stores it.
	Never string
	// Time encodes a time for a column that always holds one; NullTime for
	// a column where the zero time is stored as Never.
	Time     func(time.Time) any
	NullTime func(time.Time) any
	// Round returns a time as the database keeps it, so that what a write
	// returns is exactly what a later read returns.
	Round func(time.Time) time.Time
	// Strings encodes a list of strings (license features); none is NULL.
	Strings func([]string) (any, error)
	// Snapshot are the options of a read-only transaction that sees one
	// snapshot of the database.
	Snapshot sql.TxOptions
	// Violation classifies a driver error.
	Violation func(error) Violation

	// Types are the column types of the schema.
	Types Types
	// MigrationsTable creates schema_migrations (version, name,
	// applied_at) when it is missing.
	MigrationsTable string
	// MigrateLock, when set, runs first in the migration transaction so
	// that nodes starting together migrate one after the other.
	MigrateLock string
}

// WriteFunc runs fn in one write transaction and returns nil only once that
// transaction is committed and durable. fn may run more than once (a
// retried transaction), so it must set its results afresh each time.
type WriteFunc func(ctx context.Context, fn func(tx *sql.Tx) error) error

// Store is store.Store but Close, which the driver supplies.
type Store struct {
	d     Dialect
	read  *sql.DB
	write WriteFunc
	// stmts are the frequent writes' statements, prepared once on the
	// write pool by Prepare (nil before), by query: a write transaction
	// binds them to its connection (txExec, txScanRow) where it prepared
	// each afresh, and preparing was most of the cost of a small write.
	stmts map[string]*sql.Stmt
	// callForUpdate is callForUpdateSQL in this dialect.
	callForUpdate string
}

// New returns a Store that reads through read and writes through write.
func New(d Dialect, read *sql.DB, write WriteFunc) *Store {
	return &Store{d: d, read: read, write: write, callForUpdate: callForUpdateSQL(d)}
}

// Prepare prepares the statements of the frequent writes on db, the pool
// the driver's WriteFunc runs its transactions on, once the schema is in
// place. A transaction binds them (sql.Tx.StmtContext) without preparing
// them again on a connection that has them. The statements live as long
// as db. A Store not prepared prepares each statement in its transaction.
func (s *Store) Prepare(ctx context.Context, db *sql.DB) error {
	stmts := map[string]*sql.Stmt{}
	for _, q := range []string{regSweepSQL, regPutSQL, regDeleteSQL, insertCallSQL, insertCallSQL + insertCallAgainSQL,
		updateCallQuery(false), updateCallQuery(true), s.callForUpdate} {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			for _, st := range stmts {
				st.Close()
			}
			return fmt.Errorf("%s: prepare: %w", s.d.Name, err)
		}
		stmts[q] = st
	}
	s.stmts = stmts
	return nil
}

// txExec runs query in tx, through the statement Prepare made for it when
// there is one.
func (s *Store) txExec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	if st := s.stmts[query]; st != nil {
		ts := tx.StmtContext(ctx, st)
		defer ts.Close() // the transaction's binding; st stays prepared
		return ts.ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, query, args...)
}

// txScanRow runs the one-row query in tx and hands its row to scan, as
// txExec does.
func (s *Store) txScanRow(ctx context.Context, tx *sql.Tx, query string, scan func(scanner) error, args ...any) error {
	if st := s.stmts[query]; st != nil {
		ts := tx.StmtContext(ctx, st)
		defer ts.Close() // after the scan: a statement closes once its rows have
		return scan(ts.QueryRowContext(ctx, args...))
	}
	return scan(tx.QueryRowContext(ctx, query, args...))
}

// update runs fn as one durable write; op names the operation in the error.
func (s *Store) update(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	if err := s.write(ctx, fn); err != nil {
		return fmt.Errorf("%s: %s: %w", s.d.Name, op, s.d.MapErr(err))
	}
	return nil
}

// readErr adds context to an error of a read.
func (s *Store) readErr(op string, err error) error {
	return fmt.Errorf("%s: %s: %w", s.d.Name, op, s.d.MapErr(err))
}

// errorf is an error of the store's own checks.
func (s *Store) errorf(format string, args ...any) error {
	return fmt.Errorf(s.d.Name+": "+format, args...)
}

// MapErr turns the database's answers into the store sentinels callers
// branch on, keeping the original error in the chain for the message.
func (d Dialect) MapErr(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	switch d.Violation(err) {
	case Unique:
		return fmt.Errorf("%w: %w", store.ErrExists, err)
	case ForeignKey:
		// Only references to a customer or number exist, so a failed
		// reference means the thing referred to is missing.
		return fmt.Errorf("%w: referenced row: %w", store.ErrNotFound, err)
	}
	return err
}

// InTx runs fn in a transaction with opts and commits it, or rolls it back
// when fn fails.
func InTx(ctx context.Context, db *sql.DB, opts *sql.TxOptions, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// mustAffect reports store.ErrNotFound when an UPDATE or DELETE touched no
// row.
func mustAffect(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// timeCol scans a time column of either dialect into t, in UTC: Unix
// nanoseconds (0 for the zero time) or a timestamp (NULL or an infinity
// for the zero time).
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*c.t = time.Time{}
	case int64:
		*c.t = unixNano(v)
	case time.Time:
		*c.t = v.UTC()
	case string: // how the PostgreSQL driver hands over ±infinity
		if v != "infinity" && v != "-infinity" {
			return fmt.Errorf("time column holds %q", v)
		}
		*c.t = time.Time{}
	default:
		return fmt.Errorf("time column holds a %T", v)
	}
	return nil
}

// unixNano is the time n nanoseconds after the Unix epoch in UTC, and 0 the
// zero time.Time, which has no Unix nanosecond value of its own.
func unixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// orNow returns t, or the current time when t is zero.
func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

// newID returns a random URL-safe identifier of 16 characters (96 bits).
func newID() string {
	b := make([]byte, 12)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newUID returns a random (version 4) UUID URN, the usual vCard UID form.
func newUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return "urn:uuid:" + h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// listJSON encodes a list for a JSON column (text in SQLite, jsonb in
// PostgreSQL) in its stored form D, whose explicit JSON tags keep the
// stored format independent of Go field names; none is NULL.
func listJSON[T, D any](vs []T, stored func(T) D) (any, error) {
	if len(vs) == 0 {
		return nil, nil
	}
	out := make([]D, len(vs))
	for i, v := range vs {
		out[i] = stored(v)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// listFromJSON decodes what listJSON stored; NULL and [] are nil.
func listFromJSON[D, T any](b []byte, value func(D) T) ([]T, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var in []D
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, err
	}
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]T, len(in))
	for i, d := range in {
		out[i] = value(d)
	}
	return out, nil
}

// scanner is the Scan method shared by *sql.Row and *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// collect scans every row of rows with scan.
func collect[T any](rows *sql.Rows, err error, scan func(scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
