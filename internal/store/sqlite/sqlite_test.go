package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/store/sqlstore"
	"github.com/z5vrs/z5/internal/store/storetest"
)

// openAt opens the database at path and closes it in t.Cleanup.
func openAt(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openTemp(t *testing.T) *Store {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "z5.db"))
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
	storetest.RunACD(t, func(t *testing.T) store.Store { return openTemp(t) })
	storetest.RunRecords(t, func(t *testing.T) store.Store { return openTemp(t) })
}

func TestPragmas(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	if err := checkPragmas(ctx, s.w); err != nil {
		t.Error(err)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&n); err != nil || n != 1 {
		t.Errorf("read pool foreign_keys = %d, %v; want 1", n, err)
	}
	// The read pool must never write.
	if _, err := s.r.ExecContext(ctx, `INSERT INTO nodes (name, last_seen) VALUES ('x', 1)`); err == nil {
		t.Error("write through the read pool succeeded")
	}
}

func TestOpenRejects(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:z5.db", filepath.Join(t.TempDir(), "a?b.db")} {
		if s, err := Open(t.Context(), p); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "z5.db")
	storetest.Reopen(t, func(t *testing.T) store.Store { return openAt(t, path) })
	ms, err := sqlstore.LoadMigrations(sqlstore.Schema)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := openAt(t, path).r.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(ms) {
		t.Errorf("%d schema_migrations rows (%v), want %d", n, err, len(ms))
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "z5.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(ctx, path); err == nil || !strings.Contains(err.Error(), "newer") {
		if err == nil {
			s.Close()
		}
		t.Errorf("Open of a newer schema: %v, want an error saying it is newer", err)
	}
}

// crashEnv tells the test binary, run again as a child, to be the writer
// that TestCrash kills; its value is the database file.
const crashEnv = "Z5_STORE_CRASH_DB"

// TestCrash kills a writer with SIGKILL in the middle of a stream of writes
// and checks that every write it acknowledged (printed after the method
// returned) is in the database afterwards.
func TestCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "z5.db")
	acks := storetest.KillWriter(t, "TestCrashChild", crashEnv+"="+path, 200, 20*time.Second)
	ctx := t.Context()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	defer s.Close()
	var check string
	if err := s.r.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check = %q, %v", check, err)
	}
	storetest.CheckAcks(t, s, acks)
}

// TestCrashChild is the writer TestCrash kills; run on its own it skips.
func TestCrashChild(t *testing.T) {
	storetest.CrashChild(t, crashEnv, func(ctx context.Context, path string) (store.Store, error) { return Open(ctx, path) })
}

// TestFileMode: a new database and the -wal and -shm files SQLite makes
// beside it are readable by their owner only, even under the usual umask
// 022 that would leave a file made with 0644 readable by everyone.
func TestFileMode(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "z5.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A write, so the WAL holds a frame and both files certainly exist.
	if _, err := s.CreateCustomer(t.Context(), store.Customer{Username: "mode"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Error(err)
			continue
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s: mode %v, want -rw-------", filepath.Base(p), m)
		}
	}
}
