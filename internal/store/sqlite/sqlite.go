// Package sqlite is the embedded, single-machine implementation of
// store.Store on SQLite (modernc.org/sqlite, pure Go). The queries are
// sqlstore's; this package opens the database, says how SQLite differs
// (its Dialect) and runs the writes.
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
//
// Privacy: a new database file is created readable by its owner only
// (0600); SQLite gives its -wal and -shm files the database file's mode.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/store/sqlstore"
)

// busyTimeout bounds how long a connection waits for a lock another
// process holds before failing with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// readConns is the size of the read pool. Reads are short; a few
// connections let HTTP handlers read while a write commits.
const readConns = 4

// fileMode is the mode of a database file Open creates: it holds password
// hashes, digest HA1s and session token hashes.
const fileMode = 0o600

// dialect is how SQLite differs: times are INTEGER Unix nanoseconds with 0
// for "never", lists are JSON text, writes are serialized by the writer
// (no row locks needed) and a read-only transaction is a snapshot in WAL
// mode.
var dialect = sqlstore.Dialect{
	Name:      "sqlite",
	ForUpdate: "",
	Never:     "0",
	Time:      dbTime,
	NullTime:  dbTime,
	Round:     func(t time.Time) time.Time { return t },
	Strings: func(ss []string) (any, error) {
		b, err := json.Marshal(ss)
		return string(b), err
	},
	Snapshot:  sql.TxOptions{ReadOnly: true},
	Violation: violation,
	Types: sqlstore.Types{
		ID:        "INTEGER PRIMARY KEY AUTOINCREMENT",
		Int:       "INTEGER",
		BigInt:    "INTEGER",
		Text:      "TEXT",
		Key:       "TEXT", // BINARY, SQLite's default collation, is byte-wise
		Bytes:     "BLOB",
		Bool:      "INTEGER",
		False:     "0",
		Time:      "INTEGER",
		NeverTime: "INTEGER NOT NULL DEFAULT 0",
		JSON:      "TEXT",
		Strings:   "TEXT", // a JSON array
		Strict:    " STRICT",
	},
	MigrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`,
}

// Store is a store.Store on one SQLite database file.
type Store struct {
	*sqlstore.Store

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
	if err := create(path); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
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
	if err := sqlstore.Migrate(ctx, w, dialect, sqlstore.Schema); err != nil {
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
	st.Store = sqlstore.New(dialect, r, st.write)
	if err := st.Store.Prepare(ctx, w); err != nil { // before the writer takes the connection
		r.Close()
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	st.writerWG.Add(1)
	go st.writer()
	return st, nil
}

// create makes the database file with fileMode when it does not exist yet,
// so it is never readable by others, not even for the moment before a
// chmod; a file already there keeps the mode it has.
func create(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return err
	}
	return f.Close()
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
// committed. Commit returning nil means the WAL frame is fsynced
// (synchronous=FULL).
//
// Writes are group-committed: the writer goroutine takes every job that is
// waiting, runs each inside its own SAVEPOINT of one transaction (a failing
// job is rolled back alone) and commits once, so concurrent writers share
// one fsync. No caller is answered before that commit is durable.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	j := &writeJob{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case s.jobs <- j:
	case <-s.stop:
		return errors.New("store closed")
	case <-ctx.Done():
		return ctx.Err()
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
		j.done <- sqlstore.InTx(j.ctx, s.w, nil, j.fn)
		return
	}
	tx, err := s.w.BeginTx(context.Background(), nil)
	if err != nil {
		for _, j := range batch {
			j.done <- fmt.Errorf("begin: %w", err)
		}
		return
	}
	errs := make([]error, len(batch))
	for i, j := range batch {
		if err := j.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if _, err := tx.Exec("SAVEPOINT job"); err != nil {
			errs[i] = fmt.Errorf("savepoint: %w", err)
			continue
		}
		if err := j.fn(tx); err != nil {
			errs[i] = err
			if _, rerr := tx.Exec("ROLLBACK TO job"); rerr != nil {
				// The transaction is unusable: fail the whole batch.
				tx.Rollback()
				for _, j := range batch {
					j.done <- fmt.Errorf("rollback to savepoint: %w", rerr)
				}
				return
			}
		}
		if _, err := tx.Exec("RELEASE job"); err != nil && errs[i] == nil {
			errs[i] = fmt.Errorf("release savepoint: %w", err)
		}
	}
	cerr := tx.Commit()
	for i, j := range batch {
		switch {
		case errs[i] != nil:
			j.done <- errs[i]
		case cerr != nil:
			j.done <- fmt.Errorf("commit: %w", cerr)
		default:
			j.done <- nil
		}
	}
}

// violation classifies SQLite's constraint errors.
func violation(err error) sqlstore.Violation {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return sqlstore.Unique
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return sqlstore.ForeignKey
		}
	}
	return sqlstore.NoViolation
}

// dbTime stores a time as Unix nanoseconds (UTC by construction); 0 stands
// for the zero time.Time.
func dbTime(t time.Time) any {
	if t.IsZero() {
		return int64(0)
	}
	return t.UnixNano()
}
