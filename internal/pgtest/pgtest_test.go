package pgtest_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/z5vrs/z5/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func scan[T any](t *testing.T, conn *pgx.Conn, sql string) T {
	t.Helper()
	var v T
	if err := conn.QueryRow(t.Context(), sql).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// TestStart: each call gets its own empty database on one shared server,
// listening on loopback only, with durable commits.
func TestStart(t *testing.T) {
	dsn1, dsn2 := pgtest.Start(t), pgtest.Start(t)
	u1, _ := url.Parse(dsn1)
	u2, _ := url.Parse(dsn2)
	if u1.Host != u2.Host {
		t.Errorf("two Starts under Main used two servers: %s and %s", u1.Host, u2.Host)
	}
	if u1.Path == u2.Path {
		t.Errorf("two Starts share database %s", u1.Path)
	}
	c1, c2 := connect(t, dsn1), connect(t, dsn2)
	if _, err := c1.Exec(t.Context(), `CREATE TABLE t (x int)`); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Exec(t.Context(), `CREATE TABLE t (x int)`); err != nil {
		t.Errorf("second database is not empty: %v", err)
	}
	for setting, want := range map[string]string{
		"listen_addresses":   "127.0.0.1",
		"fsync":              "on",
		"synchronous_commit": "on",
		"server_encoding":    "UTF8",
	} {
		if got := scan[string](t, c1, "SHOW "+setting); got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}
	if u1.User.Username() == "" {
		t.Error("DSN has no user")
	}
	if _, hasPW := u1.User.Password(); !hasPW {
		t.Error("DSN has no password: the server should not trust loopback")
	}
}

// TestKillRestart: committed data survives a SIGKILL of the whole server.
func TestKillRestart(t *testing.T) {
	srv := pgtest.NewServer(t)
	dsn := srv.CreateDB(t)
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), `CREATE TABLE t (x int); INSERT INTO t VALUES (42)`); err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(t.Context(), dsn); err == nil {
		t.Fatal("connected to a killed server")
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := scan[int32](t, connect(t, dsn), `SELECT x FROM t`); got != 42 {
		t.Errorf("after restart x = %d, want 42", got)
	}
	if err := srv.Restart(); err == nil {
		t.Error("Restart of a running server succeeded")
	}
}
