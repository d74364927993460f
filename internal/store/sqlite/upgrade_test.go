package sqlite

import (
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/store/sqlstore"
)

// TestUpgradeFromInitialSchema: a database made by the first release
// (0001 only), with a customer and a call in it, opens with today's
// schema: the customer is a customer with no CA ID and no location, the
// call a point-to-point record, and the new columns work.
func TestUpgradeFromInitialSchema(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "z5.db")
	if err := create(path); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path+"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	first, err := fs.ReadFile(sqlstore.Schema, "migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlstore.Migrate(ctx, db, dialect, fstest.MapFS{"migrations/0001_init.sql": {Data: first}}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO customers (username, created_at) VALUES ('old', 1)`,
		`INSERT INTO calls (call_id, from_number, to_number, started_at) VALUES ('c1', '2025550100', '3125550100', 1)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s := openAt(t, path)
	c, err := s.CustomerByUsername(ctx, "old")
	if err != nil || c.Role != store.RoleCustomer || c.CAID != "" {
		t.Fatalf("customer after upgrade: %+v, %v", c, err)
	}
	if _, err := s.Location(ctx, c.ID); err == nil {
		t.Error("a location appeared by upgrade")
	}
	call, err := s.Call(ctx, "c1")
	if err != nil || call.Direction != "" || !call.QueuedAt.IsZero() || !call.SessionStart.IsZero() {
		t.Errorf("call after upgrade: %+v, %v", call, err)
	}
	if err := s.SetLocation(ctx, store.Location{CustomerID: c.ID, Street: "1 Main St", City: "Austin", State: "TX", Zip: "78701"}); err != nil {
		t.Errorf("SetLocation after upgrade: %v", err)
	}
}
