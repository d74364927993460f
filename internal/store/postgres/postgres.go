// Package postgres is the shared implementation of store.Store on
// PostgreSQL (jackc/pgx, pgxpool, through database/sql), for deployments
// where several MCS and ZDial nodes on two sites keep one state. The
// queries are sqlstore's; this package connects, says how PostgreSQL
// differs (its Dialect) and runs the writes.
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
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/store/sqlstore"
)

// connectTimeout bounds a connection attempt when the DSN sets none
// (connect_timeout), so a dead site fails fast instead of hanging a login.
const connectTimeout = 10 * time.Second

// maxAttempts bounds the retries of a write that hit a deadlock or a
// serialization failure.
const maxAttempts = 5

// migrateLockKey names the advisory lock nodes take to migrate ("z5 schema"
// in ASCII). Advisory locks are per database, so databases sharing one
// server do not wait for each other.
const migrateLockKey int64 = 0x7a35_2073_6368_656d

// dialect is how PostgreSQL differs: times are timestamptz (microseconds)
// with NULL for "never", lists are text[], rows a write reads first are
// locked, and a snapshot needs REPEATABLE READ.
var dialect = sqlstore.Dialect{
	Name:      "postgres",
	ForUpdate: " FOR UPDATE",
	Never:     "NULL",
	Time:      func(t time.Time) any { return pgTime(t) },
	NullTime:  nullTime,
	Round:     pgTime,
	Strings:   func(ss []string) (any, error) { return ss, nil },
	Snapshot:  sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true},
	Violation: violation,
	Types: sqlstore.Types{
		ID:        "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
		Int:       "integer",
		BigInt:    "bigint",
		Text:      "text",
		Key:       `text COLLATE "C"`,
		Bytes:     "bytea",
		Bool:      "boolean",
		False:     "false",
		Time:      "timestamptz",
		NeverTime: "timestamptz", // NULL: never
		JSON:      "jsonb",
		Strings:   "text[]",
		Strict:    "",
	},
	MigrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`,
	// Released at COMMIT or ROLLBACK, and by the server if the connection
	// dies: no lock is ever left behind.
	MigrateLock: fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d)`, migrateLockKey),
}

// Store is a store.Store on one PostgreSQL database.
type Store struct {
	*sqlstore.Store

	pool *pgxpool.Pool
	db   *sql.DB // over pool
	name string  // host:port/database, for errors (never the password)

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
	s := &Store{pool: pool, db: stdlib.OpenDBFromPool(pool), name: name}
	s.Store = sqlstore.New(dialect, s.db, s.write)
	if err := s.checkDurability(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("postgres: open %s: %w", name, err)
	}
	if err := sqlstore.Migrate(ctx, s.db, dialect, sqlstore.Schema); err != nil {
		s.Close()
		return nil, fmt.Errorf("postgres: open %s: %w", name, err)
	}
	if err := s.Store.Prepare(ctx, s.db); err != nil {
		s.Close()
		return nil, fmt.Errorf("postgres: open %s: %w", name, err)
	}
	return s, nil
}

// checkDurability verifies the settings that make COMMIT mean "on disk".
// It also proves the server is reachable before migrating.
func (s *Store) checkDurability(ctx context.Context) error {
	for _, setting := range []string{"fsync", "synchronous_commit"} {
		var v string
		if err := s.db.QueryRowContext(ctx, "SELECT current_setting($1)", setting).Scan(&v); err != nil {
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
	s.closeOnce.Do(func() {
		s.db.Close()
		s.pool.Close()
	})
	return nil
}

// write runs fn in one READ COMMITTED transaction and commits it, retrying
// from the start on a deadlock or serialization failure. A nil return
// means COMMIT succeeded, i.e. the WAL is flushed.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := sqlstore.InTx(ctx, s.db, &sql.TxOptions{Isolation: sql.LevelReadCommitted}, fn)
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
		return err
	}
}

// retryable reports errors where running the transaction again is right.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// violation classifies PostgreSQL's constraint errors.
func violation(err error) sqlstore.Violation {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return sqlstore.Unique
		case "23503": // foreign_key_violation
			return sqlstore.ForeignKey
		}
	}
	return sqlstore.NoViolation
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
