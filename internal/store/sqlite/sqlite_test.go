package sqlite

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/store/sqlstore"
	"github.com/z5vrs/z5/internal/store/storetest"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "z5.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
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
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "z5.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.CreateCustomer(ctx, store.Customer{Username: "zoe"})
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.CreateContact(ctx, store.Contact{Owner: "2025550100", Name: "K"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	ms, err := sqlstore.LoadMigrations(migrations)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // migrations are idempotent across restarts
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen %d: %v", i, err)
		}
		if got, err := s.Customer(ctx, c.ID); err != nil || got.Username != "zoe" {
			t.Errorf("reopen %d: customer %+v, %v", i, got, err)
		}
		if got, err := s.Contact(ctx, k.Owner, k.ID); err != nil || got.Rev != k.Rev {
			t.Errorf("reopen %d: contact %+v, %v", i, got, err)
		}
		var n int
		if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(ms) {
			t.Errorf("reopen %d: %d schema_migrations rows (%v), want %d", i, n, err, len(ms))
		}
		// IDs continue after the highest ever used.
		c2, err := s.CreateCustomer(ctx, store.Customer{Username: fmt.Sprint("zoe", i)})
		if err != nil || c2.ID <= c.ID {
			t.Errorf("reopen %d: new customer ID %d (%v), want > %d", i, c2.ID, err, c.ID)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
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
// that TestCrash kills.
const crashEnv = "Z5_STORE_CRASH_DB"

// TestCrash kills a writer with SIGKILL in the middle of a stream of writes
// and checks that every write it acknowledged (printed after the method
// returned) is in the database afterwards.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	const wantAcks, maxWait = 200, 20 * time.Second
	path := filepath.Join(t.TempDir(), "z5.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	t.Cleanup(func() {
		if !done {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var acks []string
	timeout := time.After(maxWait)
wait:
	for len(acks) < wantAcks {
		select {
		case l, ok := <-lines:
			if !ok {
				break wait // the child ended on its own: reported below
			}
			if strings.HasPrefix(l, "ack ") {
				acks = append(acks, l)
			}
		case <-timeout:
			break wait
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	// Lines already in the pipe were printed after their write returned:
	// they are acknowledged too.
	for l := range lines {
		if strings.HasPrefix(l, "ack ") {
			acks = append(acks, l)
		}
	}
	werr := cmd.Wait()
	done = true
	var ee *exec.ExitError
	if !errors.As(werr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL (%v); stderr:\n%s", werr, stderr.String())
	}
	if len(acks) == 0 {
		t.Fatalf("child acknowledged nothing in %v; stderr:\n%s", maxWait, stderr.String())
	}
	t.Logf("%d writes acknowledged before SIGKILL", len(acks))

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
	for _, l := range acks {
		f := strings.Fields(l)
		switch {
		case len(f) == 4 && f[1] == "customer":
			id, _ := strconv.ParseInt(f[2], 10, 64)
			c, err := s.Customer(ctx, id)
			if err != nil || c.Username != f[3] {
				t.Errorf("acknowledged %q: got %+v, %v", l, c, err)
			}
		case len(f) == 4 && f[1] == "contact":
			c, err := s.Contact(ctx, f[2], f[3])
			if err != nil {
				t.Errorf("acknowledged %q: %v", l, err)
			} else if want := "name " + f[3]; c.Name != want {
				t.Errorf("acknowledged %q: name %q, want %q", l, c.Name, want)
			}
		default:
			t.Errorf("malformed ack line %q", l)
		}
	}
}

// TestCrashChild is the writer TestCrash kills; run on its own it skips.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("only runs as TestCrash's child")
	}
	// Bounded in case the parent dies without killing us.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex // one whole line per write(2)
	ack := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, "ack "+format+"\n", args...)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			name := fmt.Sprint("crash-", i)
			c, err := s.CreateCustomer(ctx, store.Customer{Username: name})
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return
			}
			ack("customer %d %s", c.ID, name)
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			id := fmt.Sprint("k", i)
			c, err := s.CreateContact(ctx, store.Contact{Owner: "2025550100", ID: id, Name: "name " + id}, 0)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return
			}
			ack("contact %s %s", c.Owner, c.ID)
		}
	}()
	wg.Wait()
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
