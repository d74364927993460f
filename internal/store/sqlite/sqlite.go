// Package sqlite is the embedded, single-machine implementation of
// store.Store on SQLite (modernc.org/sqlite, pure Go).
//
// Durability: the database runs in WAL mode with synchronous=FULL, so a
// write is on stable storage (the WAL is fsynced) before its method returns;
// kill -9 or a power cut loses nothing acknowledged.
//
// Concurrency: writes go through one connection and every write is a
// BEGIN IMMEDIATE transaction, so writers in this process queue in
// database/sql instead of racing for SQLite's lock, and a writer in another
// process (an admin command) waits under busy_timeout instead of failing
// with SQLITE_BUSY half way through a transaction. Reads use a separate
// pool of read-only connections that WAL lets run beside the writer.
package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/z5vrs/z5/internal/store"
)

// busyTimeout bounds how long a connection waits for a lock another
// process holds before failing with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// readConns is the size of the read pool. Reads are short; a few
// connections let HTTP handlers read while a write commits.
const readConns = 4

// Store is a store.Store on one SQLite database file.
type Store struct {
	path string
	w    *sql.DB // one connection: every write, as BEGIN IMMEDIATE
	r    *sql.DB // read-only connections (PRAGMA query_only)

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open opens (creating when missing) the database at path and brings its
// schema up to date. path is a file name; ":memory:" is refused because the
// read and write pools must share one database.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("sqlite: open %q: want a plain file path (no \"file:\" URI, no '?', not :memory:)", path)
	}
	common := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)", busyTimeout.Milliseconds())
	w, err := sql.Open("sqlite", path+"?"+common+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := checkPragmas(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// The read pool opens after the writer has switched the file to WAL, so
	// its connections never see another journal mode.
	r, err := sql.Open("sqlite", path+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(readConns)
	r.SetMaxIdleConns(readConns)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: read pool: %w", path, err)
	}
	return &Store{path: path, w: w, r: r}, nil
}

// checkPragmas verifies that the settings durability depends on took
// effect: a journal mode silently left at DELETE (for example on a file
// system without shared memory) must fail loudly rather than weaken the
// guarantee.
func checkPragmas(ctx context.Context, db *sql.DB) error {
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal_mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %q, want wal", mode)
	}
	var syncMode, fk int
	if err := db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&syncMode); err != nil {
		return fmt.Errorf("read synchronous: %w", err)
	}
	if syncMode < 2 { // 2 = FULL, 3 = EXTRA
		return fmt.Errorf("synchronous is %d, want FULL (2)", syncMode)
	}
	if err := db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("read foreign_keys: %w", err)
	}
	if fk != 1 {
		return errors.New("foreign_keys is off")
	}
	return nil
}

// Close closes both pools. Calling it again returns nil.
func (s *Store) Close() error {
	first := false
	s.closeOnce.Do(func() {
		first = true
		s.closeErr = errors.Join(s.r.Close(), s.w.Close())
	})
	if !first {
		return nil
	}
	if s.closeErr != nil {
		return fmt.Errorf("sqlite: close %s: %w", s.path, s.closeErr)
	}
	return nil
}

// write runs fn in one BEGIN IMMEDIATE transaction and commits it; op names
// the operation in the error. Commit returning nil means the WAL frame is
// fsynced (synchronous=FULL).
func (s *Store) write(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: %s: begin: %w", op, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return fmt.Errorf("sqlite: %s: %w", op, mapErr(err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: %s: commit: %w", op, mapErr(err))
	}
	return nil
}

// readErr adds context to an error of a read.
func readErr(op string, err error) error {
	return fmt.Errorf("sqlite: %s: %w", op, mapErr(err))
}

// mapErr turns SQLite's answers into the store sentinels callers branch on,
// keeping the original error in the chain for the message.
func mapErr(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %w", store.ErrExists, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			// Only references to a customer or number exist, so a failed
			// reference means the thing referred to is missing.
			return fmt.Errorf("%w: referenced row: %w", store.ErrNotFound, err)
		}
	}
	return err
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

// Times are stored as Unix nanoseconds (UTC by construction); 0 stands for
// the zero time.Time, which has no Unix nanosecond value of its own.
func dbTime(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func goTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// orNow returns t, or the current time when t is zero.
func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
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
