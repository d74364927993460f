// Package postgres is the shared implementation of store.Store on
// PostgreSQL (jackc/pgx, pgxpool), for deployments where several MCS and
// ZDial nodes on two sites keep one state.
//
// Durability: a write returns after its COMMIT, which with
// synchronous_commit on (the default) means the WAL record is flushed to
// disk (and, with synchronous standbys configured, to them). Open refuses a
// server or session running with fsync or synchronous_commit off, as the
// SQLite store refuses a weakened journal: "acknowledged" must keep meaning
// "survives kill -9 and power loss".
//
// Concurrency: every write is one READ COMMITTED transaction. A write that
// reads before it writes (lockout counter, If-Match version checks) locks
// the rows it reads with SELECT ... FOR UPDATE, so concurrent nodes queue
// instead of losing updates. Deadlocks and serialization failures
// (SQLSTATE 40P01, 40001) are retried a few times.
//
// Contact change log: every contact write first bumps its book's row in
// book_revs (INSERT ... ON CONFLICT DO UPDATE ... RETURNING) and holds
// that row lock until it commits. Writes to one book are therefore
// serialized across all nodes, and Revs are handed out in commit order:
// once a reader sees rev N, every change up to N is visible, so a CardDAV
// sync-collection never skips one. A write that fails rolls its bump back,
// so there are no gaps either (the suite only needs monotonicity). The
// lock is also why the contact limit holds under concurrent creators.
//
// Several sites: the DSN may list several hosts with
// target_session_attrs=read-write (libpq syntax, which pgx follows), so a
// node reconnects to whichever server is primary after a failover.
package postgres

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/z5vrs/z5/internal/store"
)

// connectTimeout bounds a connection attempt when the DSN sets none
// (connect_timeout), so a dead site fails fast instead of hanging a login.
const connectTimeout = 10 * time.Second

// maxAttempts bounds the retries of a write that hit a deadlock or a
// serialization failure.
const maxAttempts = 5

// Store is a store.Store on one PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
	name string // host:port/database, for errors (never the password)

	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// Open connects to the database dsn names (a postgres:// URL or libpq
// key=value string; pool settings such as pool_max_conns are accepted),
// checks its durability settings and brings the schema up to date. Several
// nodes may Open the same database at once: migrations run under an
// advisory lock.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgconn redacts the password in parse errors.
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	name := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open %s: %w", name, err)
	}
	s := &Store{pool: pool, name: name}
	if err := s.checkDurability(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open %s: %w", name, err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open %s: %w", name, err)
	}
	return s, nil
}

// checkDurability verifies the settings that make COMMIT mean "on disk".
// It also proves the server is reachable before migrating.
func (s *Store) checkDurability(ctx context.Context) error {
	for _, setting := range []string{"fsync", "synchronous_commit"} {
		var v string
		if err := s.pool.QueryRow(ctx, "SELECT current_setting($1)", setting).Scan(&v); err != nil {
			return fmt.Errorf("read %s: %w", setting, err)
		}
		if v == "off" {
			return fmt.Errorf("%s is off: acknowledged writes could be lost; turn it on", setting)
		}
	}
	return nil
}

// Close closes the connection pool, waiting for connections in use to be
// returned. Calling it again returns nil.
func (s *Store) Close() error {
	s.closeOnce.Do(s.pool.Close)
	return nil
}

// write runs fn in one transaction and commits it, retrying from the start
// on a deadlock or serialization failure; op names the operation in the
// error. fn may run more than once, so it must set its results afresh each
// time. A nil return means COMMIT succeeded, i.e. the WAL is flushed.
func (s *Store) write(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, fn)
		if err == nil {
			return nil
		}
		if attempt < maxAttempts && retryable(err) && ctx.Err() == nil {
			// A short, growing pause lets the transaction we collided with
			// finish.
			select {
			case <-time.After(time.Duration(attempt) * 5 * time.Millisecond):
				continue
			case <-ctx.Done():
			}
		}
		return fmt.Errorf("postgres: %s: %w", op, mapErr(err))
	}
}

// retryable reports errors where running the transaction again is right.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// readErr adds context to an error of a read.
func readErr(op string, err error) error {
	return fmt.Errorf("postgres: %s: %w", op, mapErr(err))
}

// mapErr turns PostgreSQL's answers into the store sentinels callers
// branch on, keeping the original error in the chain for the message.
func mapErr(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return fmt.Errorf("%w: %w", store.ErrExists, err)
		case "23503": // foreign_key_violation
			// Only references to a customer or number exist, so a failed
			// reference means the thing referred to is missing.
			return fmt.Errorf("%w: referenced row: %w", store.ErrNotFound, err)
		}
	}
	return err
}

// mustAffect reports store.ErrNotFound when an UPDATE or DELETE touched no
// row.
func mustAffect(tag pgconn.CommandTag, err error) error {
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// PostgreSQL keeps microseconds: times are truncated before they are
// stored, and a write returns the truncated value, so what it returns is
// exactly what a later read returns.
func pgTime(t time.Time) time.Time {
	return t.Truncate(time.Microsecond)
}

// nullTime stores the zero time as NULL, in columns where zero means
// "never".
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return pgTime(t)
}

// goTime reads a timestamptz column, NULL as the zero time, in UTC.
func goTime(ts pgtype.Timestamptz) time.Time {
	if !ts.Valid || ts.InfinityModifier != pgtype.Finite {
		return time.Time{}
	}
	return ts.Time.UTC()
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

// scanner is the Scan method shared by pgx.Row and pgx.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// collect scans every row of rows with scan.
func collect[T any](rows pgx.Rows, err error, scan func(scanner) (T, error)) ([]T, error) {
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
