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

	jobs     chan *writeJob // to the writer goroutine (group commit)
	stop     chan struct{}  // closed by Close: the writer drains and exits
	writerWG sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// writeJob is one caller's transaction body waiting for the writer.
type writeJob struct {
	ctx  context.Context
	op   string
	fn   func(tx *sql.Tx) error
	done chan error
}

// maxBatch bounds how many callers share one commit.
const maxBatch = 128

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
	st := &Store{path: path, w: w, r: r, jobs: make(chan *writeJob), stop: make(chan struct{})}
	st.writerWG.Add(1)
	go st.writer()
	return st, nil
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
		close(s.stop)
		s.writerWG.Wait()
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

// write runs fn in a BEGIN IMMEDIATE transaction and returns once it is
// committed; op names the operation in the error. Commit returning nil
// means the WAL frame is fsynced (synchronous=FULL).
//
// Writes are group-committed: the writer goroutine takes every job that is
// waiting, runs each inside its own SAVEPOINT of one transaction (a failing
// job is rolled back alone) and commits once, so concurrent writers share
// one fsync. No caller is answered before that commit is durable.
func (s *Store) write(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	j := &writeJob{ctx: ctx, op: op, fn: fn, done: make(chan error, 1)}
	select {
	case s.jobs <- j:
	case <-s.stop:
		return fmt.Errorf("sqlite: %s: store closed", op)
	case <-ctx.Done():
		return fmt.Errorf("sqlite: %s: %w", op, ctx.Err())
	}
	// Once taken, a job always gets an answer: its result decides whether
	// the write happened, so the caller waits for it even if ctx ends.
	return <-j.done
}

func (s *Store) writer() {
	defer s.writerWG.Done()
	for {
		var first *writeJob
		select {
		case first = <-s.jobs:
		case <-s.stop:
			return
		}
		batch := []*writeJob{first}
	more:
		for len(batch) < maxBatch {
			select {
			case j := <-s.jobs:
				batch = append(batch, j)
			default:
				break more
			}
		}
		s.commit(batch)
	}
}

// commit runs a batch in one transaction.
func (s *Store) commit(batch []*writeJob) {
	if len(batch) == 1 {
		j := batch[0]
		j.done <- s.runAlone(j)
		return
	}
	tx, err := s.w.BeginTx(context.Background(), nil)
	if err != nil {
		for _, j := range batch {
			j.done <- fmt.Errorf("sqlite: %s: begin: %w", j.op, mapErr(err))
		}
		return
	}
	errs := make([]error, len(batch))
	for i, j := range batch {
		if err := j.ctx.Err(); err != nil {
			errs[i] = fmt.Errorf("sqlite: %s: %w", j.op, err)
			continue
		}
		if _, err := tx.Exec("SAVEPOINT job"); err != nil {
			errs[i] = fmt.Errorf("sqlite: %s: savepoint: %w", j.op, mapErr(err))
			continue
		}
		if err := j.fn(tx); err != nil {
			errs[i] = fmt.Errorf("sqlite: %s: %w", j.op, mapErr(err))
			if _, rerr := tx.Exec("ROLLBACK TO job"); rerr != nil {
				// The transaction is unusable: fail the whole batch.
				tx.Rollback()
				for _, j := range batch {
					j.done <- fmt.Errorf("sqlite: %s: rollback to savepoint: %w", j.op, mapErr(rerr))
				}
				return
			}
		}
		if _, err := tx.Exec("RELEASE job"); err != nil && errs[i] == nil {
			errs[i] = fmt.Errorf("sqlite: %s: release savepoint: %w", j.op, mapErr(err))
		}
	}
	cerr := tx.Commit()
	for i, j := range batch {
		switch {
		case errs[i] != nil:
			j.done <- errs[i]
		case cerr != nil:
			j.done <- fmt.Errorf("sqlite: %s: commit: %w", j.op, mapErr(cerr))
		default:
			j.done <- nil
		}
	}
}

func (s *Store) runAlone(j *writeJob) error {
	tx, err := s.w.BeginTx(j.ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: %s: begin: %w", j.op, mapErr(err))
	}
	if err := j.fn(tx); err != nil {
		tx.Rollback()
		return fmt.Errorf("sqlite: %s: %w", j.op, mapErr(err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: %s: commit: %w", j.op, mapErr(err))
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
