// Package teststore gives tests a store with accounts in it: a fresh
// SQLite database and the customers, devices and sessions they log in with.
// Only tests import it.
package teststore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/store/sqlite"
)

// SQLite opens a fresh SQLite store in the test's temporary directory and
// closes it when the test ends.
func SQLite(t testing.TB) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "z5.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Accounts is the part of the store that provisioning a test account uses.
type Accounts interface {
	CreateCustomer(ctx context.Context, c store.Customer) (store.Customer, error)
	AddNumber(ctx context.Context, n store.Number) error
	CreateDevice(ctx context.Context, d store.Device) (store.Device, error)
	CreateSession(ctx context.Context, s store.Session) error
	SetLocation(ctx context.Context, loc store.Location) error
}

// Location is the registered location Provision gives every customer, so
// that its numbers may place calls.
var Location = store.Location{Street: "1 Test Plaza", City: "Springfield", State: "IL", Zip: "62701", Country: "US", UpdatedBy: "test"}

// Provision creates the customer username holding number with one Z5
// device (SIP user number-1, password "pw" in realm mcs.z5.test) and a
// registered location (Location), and returns the device, a valid MCS
// token for it and the customer's ID.
func Provision(t testing.TB, st Accounts, username, number string) (store.Device, string, int64) {
	t.Helper()
	ctx := context.Background()
	cu, err := st.CreateCustomer(ctx, store.Customer{Username: username, DisplayName: username})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AddNumber(ctx, store.Number{Number: number, CustomerID: cu.ID}); err != nil {
		t.Fatal(err)
	}
	loc := Location
	loc.CustomerID = cu.ID
	if err := st.SetLocation(ctx, loc); err != nil {
		t.Fatal(err)
	}
	dev, err := st.CreateDevice(ctx, store.Device{Number: number, Kind: store.DeviceZ5, Name: username + "-laptop",
		SIPUser: number + "-1", Cred: store.NewCredentials(number+"-1", "mcs.z5.test", "pw")})
	if err != nil {
		t.Fatal(err)
	}
	tok := NewSession(t, st, store.Session{Kind: store.SessionMCS, CustomerID: cu.ID, Number: number, DeviceID: dev.ID,
		ExpiresAt: time.Now().Add(time.Hour)})
	return dev, tok, cu.ID
}

// NewSession stores s under a fresh token and returns the token.
func NewSession(t testing.TB, st Accounts, s store.Session) string {
	t.Helper()
	tok := store.NewToken()
	s.TokenHash = store.TokenHash(tok)
	if err := st.CreateSession(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return tok
}
