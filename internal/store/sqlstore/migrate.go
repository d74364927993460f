package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// Schema holds the schema as numbered files, migrations/NNNN_name.sql,
// applied in order. Each is a text/template over Types, so one text serves
// both databases. A released file is never edited: changes go in a new
// file.
//
//go:embed migrations/*.sql
var Schema embed.FS

// Types are the column types the schema names, as a database spells them
// (a whole column definition where the two differ in more than the type).
type Types struct {
	ID        string // integer primary key the database assigns, never reused
	Int       string // 32-bit integer
	BigInt    string // 64-bit integer
	Text      string
	Key       string // text that lists are ordered by: byte-wise
	Bytes     string
	Bool      string
	False     string // Bool's false
	Time      string // a time always set
	NeverTime string // a time column that may hold Never, with its default
	JSON      string
	Strings   string // a list of strings
	Strict    string // ends every CREATE TABLE
}

// Migration is one schema step, a file migrations/NNNN_name.sql.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// LoadMigrations reads migrations/*.sql from fsys and orders them by
// version.
func LoadMigrations(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	seen := map[int]string{}
	for _, p := range names {
		base := strings.TrimPrefix(p, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", base)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", prev, base, v)
		}
		seen[v] = base
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: base, SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// Migrate applies the migrations in fsys (Schema, but for tests) not yet
// recorded in schema_migrations, all in one transaction (both databases'
// DDL is transactional): a crash part way leaves the schema as it was.
// Running it again on an up-to-date database changes nothing.
func Migrate(ctx context.Context, db *sql.DB, d Dialect, fsys fs.FS) error {
	ms, err := LoadMigrations(fsys)
	if err == nil {
		err = render(ms, d)
	}
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := InTx(ctx, db, nil, func(tx *sql.Tx) error { return migrate(ctx, tx, d, ms) }); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

func migrate(ctx context.Context, tx *sql.Tx, d Dialect, ms []Migration) error {
	if d.MigrateLock != "" {
		if _, err := tx.ExecContext(ctx, d.MigrateLock); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
	}
	// After the lock: CREATE TABLE IF NOT EXISTS itself races with a
	// concurrent one.
	if _, err := tx.ExecContext(ctx, d.MigrationsTable); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("read version: %w", err)
	}
	if n := len(ms); n > 0 && current > ms[n-1].Version {
		// A newer binary has migrated this database; running old code on a
		// newer schema could corrupt it.
		return fmt.Errorf("database schema version %d is newer than this program's %d", current, ms[n-1].Version)
	}
	for _, m := range ms {
		if m.Version <= current {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("apply %s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
			m.Version, m.Name, d.Time(time.Now())); err != nil {
			return fmt.Errorf("record %s: %w", m.Name, err)
		}
	}
	return nil
}

// render turns each migration's template into d's SQL.
func render(ms []Migration, d Dialect) error {
	data := struct {
		Name string
		Types
	}{d.Name, d.Types}
	for i, m := range ms {
		t, err := template.New(m.Name).Option("missingkey=error").Parse(m.SQL)
		if err != nil {
			return err
		}
		var b strings.Builder
		if err := t.Execute(&b, data); err != nil {
			return err
		}
		ms[i].SQL = b.String()
	}
	return nil
}
