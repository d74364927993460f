package postgres

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/z5vrs/z5/internal/pgtest"
	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/store/sqlstore"
	"github.com/z5vrs/z5/internal/store/storetest"
)

// One PostgreSQL server for the package; each test gets its own database.
func TestMain(m *testing.M) { pgtest.Main(m) }

// open opens dsn and closes the store in t.Cleanup.
func open(t testing.TB, dsn string) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, pgtest.Start(t)) })
	storetest.RunACD(t, func(t *testing.T) store.Store { return open(t, pgtest.Start(t)) })
	storetest.RunRecords(t, func(t *testing.T) store.Store { return open(t, pgtest.Start(t)) })
}

// query runs sql on dsn with a plain connection, outside the store.
func query[T any](t *testing.T, dsn, sql string, args ...any) T {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var v T
	if err := conn.QueryRow(t.Context(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func TestReopen(t *testing.T) {
	dsn := pgtest.Start(t)
	storetest.Reopen(t, func(t *testing.T) store.Store { return open(t, dsn) })
	ms, err := sqlstore.LoadMigrations(sqlstore.Schema)
	if err != nil {
		t.Fatal(err)
	}
	if n := query[int64](t, dsn, `SELECT COUNT(*) FROM schema_migrations`); n != int64(len(ms)) {
		t.Errorf("schema_migrations holds %d rows, want %d", n, len(ms))
	}
}

// TestConcurrentOpen starts several nodes at once on an empty database:
// the advisory lock lets exactly one migrate and the rest find it done.
func TestConcurrentOpen(t *testing.T) {
	dsn := pgtest.Start(t)
	const nodes = 4
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var s *Store
			s, errs[i] = Open(t.Context(), dsn)
			if s != nil {
				s.Close()
			}
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: %v", i, err)
		}
	}
	ms, _ := sqlstore.LoadMigrations(sqlstore.Schema)
	if n := query[int64](t, dsn, `SELECT COUNT(*) FROM schema_migrations`); n != int64(len(ms)) {
		t.Errorf("schema_migrations holds %d rows, want %d", n, len(ms))
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	dsn := pgtest.Start(t)
	open(t, dsn).Close()
	query[int](t, dsn, `INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future.sql') RETURNING version`)
	_, err := Open(t.Context(), dsn)
	if err == nil || !strings.Contains(err.Error(), "newer than this program") {
		t.Errorf("Open on a newer schema: %v, want a refusal", err)
	}
}

// TestDurabilityRequired: a session with synchronous_commit off could lose
// acknowledged writes, so Open refuses it.
func TestDurabilityRequired(t *testing.T) {
	u, err := url.Parse(pgtest.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	u.RawQuery += "&options=" + strings.ReplaceAll(url.QueryEscape("-c synchronous_commit=off"), "+", "%20")
	s, err := Open(t.Context(), u.String())
	if err == nil {
		s.Close()
		t.Fatal("Open with synchronous_commit=off succeeded")
	}
	if !strings.Contains(err.Error(), "synchronous_commit is off") {
		t.Errorf("error %v does not name synchronous_commit", err)
	}
	if strings.Contains(err.Error(), u.User.String()) {
		t.Errorf("error reveals the password: %v", err)
	}
}

// TestBadDSN: errors name what failed and never the password.
func TestBadDSN(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, dsn := range []string{
		"postgres://u:hunter2@127.0.0.1:notaport/db",
		"host=127.0.0.1 password=hunter2 port=1 dbname=db connect_timeout=2",
	} {
		s, err := Open(ctx, dsn)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", dsn)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open error reveals the password: %v", err)
		}
	}
}

// TestTwoNodes runs two stores on one database, as two MCS nodes would,
// writing to the same contact at once.
func TestTwoNodes(t *testing.T) {
	dsn := pgtest.Start(t)
	storetest.RaceUpdate(t, "2025550100", open(t, dsn), open(t, dsn))
}

// TestChangeLogAcrossNodes: creates on both nodes at once while a reader
// polls the change log. Revs come in commit order without gaps, so every
// snapshot holds exactly revs 1..rev: a sync client never skips a change.
func TestChangeLogAcrossNodes(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.Start(t)
	nodes := []*Store{open(t, dsn), open(t, dsn)}
	const owner, perNode = "3125550100", 25

	done := make(chan struct{})
	readErr := make(chan error, 1)
	go func() {
		defer close(readErr)
		for {
			changes, rev, err := nodes[1].ContactChanges(ctx, owner, 0)
			if err != nil {
				readErr <- err
				return
			}
			if int64(len(changes)) != rev {
				readErr <- fmt.Errorf("snapshot at rev %d holds %d changes", rev, len(changes))
				return
			}
			for i, ch := range changes {
				if ch.Rev != int64(i+1) {
					readErr <- fmt.Errorf("snapshot at rev %d: change %d has rev %d", rev, i, ch.Rev)
					return
				}
			}
			select {
			case <-done:
				return
			default:
			}
		}
	}()

	var wg sync.WaitGroup
	for n, s := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perNode {
				if _, err := s.CreateContact(ctx, store.Contact{Owner: owner, ID: fmt.Sprintf("n%d-%d", n, i)}, 0); err != nil {
					t.Errorf("node %d create %d: %v", n, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	if err := <-readErr; err != nil {
		t.Error(err)
	}
	changes, rev, err := nodes[0].ContactChanges(ctx, owner, 0)
	if err != nil || rev != 2*perNode || len(changes) != 2*perNode {
		t.Errorf("final change log: %d changes, rev %d, %v; want %d", len(changes), rev, err, 2*perNode)
	}
}

// TestServerCrash kills the PostgreSQL server (SIGKILL to all its
// processes) during a stream of writes, restarts it through crash recovery
// and checks that every write acknowledged before the kill is there.
func TestServerCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server of its own")
	}
	srv := pgtest.NewServer(t)
	dsn := srv.CreateDB(t)
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	const wantAcks = 100
	var mu sync.Mutex // guards acked
	var acked []store.Customer
	enough := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for i := 0; ctx.Err() == nil; i++ {
			c, err := s.CreateCustomer(ctx, store.Customer{Username: fmt.Sprint("crash-", i)})
			if err != nil {
				return // the server is gone
			}
			mu.Lock()
			acked = append(acked, c)
			if len(acked) == wantAcks {
				close(enough)
			}
			mu.Unlock()
		}
	}()
	select {
	case <-enough:
	case <-writerDone:
		t.Fatal("writer stopped before the kill")
	case <-ctx.Done():
		t.Fatal("too slow to acknowledge writes")
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	<-writerDone
	s.Close()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d writes acknowledged before SIGKILL", len(acked))

	s = open(t, dsn)
	for _, want := range acked {
		got, err := s.Customer(ctx, want.ID)
		if err != nil || got.Username != want.Username {
			t.Errorf("acknowledged %d %s: got %+v, %v", want.ID, want.Username, got, err)
		}
	}
}

// crashEnv tells the test binary, run again as a child, to be the writer
// that TestClientCrash kills; its value is the database's DSN.
const crashEnv = "Z5_STORE_PG_CRASH_DSN"

// TestClientCrash kills a writing node with SIGKILL in the middle of a
// stream of writes and checks that every write it acknowledged (printed
// after the method returned) is in the database, and that the change log
// it left is whole.
func TestClientCrash(t *testing.T) {
	dsn := pgtest.Start(t)
	open(t, dsn).Close() // migrate before the child starts its clock
	acks := storetest.KillWriter(t, "TestClientCrashChild", crashEnv+"="+dsn, 100, 30*time.Second)
	storetest.CheckAcks(t, open(t, dsn), acks)
}

// TestClientCrashChild is the writer TestClientCrash kills; run on its own
// it skips.
func TestClientCrashChild(t *testing.T) {
	storetest.CrashChild(t, crashEnv, func(ctx context.Context, dsn string) (store.Store, error) { return Open(ctx, dsn) })
}

// TestZeroTimes: a zero time stored in a column that needs a value reads
// back as the zero time, as it does from SQLite.
func TestZeroTimes(t *testing.T) {
	ctx := t.Context()
	s := open(t, pgtest.Start(t))
	c, err := s.CreateCustomer(ctx, store.Customer{Username: "zero"})
	if err != nil {
		t.Fatal(err)
	}
	h := store.TokenHash("zero")
	if err := s.CreateSession(ctx, store.Session{TokenHash: h, Kind: store.SessionZDial, CustomerID: c.ID}); err != nil {
		t.Fatal(err)
	}
	se, err := s.Session(ctx, h)
	if err != nil || !se.ExpiresAt.IsZero() || !se.RevokedAt.IsZero() || se.ExpiresAt.Location() != time.UTC {
		t.Errorf("session with zero expiry reads back %+v, %v", se, err)
	}
	if n, err := s.DeleteExpiredSessions(ctx, time.Unix(0, 0)); n != 1 || err != nil {
		t.Errorf("DeleteExpiredSessions = %d, %v; want the zero-expiry session gone", n, err)
	}
}
