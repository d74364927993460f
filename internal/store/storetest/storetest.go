// Package storetest is the conformance suite every store.Store
// implementation runs, so SQLite and PostgreSQL behave alike: the same
// sentinel errors, the same ordering, the same atomicity under concurrent
// writers.
//
// Contract details the suite pins down beyond the interface comments:
//   - A value a write returns (IDs, CreatedAt/UpdatedAt it filled in) is
//     exactly what a later read returns; times survive at microsecond
//     precision at least.
//   - Lists: customers by ID, numbers by number, devices by ID, contacts by
//     ID, nodes by name, registrations by device, node and flow, calls
//     newest first.
//   - Lookups of something absent are store.ErrNotFound; lists of something
//     absent are empty.
//   - Login lockout: a lock that has run out (now >= LockedUntil) is cleared
//     by the next failure, which counts as the first; failures while locked
//     are counted but do not extend the lock.
//   - Sessions: DeleteExpiredSessions removes ExpiresAt <= now; revoking
//     twice keeps the first RevokedAt.
//   - Contacts: maxContacts <= 0 means no limit; an empty UID on update
//     keeps the stored one; a UID is unique within a book; a failed write
//     does not move the book's rev.
//   - DeleteRegistration of a registration already gone is not an error;
//     neither is a delete of one in ChangeRegistrations.
//   - UpdateCall with a zero StartedAt keeps the stored one.
//   - The empty Role is stored and returned as store.RoleCustomer.
//   - RelayCalls lists relay records (Direction set) by QueuedAt.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/z5vrs/z5/internal/store"
)

// conformanceCase is one case of a conformance suite, run on a fresh
// store.
type conformanceCase struct {
	name string
	fn   func(t *testing.T, s store.Store)
}

// runCases runs each case as a subtest on a store open makes.
func runCases(t *testing.T, open func(t *testing.T) store.Store, cases []conformanceCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open(t)) })
	}
}

// Run runs the suite. open must return an empty store of its own for each
// call and arrange (t.Cleanup) for it to be closed; the suite may close it
// itself too, so Close must be idempotent.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	runCases(t, open, []conformanceCase{
		{"Customers", testCustomers},
		{"LoginLockout", testLoginLockout},
		{"LoginFailuresConcurrent", testLoginFailuresConcurrent},
		{"Numbers", testNumbers},
		{"Devices", testDevices},
		{"DeviceChanges", testDeviceChanges},
		{"Sessions", testSessions},
		{"SessionRevocation", testSessionRevocation},
		{"SessionExpiry", testSessionExpiry},
		{"ContactRoundTrip", testContactRoundTrip},
		{"ContactDefaults", testContactDefaults},
		{"ContactErrors", testContactErrors},
		{"ContactETag", testContactETag},
		{"ContactConcurrentUpdate", testContactConcurrentUpdate},
		{"ContactLimit", testContactLimit},
		{"ContactChanges", testContactChanges},
		{"Licenses", testLicenses},
		{"Registrations", testRegistrations},
		{"ChangeRegistrations", testChangeRegistrations},
		{"Nodes", testNodes},
		{"Calls", testCalls},
		{"ListCalls", testListCalls},
		{"Roles", testRoles},
		{"DeleteCustomer", testDeleteCustomer},
		{"Locations", testLocations},
		{"RelayCalls", testRelayCalls},
		{"Close", testClose},
	})
}

// t0 is a fixed instant with microsecond precision (what PostgreSQL keeps),
// in the future so no implementation's housekeeping treats it as past.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 678901000, time.UTC)

// cmpOpts treat nil and empty slices alike; times compare with Equal.
var cmpOpts = []cmp.Option{cmpopts.EquateEmpty()}

func diff(t *testing.T, what string, want, got any) {
	t.Helper()
	if d := cmp.Diff(want, got, cmpOpts...); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, d)
	}
}

func must[T any](t *testing.T, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// wantErr checks that err wraps sentinel.
func wantErr(t *testing.T, what string, err, sentinel error) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Errorf("%s: error %v, want %v", what, err, sentinel)
	}
}

// wantSomeErr checks that bad input is refused, with any error.
func wantSomeErr(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want one", what)
	}
}

func mustCustomer(t *testing.T, s store.Store, username string) store.Customer {
	t.Helper()
	return must[store.Customer](t, "create customer "+username)(s.CreateCustomer(t.Context(), store.Customer{
		Username: username, DisplayName: strings.ToUpper(username), PasswordHash: "$argon2id$v=19$x", CreatedAt: t0,
	}))
}

func mustNumber(t *testing.T, s store.Store, customerID int64, number string) store.Number {
	t.Helper()
	n := store.Number{Number: number, CustomerID: customerID, Label: "label " + number, CreatedAt: t0}
	noErr(t, "add number "+number, s.AddNumber(t.Context(), n))
	return n
}

// mustOwner creates a customer holding number, for tests that need a
// number to exist (an implementation may enforce it).
func mustOwner(t *testing.T, s store.Store, username, number string) {
	t.Helper()
	mustNumber(t, s, mustCustomer(t, s, username).ID, number)
}

func mustDevice(t *testing.T, s store.Store, number, sipUser string) store.Device {
	t.Helper()
	return must[store.Device](t, "create device "+sipUser)(s.CreateDevice(t.Context(), store.Device{
		Number: number, Kind: store.DeviceZ5, Name: "host-" + sipUser, SIPUser: sipUser,
		Cred:       store.NewCredentials(sipUser, "mcs.z5.test", "secret-"+sipUser),
		InstanceID: "<urn:uuid:00000000-0000-4000-8000-" + fmt.Sprintf("%012d", len(sipUser)) + ">",
		CreatedAt:  t0,
	}))
}

// parallel runs fn(i) for i in [0, n) at once and returns the errors.
func parallel(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

func testCustomers(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice := store.Customer{Username: "alice", DisplayName: "Alice A.", PasswordHash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA", Role: store.RoleCustomer, CreatedAt: t0}
	got := must[store.Customer](t, "create alice")(s.CreateCustomer(ctx, alice))
	if got.ID <= 0 {
		t.Fatalf("create alice: ID %d, want > 0", got.ID)
	}
	alice.ID = got.ID
	diff(t, "created alice", alice, got)
	diff(t, "Customer(alice)", alice, must[store.Customer](t, "Customer")(s.Customer(ctx, alice.ID)))
	diff(t, "CustomerByUsername(alice)", alice, must[store.Customer](t, "CustomerByUsername")(s.CustomerByUsername(ctx, "alice")))

	// CreatedAt defaults to now, and what is returned is what is stored.
	before := time.Now().Add(-time.Second)
	bob := must[store.Customer](t, "create bob")(s.CreateCustomer(ctx, store.Customer{Username: "bob"}))
	if bob.CreatedAt.Before(before) || bob.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("bob.CreatedAt = %v, want about now", bob.CreatedAt)
	}
	if bob.ID == alice.ID {
		t.Errorf("bob and alice share ID %d", bob.ID)
	}
	diff(t, "Customer(bob)", bob, must[store.Customer](t, "Customer")(s.Customer(ctx, bob.ID)))

	_, err := s.CreateCustomer(ctx, store.Customer{Username: "alice", DisplayName: "another"})
	wantErr(t, "create duplicate alice", err, store.ErrExists)
	_, err = s.CreateCustomer(ctx, store.Customer{})
	wantSomeErr(t, "create customer without username", err)
	_, err = s.Customer(ctx, bob.ID+1000)
	wantErr(t, "Customer(missing)", err, store.ErrNotFound)
	_, err = s.CustomerByUsername(ctx, "nobody")
	wantErr(t, "CustomerByUsername(missing)", err, store.ErrNotFound)

	diff(t, "ListCustomers", []store.Customer{alice, bob}, must[[]store.Customer](t, "ListCustomers")(s.ListCustomers(ctx)))

	noErr(t, "SetPasswordHash", s.SetPasswordHash(ctx, alice.ID, "$argon2id$new"))
	alice.PasswordHash = "$argon2id$new"
	diff(t, "alice after SetPasswordHash", alice, must[store.Customer](t, "Customer")(s.Customer(ctx, alice.ID)))
	wantErr(t, "SetPasswordHash(missing)", s.SetPasswordHash(ctx, bob.ID+1000, "x"), store.ErrNotFound)
}

func testLoginLockout(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := mustCustomer(t, s, "carol")
	const maxFailures, lockout = 3, 15 * time.Minute
	fail := func(now time.Time, wantFailures int, wantLocked time.Time) {
		t.Helper()
		got := must[store.Customer](t, "RecordLoginFailure")(s.RecordLoginFailure(ctx, c.ID, now, maxFailures, lockout))
		if got.Failures != wantFailures || !got.LockedUntil.Equal(wantLocked) {
			t.Errorf("failure at %v: Failures %d LockedUntil %v, want %d %v", now, got.Failures, got.LockedUntil, wantFailures, wantLocked)
		}
		stored := must[store.Customer](t, "Customer")(s.Customer(ctx, c.ID))
		diff(t, "stored customer after failure", got, stored)
	}
	fail(t0, 1, time.Time{})
	fail(t0.Add(time.Second), 2, time.Time{})
	lockedUntil := t0.Add(2 * time.Second).Add(lockout)
	fail(t0.Add(2*time.Second), 3, lockedUntil)
	// Failing while locked counts but does not extend the lock.
	fail(t0.Add(time.Minute), 4, lockedUntil)
	// Once the lock has run out (now >= LockedUntil) the count restarts.
	fail(lockedUntil, 1, time.Time{})
	fail(lockedUntil.Add(time.Second), 2, time.Time{})

	noErr(t, "ResetLoginFailures", s.ResetLoginFailures(ctx, c.ID))
	got := must[store.Customer](t, "Customer")(s.Customer(ctx, c.ID))
	if got.Failures != 0 || !got.LockedUntil.IsZero() {
		t.Errorf("after reset: Failures %d LockedUntil %v, want 0 and zero", got.Failures, got.LockedUntil)
	}
	// Lock, then reset clears the lock too.
	for i := 0; i < maxFailures; i++ {
		must[store.Customer](t, "RecordLoginFailure")(s.RecordLoginFailure(ctx, c.ID, t0, maxFailures, lockout))
	}
	noErr(t, "ResetLoginFailures", s.ResetLoginFailures(ctx, c.ID))
	if got := must[store.Customer](t, "Customer")(s.Customer(ctx, c.ID)); !got.LockedUntil.IsZero() {
		t.Errorf("after reset: LockedUntil %v, want zero", got.LockedUntil)
	}

	_, err := s.RecordLoginFailure(ctx, c.ID+1000, t0, maxFailures, lockout)
	wantErr(t, "RecordLoginFailure(missing)", err, store.ErrNotFound)
	wantErr(t, "ResetLoginFailures(missing)", s.ResetLoginFailures(ctx, c.ID+1000), store.ErrNotFound)
}

func testLoginFailuresConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := mustCustomer(t, s, "dave")
	const n = 8
	counts := make([]int, n)
	errs := parallel(n, func(i int) error {
		got, err := s.RecordLoginFailure(ctx, c.ID, t0, 100, time.Minute)
		counts[i] = got.Failures
		return err
	})
	for i, err := range errs {
		noErr(t, fmt.Sprintf("failure %d", i), err)
	}
	// Each increment saw a different count: none was lost.
	sort.Ints(counts)
	diff(t, "counts returned", []int{1, 2, 3, 4, 5, 6, 7, 8}, counts)
	if got := must[store.Customer](t, "Customer")(s.Customer(ctx, c.ID)); got.Failures != n {
		t.Errorf("Failures = %d, want %d", got.Failures, n)
	}
}

func testNumbers(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := mustCustomer(t, s, "erin")
	other := mustCustomer(t, s, "frank")
	n1 := mustNumber(t, s, c.ID, "2025550101")
	n2 := mustNumber(t, s, c.ID, "2025550100")
	n3 := mustNumber(t, s, other.ID, "3125550199")

	diff(t, "Number", n1, must[store.Number](t, "Number")(s.Number(ctx, n1.Number)))
	diff(t, "NumbersOf(erin)", []store.Number{n2, n1}, must[[]store.Number](t, "NumbersOf")(s.NumbersOf(ctx, c.ID)))
	diff(t, "NumbersOf(frank)", []store.Number{n3}, must[[]store.Number](t, "NumbersOf")(s.NumbersOf(ctx, other.ID)))
	diff(t, "NumbersOf(missing)", []store.Number(nil), must[[]store.Number](t, "NumbersOf")(s.NumbersOf(ctx, other.ID+1000)))

	wantErr(t, "AddNumber(taken, same customer)", s.AddNumber(ctx, store.Number{Number: n1.Number, CustomerID: c.ID}), store.ErrExists)
	wantErr(t, "AddNumber(taken, other customer)", s.AddNumber(ctx, store.Number{Number: n1.Number, CustomerID: other.ID}), store.ErrExists)
	wantErr(t, "AddNumber(unknown customer)", s.AddNumber(ctx, store.Number{Number: "4155550123", CustomerID: other.ID + 1000}), store.ErrNotFound)
	for _, bad := range []string{"", "12345", "1025550100", "2021550100", "+12025550100", "202555010x"} {
		wantSomeErr(t, fmt.Sprintf("AddNumber(%q)", bad), s.AddNumber(ctx, store.Number{Number: bad, CustomerID: c.ID}))
	}
	_, err := s.Number(ctx, "4155550123")
	wantErr(t, "Number(missing)", err, store.ErrNotFound)

	// CreatedAt defaults to now.
	noErr(t, "AddNumber without CreatedAt", s.AddNumber(ctx, store.Number{Number: "6175550100", CustomerID: c.ID}))
	if got := must[store.Number](t, "Number")(s.Number(ctx, "6175550100")); got.CreatedAt.IsZero() {
		t.Error("Number.CreatedAt not filled in")
	}
}

func testDevices(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustOwner(t, s, "gina", "2025550100")
	mustOwner(t, s, "hank", "3125550100")
	d1 := store.Device{
		Number: "2025550100", Kind: store.DeviceZ5, Name: "gina-laptop", SIPUser: "2025550100-z5-1",
		Cred:       store.NewCredentials("2025550100-z5-1", "mcs.z5.test", "pw1"),
		InstanceID: "<urn:uuid:6fa6e8b6-6d0b-4b0e-9a53-3c0a2d5e8f11>", CreatedAt: t0,
	}
	got := must[store.Device](t, "CreateDevice")(s.CreateDevice(ctx, d1))
	if got.ID <= 0 {
		t.Fatalf("CreateDevice: ID %d, want > 0", got.ID)
	}
	d1.ID = got.ID
	diff(t, "created device", d1, got)
	diff(t, "Device", d1, must[store.Device](t, "Device")(s.Device(ctx, d1.ID)))
	diff(t, "DeviceBySIPUser", d1, must[store.Device](t, "DeviceBySIPUser")(s.DeviceBySIPUser(ctx, d1.SIPUser)))

	d2 := must[store.Device](t, "CreateDevice")(s.CreateDevice(ctx, store.Device{
		Number: "2025550100", Kind: store.DeviceSIP, Name: "desk videophone", SIPUser: "2025550100",
		Cred: store.NewCredentials("2025550100", "mcs.z5.test", "pw2"),
	}))
	if d2.ID == d1.ID || d2.CreatedAt.IsZero() {
		t.Errorf("second device: ID %d (first %d), CreatedAt %v", d2.ID, d1.ID, d2.CreatedAt)
	}
	d3 := mustDevice(t, s, "3125550100", "hank-1")
	diff(t, "DevicesOf(2025550100)", []store.Device{d1, d2}, must[[]store.Device](t, "DevicesOf")(s.DevicesOf(ctx, "2025550100")))
	diff(t, "DevicesOf(3125550100)", []store.Device{d3}, must[[]store.Device](t, "DevicesOf")(s.DevicesOf(ctx, "3125550100")))
	diff(t, "DevicesOf(missing)", []store.Device(nil), must[[]store.Device](t, "DevicesOf")(s.DevicesOf(ctx, "4155550100")))

	_, err := s.CreateDevice(ctx, store.Device{Number: "3125550100", Kind: store.DeviceSIP, SIPUser: d1.SIPUser})
	wantErr(t, "CreateDevice(SIP user taken)", err, store.ErrExists)
	_, err = s.CreateDevice(ctx, store.Device{Number: "4155550100", Kind: store.DeviceSIP, SIPUser: "nobody"})
	wantErr(t, "CreateDevice(unknown number)", err, store.ErrNotFound)
	_, err = s.CreateDevice(ctx, store.Device{Number: "2025550100", Kind: "fax", SIPUser: "fax"})
	wantSomeErr(t, "CreateDevice(kind fax)", err)
	_, err = s.CreateDevice(ctx, store.Device{Number: "2025550100", Kind: store.DeviceSIP})
	wantSomeErr(t, "CreateDevice(no SIP user)", err)
	_, err = s.Device(ctx, d3.ID+1000)
	wantErr(t, "Device(missing)", err, store.ErrNotFound)
	_, err = s.DeviceBySIPUser(ctx, "nobody")
	wantErr(t, "DeviceBySIPUser(missing)", err, store.ErrNotFound)

	cred := store.NewCredentials(d1.SIPUser, "mcs.z5.test", "new password")
	noErr(t, "UpdateDeviceCredentials", s.UpdateDeviceCredentials(ctx, d1.ID, cred))
	d1.Cred = cred
	diff(t, "device after new credentials", d1, must[store.Device](t, "Device")(s.Device(ctx, d1.ID)))
	diff(t, "other device unchanged", d2, must[store.Device](t, "Device")(s.Device(ctx, d2.ID)))
	wantErr(t, "UpdateDeviceCredentials(missing)", s.UpdateDeviceCredentials(ctx, d3.ID+1000, cred), store.ErrNotFound)
}

func testSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := mustCustomer(t, s, "ivy")
	mustNumber(t, s, c.ID, "2025550100")
	d := mustDevice(t, s, "2025550100", "ivy-1")
	zd := store.Session{
		TokenHash: store.TokenHash("zdial-token"), Kind: store.SessionZDial, CustomerID: c.ID,
		CreatedAt: t0, ExpiresAt: t0.Add(12 * time.Hour),
	}
	mcs := store.Session{
		TokenHash: store.TokenHash("mcs-token"), Kind: store.SessionMCS, CustomerID: c.ID,
		Number: "2025550100", DeviceID: d.ID, ParentHash: zd.TokenHash,
		CreatedAt: t0.Add(time.Second), ExpiresAt: t0.Add(24 * time.Hour),
	}
	noErr(t, "CreateSession(zdial)", s.CreateSession(ctx, zd))
	noErr(t, "CreateSession(mcs)", s.CreateSession(ctx, mcs))
	diff(t, "zdial session", zd, must[store.Session](t, "Session")(s.Session(ctx, zd.TokenHash)))
	diff(t, "mcs session", mcs, must[store.Session](t, "Session")(s.Session(ctx, mcs.TokenHash)))
	if got := must[store.Session](t, "Session")(s.Session(ctx, zd.TokenHash)); !got.Valid(t0.Add(time.Hour)) {
		t.Error("fresh session not Valid")
	}

	wantErr(t, "CreateSession(duplicate)", s.CreateSession(ctx, zd), store.ErrExists)
	wantErr(t, "CreateSession(unknown customer)", s.CreateSession(ctx, store.Session{
		TokenHash: store.TokenHash("orphan"), Kind: store.SessionZDial, CustomerID: c.ID + 1000, ExpiresAt: t0,
	}), store.ErrNotFound)
	_, err := s.Session(ctx, store.TokenHash("unknown"))
	wantErr(t, "Session(missing)", err, store.ErrNotFound)
}

func testSessionRevocation(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := mustCustomer(t, s, "jack")
	sess := func(token, parent string) store.Session {
		se := store.Session{
			TokenHash: store.TokenHash(token), Kind: store.SessionZDial, CustomerID: c.ID,
			CreatedAt: t0, ExpiresAt: t0.Add(time.Hour),
		}
		if parent != "" {
			se.Kind, se.ParentHash, se.Number = store.SessionMCS, store.TokenHash(parent), "2025550100"
		}
		noErr(t, "CreateSession "+token, s.CreateSession(ctx, se))
		return se
	}
	login := sess("login", "")
	child1 := sess("child1", "login")
	child2 := sess("child2", "login")
	other := sess("other-login", "")
	otherChild := sess("other-child", "other-login")

	revokedAt := t0.Add(5 * time.Minute)
	noErr(t, "RevokeSession(login)", s.RevokeSession(ctx, login.TokenHash, revokedAt))
	for _, se := range []store.Session{login, child1, child2} {
		got := must[store.Session](t, "Session")(s.Session(ctx, se.TokenHash))
		if !got.RevokedAt.Equal(revokedAt) || got.Valid(t0.Add(6*time.Minute)) {
			t.Errorf("session %x: RevokedAt %v, want %v (cascade from its login)", se.TokenHash[:4], got.RevokedAt, revokedAt)
		}
	}
	for _, se := range []store.Session{other, otherChild} {
		if got := must[store.Session](t, "Session")(s.Session(ctx, se.TokenHash)); !got.RevokedAt.IsZero() {
			t.Errorf("unrelated session %x revoked at %v", se.TokenHash[:4], got.RevokedAt)
		}
	}

	// Revoking a child leaves its parent alone.
	noErr(t, "RevokeSession(other-child)", s.RevokeSession(ctx, otherChild.TokenHash, revokedAt))
	if got := must[store.Session](t, "Session")(s.Session(ctx, other.TokenHash)); !got.Valid(t0) {
		t.Error("revoking a child revoked its parent")
	}
	// Revoking again keeps the first time.
	noErr(t, "RevokeSession(login) again", s.RevokeSession(ctx, login.TokenHash, revokedAt.Add(time.Minute)))
	if got := must[store.Session](t, "Session")(s.Session(ctx, login.TokenHash)); !got.RevokedAt.Equal(revokedAt) {
		t.Errorf("second revocation moved RevokedAt to %v", got.RevokedAt)
	}
	wantErr(t, "RevokeSession(missing)", s.RevokeSession(ctx, store.TokenHash("unknown"), revokedAt), store.ErrNotFound)
}

func testSessionExpiry(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := mustCustomer(t, s, "kate")
	var hashes [][]byte
	for i := 1; i <= 3; i++ {
		se := store.Session{
			TokenHash: store.TokenHash(fmt.Sprint("token", i)), Kind: store.SessionZDial, CustomerID: c.ID,
			CreatedAt: t0, ExpiresAt: t0.Add(time.Duration(i) * time.Minute),
		}
		noErr(t, "CreateSession", s.CreateSession(ctx, se))
		hashes = append(hashes, se.TokenHash)
	}
	now := t0.Add(2 * time.Minute)
	if got := must[store.Session](t, "Session")(s.Session(ctx, hashes[1])); got.Valid(now) {
		t.Error("session expiring at now is Valid")
	}
	n := must[int](t, "DeleteExpiredSessions")(s.DeleteExpiredSessions(ctx, now))
	if n != 2 {
		t.Errorf("DeleteExpiredSessions = %d, want 2 (expiry at or before now)", n)
	}
	for i, h := range hashes[:2] {
		_, err := s.Session(ctx, h)
		wantErr(t, fmt.Sprint("expired session ", i+1), err, store.ErrNotFound)
	}
	if got := must[store.Session](t, "Session")(s.Session(ctx, hashes[2])); !got.Valid(now) {
		t.Error("unexpired session was deleted or changed")
	}
	if n := must[int](t, "DeleteExpiredSessions")(s.DeleteExpiredSessions(ctx, now)); n != 0 {
		t.Errorf("second DeleteExpiredSessions = %d, want 0", n)
	}
}

// fullContact sets every field a caller may set.
func fullContact(owner, id string) store.Contact {
	return store.Contact{
		Owner: owner, ID: id, UID: "urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427-" + id,
		Name: "Lena Müller", GivenName: "Lena", FamilyName: "Müller", Number: "3125550142",
		Phones: []store.Phone{
			{Type: "video", Number: "sip:lena@vrs.example"},
			{Type: "text", Number: "3125550143"},
			{Type: "cell", Number: "3125550144"},
		},
		Email: "lena@example.com", Organization: "Deaf Community Center",
		Note: "prefers ASL\nline two, with \"quotes\" and ; , \\ separators", Favorite: true,
	}
}

func testContactRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	const owner = "2025550100"
	mustOwner(t, s, "lena", owner)
	want := fullContact(owner, "lena-1")
	got := must[store.Contact](t, "CreateContact")(s.CreateContact(ctx, want, 0))
	want.Version, want.Rev, want.UpdatedAt = 1, got.Rev, got.UpdatedAt
	diff(t, "created contact", want, got)
	diff(t, "Contact", want, must[store.Contact](t, "Contact")(s.Contact(ctx, owner, want.ID)))
	diff(t, "ListContacts", []store.Contact{want}, must[[]store.Contact](t, "ListContacts")(s.ListContacts(ctx, owner)))

	// An update replaces every field, clearing the ones left empty.
	upd := store.Contact{Owner: owner, ID: want.ID, UID: want.UID, Name: "Lena M.", Number: "sip:lena@vrs.example"}
	got = must[store.Contact](t, "UpdateContact")(s.UpdateContact(ctx, upd, 1))
	upd.Version, upd.Rev, upd.UpdatedAt = 2, got.Rev, got.UpdatedAt
	diff(t, "updated contact", upd, got)
	diff(t, "Contact after update", upd, must[store.Contact](t, "Contact")(s.Contact(ctx, owner, want.ID)))
	if got.Rev <= want.Rev {
		t.Errorf("update Rev %d, want > %d", got.Rev, want.Rev)
	}

	// Set them all again.
	full := fullContact(owner, want.ID)
	got = must[store.Contact](t, "UpdateContact")(s.UpdateContact(ctx, full, 2))
	full.Version, full.Rev, full.UpdatedAt = 3, got.Rev, got.UpdatedAt
	diff(t, "contact updated back", full, must[store.Contact](t, "Contact")(s.Contact(ctx, owner, want.ID)))
}

var generatedID = regexp.MustCompile(`^[A-Za-z0-9_-]{8,64}$`)

func testContactDefaults(t *testing.T, s store.Store) {
	ctx := t.Context()
	const owner = "2025550100"
	mustOwner(t, s, "mia", owner)
	before := time.Now().Add(-time.Second)
	a := must[store.Contact](t, "CreateContact")(s.CreateContact(ctx, store.Contact{Owner: owner, Name: "A"}, 10))
	b := must[store.Contact](t, "CreateContact")(s.CreateContact(ctx, store.Contact{Owner: owner, Name: "B"}, 10))
	after := time.Now().Add(time.Second)
	for _, c := range []store.Contact{a, b} {
		if !generatedID.MatchString(c.ID) {
			t.Errorf("generated ID %q is not URL-safe", c.ID)
		}
		if !strings.HasPrefix(c.UID, "urn:uuid:") || len(c.UID) != len("urn:uuid:")+36 {
			t.Errorf("generated UID %q, want urn:uuid:<uuid>", c.UID)
		}
		if c.Version != 1 || c.Rev <= 0 {
			t.Errorf("new contact Version %d Rev %d, want 1 and > 0", c.Version, c.Rev)
		}
		if c.UpdatedAt.Before(before) || c.UpdatedAt.After(after) {
			t.Errorf("UpdatedAt %v, want about now", c.UpdatedAt)
		}
		diff(t, "stored contact", c, must[store.Contact](t, "Contact")(s.Contact(ctx, owner, c.ID)))
	}
	if a.ID == b.ID || a.UID == b.UID {
		t.Errorf("two contacts share ID or UID: %+v %+v", a, b)
	}
	if b.Rev <= a.Rev {
		t.Errorf("Rev not increasing: %d then %d", a.Rev, b.Rev)
	}
	// An empty UID on update keeps the stored one.
	u := must[store.Contact](t, "UpdateContact")(s.UpdateContact(ctx, store.Contact{Owner: owner, ID: a.ID, Name: "A2"}, 0))
	if u.UID != a.UID {
		t.Errorf("update without UID: UID %q, want %q kept", u.UID, a.UID)
	}
	diff(t, "stored after update", u, must[store.Contact](t, "Contact")(s.Contact(ctx, owner, a.ID)))
}

func testContactErrors(t *testing.T, s store.Store) {
	ctx := t.Context()
	const owner, owner2 = "2025550100", "3125550100"
	mustOwner(t, s, "nina", owner)
	mustOwner(t, s, "otto", owner2)
	a := must[store.Contact](t, "CreateContact")(s.CreateContact(ctx, fullContact(owner, "a"), 0))

	_, err := s.CreateContact(ctx, store.Contact{Owner: owner, ID: "a", Name: "dup"}, 0)
	wantErr(t, "CreateContact(ID taken)", err, store.ErrExists)
	_, err = s.CreateContact(ctx, store.Contact{Owner: owner, ID: "b", UID: a.UID, Name: "dup uid"}, 0)
	wantErr(t, "CreateContact(UID taken in book)", err, store.ErrExists)
	// IDs and UIDs are per book.
	must[store.Contact](t, "CreateContact in other book")(s.CreateContact(ctx, fullContact(owner2, "a"), 0))

	_, err = s.Contact(ctx, owner, "missing")
	wantErr(t, "Contact(missing)", err, store.ErrNotFound)
	_, err = s.Contact(ctx, "4155550100", "a")
	wantErr(t, "Contact(other book)", err, store.ErrNotFound)
	_, err = s.UpdateContact(ctx, store.Contact{Owner: owner, ID: "missing", Name: "x"}, 0)
	wantErr(t, "UpdateContact(missing)", err, store.ErrNotFound)
	wantErr(t, "DeleteContact(missing)", s.DeleteContact(ctx, owner, "missing", 0), store.ErrNotFound)
	diff(t, "ListContacts(empty book)", []store.Contact(nil), must[[]store.Contact](t, "ListContacts")(s.ListContacts(ctx, "4155550100")))

	b := must[store.Contact](t, "CreateContact")(s.CreateContact(ctx, store.Contact{Owner: owner, ID: "b", Name: "B"}, 0))
	_, err = s.UpdateContact(ctx, store.Contact{Owner: owner, ID: "b", UID: a.UID, Name: "B"}, 0)
	wantErr(t, "UpdateContact(UID of another contact)", err, store.ErrExists)
	diff(t, "contact after refused update", b, must[store.Contact](t, "Contact")(s.Contact(ctx, owner, "b")))

	for _, bad := range []string{"a/b", "a b", "tab\t", "nl\n"} {
		_, err := s.CreateContact(ctx, store.Contact{Owner: owner, ID: bad, Name: "bad"}, 0)
		wantSomeErr(t, fmt.Sprintf("CreateContact(ID %q)", bad), err)
	}
	_, err = s.CreateContact(ctx, store.Contact{Name: "no owner"}, 0)
	wantSomeErr(t, "CreateContact(no owner)", err)
}

func testContactETag(t *testing.T, s store.Store) {
	ctx := t.Context()
	const owner = "2025550100"
	mustOwner(t, s, "pia", owner)
	c := must[store.Contact](t, "CreateContact")(s.CreateContact(ctx, fullContact(owner, "c"), 0))

	c.Name = "v2"
	v2 := must[store.Contact](t, "UpdateContact(if 1)")(s.UpdateContact(ctx, c, 1))
	if v2.Version != 2 {
		t.Fatalf("Version after update = %d, want 2", v2.Version)
	}
	c.Name = "stale"
	_, err := s.UpdateContact(ctx, c, 1)
	wantErr(t, "UpdateContact(stale if 1)", err, store.ErrConflict)
	diff(t, "contact after refused update", v2, must[store.Contact](t, "Contact")(s.Contact(ctx, owner, "c")))

	c.Name = "v3"
	v3 := must[store.Contact](t, "UpdateContact(unconditional)")(s.UpdateContact(ctx, c, 0))
	if v3.Version != 3 || v3.Name != "v3" {
		t.Fatalf("after unconditional update: Version %d Name %q", v3.Version, v3.Name)
	}

	wantErr(t, "DeleteContact(stale if 2)", s.DeleteContact(ctx, owner, "c", 2), store.ErrConflict)
	diff(t, "contact after refused delete", v3, must[store.Contact](t, "Contact")(s.Contact(ctx, owner, "c")))
	noErr(t, "DeleteContact(if 3)", s.DeleteContact(ctx, owner, "c", 3))
	_, err = s.Contact(ctx, owner, "c")
	wantErr(t, "Contact after delete", err, store.ErrNotFound)

	d := must[store.Contact](t, "CreateContact")(s.CreateContact(ctx, store.Contact{Owner: owner, ID: "d"}, 0))
	noErr(t, "DeleteContact(unconditional)", s.DeleteContact(ctx, owner, d.ID, 0))
	wantErr(t, "DeleteContact again", s.DeleteContact(ctx, owner, d.ID, 0), store.ErrNotFound)
}

func testContactConcurrentUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	const owner, n = "2025550100", 8
	mustOwner(t, s, "quinn", owner)
	RaceUpdate(t, owner, s)

	// Eight deleters holding version 2: one deletes, the rest fail.
	errs := parallel(n, func(int) error { return s.DeleteContact(ctx, owner, "race", 2) })
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict):
			t.Errorf("deleter %d: error %v, want nil, ErrNotFound or ErrConflict", i, err)
		}
	}
	if wins != 1 {
		t.Errorf("%d deleters succeeded, want 1", wins)
	}
}

// RaceUpdate has eight writers, spread over nodes (stores on one
// database), update one new contact of owner's book at once, all holding
// version 1: exactly one may win (no lost update), and every node then
// reads the winner's version 2.
func RaceUpdate(t *testing.T, owner string, nodes ...store.Store) {
	t.Helper()
	ctx := t.Context()
	const writers = 8
	c := must[store.Contact](t, "CreateContact")(nodes[0].CreateContact(ctx, store.Contact{Owner: owner, ID: "race", Name: "v1"}, 0))
	errs := parallel(writers, func(i int) error {
		u := c
		u.Name = fmt.Sprint("writer ", i)
		_, err := nodes[i%len(nodes)].UpdateContact(ctx, u, 1)
		return err
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Errorf("writers %d and %d both won with If-Match 1", winner, i)
			}
			winner = i
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("writer %d: error %v, want nil or ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer won")
	}
	for i, n := range nodes {
		got := must[store.Contact](t, "Contact")(n.Contact(ctx, owner, "race"))
		if got.Version != 2 || got.Name != fmt.Sprint("writer ", winner) {
			t.Errorf("node %d after race: Version %d Name %q, want 2 %q", i, got.Version, got.Name, fmt.Sprint("writer ", winner))
		}
	}
}

func testContactLimit(t *testing.T, s store.Store) {
	ctx := t.Context()
	const owner, owner2, owner3 = "2025550100", "3125550100", "4155550100"
	mustOwner(t, s, "rita", owner)
	mustOwner(t, s, "sam", owner2)
	mustOwner(t, s, "tess", owner3)
	const max = 3
	var ids []string
	for i := range max {
		c := must[store.Contact](t, "CreateContact")(s.CreateContact(ctx, store.Contact{Owner: owner, Name: fmt.Sprint("c", i)}, max))
		ids = append(ids, c.ID)
	}
	_, err := s.CreateContact(ctx, store.Contact{Owner: owner, Name: "one too many"}, max)
	wantErr(t, "CreateContact beyond the limit", err, store.ErrLimit)
	// The limit is per book, and 0 means none.
	must[store.Contact](t, "CreateContact in other book")(s.CreateContact(ctx, store.Contact{Owner: owner2, Name: "x"}, max))
	must[store.Contact](t, "CreateContact with no limit")(s.CreateContact(ctx, store.Contact{Owner: owner2, Name: "y"}, 0))
	// Deleting makes room again.
	noErr(t, "DeleteContact", s.DeleteContact(ctx, owner, ids[0], 0))
	must[store.Contact](t, "CreateContact after delete")(s.CreateContact(ctx, store.Contact{Owner: owner, Name: "again"}, max))

	// Concurrent creators cannot overshoot the limit together.
	const limit, n = 5, 8
	errs := parallel(n, func(i int) error {
		_, err := s.CreateContact(ctx, store.Contact{Owner: owner3, Name: fmt.Sprint("racer ", i)}, limit)
		return err
	})
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrLimit):
			t.Errorf("creator %d: error %v, want nil or ErrLimit", i, err)
		}
	}
	if ok != limit {
		t.Errorf("%d concurrent creates succeeded, want %d", ok, limit)
	}
	if got := must[[]store.Contact](t, "ListContacts")(s.ListContacts(ctx, owner3)); len(got) != limit {
		t.Errorf("book holds %d contacts, want %d", len(got), limit)
	}
}

func testContactChanges(t *testing.T, s store.Store) {
	ctx := t.Context()
	const owner, owner2 = "2025550100", "3125550100"
	mustOwner(t, s, "uma", owner)
	mustOwner(t, s, "vic", owner2)
	changes := func(since int64) ([]store.ContactChange, int64) {
		t.Helper()
		ch, rev, err := s.ContactChanges(ctx, owner, since)
		if err != nil {
			t.Fatalf("ContactChanges(%d): %v", since, err)
		}
		return ch, rev
	}
	live := func(c store.Contact) store.ContactChange {
		return store.ContactChange{ID: c.ID, Contact: c, Rev: c.Rev}
	}

	ch, rev0 := changes(0)
	if len(ch) != 0 || rev0 != 0 {
		t.Errorf("empty book: %d changes, rev %d; want none and 0", len(ch), rev0)
	}

	a := must[store.Contact](t, "create a")(s.CreateContact(ctx, fullContact(owner, "a"), 0))
	b := must[store.Contact](t, "create b")(s.CreateContact(ctx, store.Contact{Owner: owner, ID: "b", Name: "B"}, 0))
	ch, rev := changes(0)
	diff(t, "changes after two creates", []store.ContactChange{live(a), live(b)}, ch)
	if rev != b.Rev || a.Rev >= b.Rev {
		t.Errorf("rev %d, a.Rev %d, b.Rev %d: want rev == b.Rev > a.Rev", rev, a.Rev, b.Rev)
	}

	// Another book has its own log and rev.
	x := must[store.Contact](t, "create in other book")(s.CreateContact(ctx, store.Contact{Owner: owner2, ID: "x"}, 0))
	ch2, rev2, err := s.ContactChanges(ctx, owner2, 0)
	noErr(t, "ContactChanges(other book)", err)
	diff(t, "other book's changes", []store.ContactChange{live(x)}, ch2)
	if rev2 != x.Rev {
		t.Errorf("other book rev %d, want %d", rev2, x.Rev)
	}
	if _, r := changes(0); r != rev {
		t.Errorf("a write to another book moved this book's rev from %d to %d", rev, r)
	}

	since := rev
	a.Name = "A2"
	a2 := must[store.Contact](t, "update a")(s.UpdateContact(ctx, a, a.Version))
	ch, rev = changes(since)
	diff(t, "changes after update", []store.ContactChange{live(a2)}, ch)
	if rev != a2.Rev || a2.Rev <= since {
		t.Errorf("rev %d, a2.Rev %d, since %d", rev, a2.Rev, since)
	}

	// A refused write leaves the log alone.
	_, err = s.UpdateContact(ctx, a, 1)
	wantErr(t, "stale update", err, store.ErrConflict)
	wantErr(t, "stale delete", s.DeleteContact(ctx, owner, "b", 99), store.ErrConflict)
	if _, r := changes(0); r != rev {
		t.Errorf("refused writes moved rev from %d to %d", rev, r)
	}

	since = rev
	noErr(t, "delete b", s.DeleteContact(ctx, owner, "b", 0))
	ch, rev = changes(since)
	if len(ch) != 1 || ch[0].ID != "b" || !ch[0].Deleted || ch[0].Rev != rev || rev <= since {
		t.Fatalf("changes after delete = %+v (rev %d), want one tombstone for b at rev %d > %d", ch, rev, rev, since)
	}
	diff(t, "tombstone contact", store.Contact{}, ch[0].Contact)
	tomb := ch[0]

	// From the start: each ID once, latest state, in Rev order.
	ch, _ = changes(0)
	diff(t, "all changes", []store.ContactChange{live(a2), tomb}, ch)
	// Up to date: nothing.
	ch, r := changes(rev)
	if len(ch) != 0 || r != rev {
		t.Errorf("changes since current rev: %+v rev %d, want none and %d", ch, r, rev)
	}

	// Re-created under the same ID, b is live again.
	b2 := must[store.Contact](t, "create b again")(s.CreateContact(ctx, store.Contact{Owner: owner, ID: "b", Name: "B again"}, 0))
	ch, _ = changes(0)
	diff(t, "changes after re-create", []store.ContactChange{live(a2), live(b2)}, ch)
	ch, _ = changes(tomb.Rev)
	diff(t, "changes since tombstone", []store.ContactChange{live(b2)}, ch)
}

func testLicenses(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustOwner(t, s, "wes", "2025550100")
	d := mustDevice(t, s, "2025550100", "wes-1")
	l := store.License{
		ID: "lic-0001", Number: "2025550100", DeviceID: d.ID, Features: []string{"video", "rtt"},
		NotBefore: t0, NotAfter: t0.Add(30 * 24 * time.Hour), IssuedAt: t0,
	}
	noErr(t, "RecordLicense", s.RecordLicense(ctx, l))
	wantErr(t, "RecordLicense(duplicate ID)", s.RecordLicense(ctx, l), store.ErrExists)
	l.ID, l.Features = "lic-0002", nil
	noErr(t, "RecordLicense(second, no features)", s.RecordLicense(ctx, l))
}

func testRegistrations(t *testing.T, s store.Store) {
	ctx := t.Context()
	const number, other = "2025550100", "3125550100"
	reg := func(device int64, node, flow string, expires time.Duration) store.Registration {
		return store.Registration{
			Number: number, DeviceID: device, Node: node, FlowID: flow,
			Contact:   fmt.Sprintf("<sip:%s@192.0.2.%d:5061;transport=tls>", number, device),
			Instance:  fmt.Sprintf("<urn:uuid:00000000-0000-4000-8000-%012d>", device),
			ExpiresAt: t0.Add(expires), UpdatedAt: t0,
		}
	}
	list := func(num string, now time.Time) []store.Registration {
		t.Helper()
		return must[[]store.Registration](t, "Registrations")(s.Registrations(ctx, num, now))
	}
	diff(t, "no registrations", []store.Registration(nil), list(number, t0))

	r1 := reg(1, "mcs1", "flow-a", time.Hour)
	r2 := reg(2, "mcs2", "flow-b", time.Minute)
	ro := reg(1, "mcs1", "flow-c", time.Hour)
	ro.Number = other
	for _, r := range []store.Registration{r2, r1, ro} {
		noErr(t, "PutRegistration", s.PutRegistration(ctx, r))
	}
	diff(t, "registrations at t0", []store.Registration{r1, r2}, list(number, t0))
	// Expired at its ExpiresAt and after.
	diff(t, "registrations at r2's expiry", []store.Registration{r1}, list(number, r2.ExpiresAt))
	diff(t, "registrations later", []store.Registration{r1}, list(number, t0.Add(2*time.Minute)))
	diff(t, "other number", []store.Registration{ro}, list(other, t0))

	// Put again on the same flow replaces; a second flow of one device adds.
	// (Times stay before r2's expiry: an implementation may sweep expired
	// registrations when a new one is put.)
	now := t0.Add(30 * time.Second)
	r1.Contact, r1.ExpiresAt, r1.UpdatedAt = "<sip:2025550100@198.51.100.7:5061;transport=tls>", t0.Add(2*time.Hour), now
	noErr(t, "PutRegistration(refresh)", s.PutRegistration(ctx, r1))
	r1b := reg(1, "mcs2", "flow-d", time.Hour)
	noErr(t, "PutRegistration(second flow)", s.PutRegistration(ctx, r1b))
	diff(t, "after refresh", []store.Registration{r1, r1b, r2}, list(number, now))

	noErr(t, "DeleteRegistration", s.DeleteRegistration(ctx, number, 1, "mcs1", "flow-a"))
	diff(t, "after delete", []store.Registration{r1b, r2}, list(number, now))
	noErr(t, "DeleteRegistration(already gone)", s.DeleteRegistration(ctx, number, 1, "mcs1", "flow-a"))
	diff(t, "other number after delete", []store.Registration{ro}, list(other, t0))
}

// testChangeRegistrations: a batch applies in order (a later change of
// the same row wins), puts and deletes mixed, a delete of a row never
// written included.
func testChangeRegistrations(t *testing.T, s store.Store) {
	ctx := t.Context()
	const number = "2025550100"
	reg := func(device int64, node, flow string) store.Registration {
		return store.Registration{
			Number: number, DeviceID: device, Node: node, FlowID: flow,
			Contact:   fmt.Sprintf("<sip:%s@192.0.2.%d:5060;transport=tcp>", number, device),
			ExpiresAt: t0.Add(time.Hour), UpdatedAt: t0,
		}
	}
	list := func() []store.Registration {
		t.Helper()
		return must[[]store.Registration](t, "Registrations")(s.Registrations(ctx, number, t0))
	}
	put := func(r store.Registration) store.RegistrationChange { return store.RegistrationChange{Registration: r} }
	del := func(r store.Registration) store.RegistrationChange {
		return store.RegistrationChange{Registration: r, Delete: true}
	}
	noErr(t, "ChangeRegistrations(none)", s.ChangeRegistrations(ctx, nil))

	a, b, c := reg(1, "mcs1", "flow-a"), reg(2, "mcs1", "flow-b"), reg(3, "mcs2", "flow-c")
	gone := reg(4, "mcs1", "flow-d")
	noErr(t, "PutRegistration", s.PutRegistration(ctx, gone))
	a2 := a
	a2.Contact = "<sip:2025550100@198.51.100.1:5060;transport=tcp>"
	noErr(t, "ChangeRegistrations", s.ChangeRegistrations(ctx, []store.RegistrationChange{
		put(a), put(b), del(gone), put(a2), put(c), del(b), del(reg(5, "mcs1", "never-written")),
	}))
	diff(t, "after a batch", []store.Registration{a2, c}, list())

}

func testNodes(t *testing.T, s store.Store) {
	ctx := t.Context()
	diff(t, "no nodes", []store.NodeStatus(nil), must[[]store.NodeStatus](t, "Nodes")(s.Nodes(ctx)))
	b := store.NodeStatus{Name: "mcs2", Site: "west", Address: "198.51.100.2", Healthy: true, LastSeen: t0}
	a := store.NodeStatus{Name: "mcs1", Site: "east", Address: "192.0.2.1", Healthy: true, LastSeen: t0}
	noErr(t, "Heartbeat(mcs2)", s.Heartbeat(ctx, b))
	noErr(t, "Heartbeat(mcs1)", s.Heartbeat(ctx, a))
	diff(t, "Nodes", []store.NodeStatus{a, b}, must[[]store.NodeStatus](t, "Nodes")(s.Nodes(ctx)))

	a.Healthy, a.Address, a.LastSeen = false, "192.0.2.10", t0.Add(10*time.Second)
	noErr(t, "Heartbeat(mcs1) again", s.Heartbeat(ctx, a))
	diff(t, "Nodes after second heartbeat", []store.NodeStatus{a, b}, must[[]store.NodeStatus](t, "Nodes")(s.Nodes(ctx)))
}

func testCalls(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := store.Call{CallID: "a84b4c76e66710@pc33.example", From: "2025550100", To: "3125550100", Node: "mcs1", StartedAt: t0}
	noErr(t, "CreateCall", s.CreateCall(ctx, c))
	diff(t, "new call", c, must[store.Call](t, "Call")(s.Call(ctx, c.CallID)))
	wantErr(t, "CreateCall(duplicate)", s.CreateCall(ctx, c), store.ErrExists)
	_, err := s.Call(ctx, "missing")
	wantErr(t, "Call(missing)", err, store.ErrNotFound)

	c.AnsweredAt, c.EndedAt = t0.Add(3*time.Second), t0.Add(95*time.Second)
	c.EndReason, c.Status = "bye", 200
	c.MediaStats = []store.StreamStats{
		{Leg: "caller", Media: "video", Packets: 1 << 33, Bytes: 1 << 40, Lost: -2, JitterMS: 3.25, Dropped: 17, RTCPCount: 95, Encrypted: true},
		{Leg: "callee", Media: "audio", Packets: 4700, Bytes: 752000, Lost: 3, JitterMS: 0.125, RTCPCount: 19},
	}
	noErr(t, "UpdateCall", s.UpdateCall(ctx, c))
	diff(t, "ended call", c, must[store.Call](t, "Call")(s.Call(ctx, c.CallID)))

	// A zero StartedAt keeps the stored start: billing depends on it.
	u := c
	u.StartedAt, u.EndReason = time.Time{}, "media-timeout"
	noErr(t, "UpdateCall without StartedAt", s.UpdateCall(ctx, u))
	c.EndReason = "media-timeout"
	diff(t, "call after update without StartedAt", c, must[store.Call](t, "Call")(s.Call(ctx, c.CallID)))

	wantErr(t, "UpdateCall(missing)", s.UpdateCall(ctx, store.Call{CallID: "missing", StartedAt: t0}), store.ErrNotFound)
}

func testListCalls(t *testing.T, s store.Store) {
	ctx := t.Context()
	mk := func(id, from, to string, at time.Duration) store.Call {
		c := store.Call{CallID: id, From: from, To: to, Node: "mcs1", StartedAt: t0.Add(at)}
		noErr(t, "CreateCall "+id, s.CreateCall(ctx, c))
		return c
	}
	const A, B, C, D, E = "2025550101", "2025550102", "2025550103", "2025550104", "2025550105"
	c1 := mk("c1", A, B, 0)
	c3 := mk("c3", C, A, 2*time.Minute)
	c2 := mk("c2", B, C, time.Minute)
	c4 := mk("c4", D, E, 3*time.Minute)

	tests := []struct {
		name string
		f    store.CallFilter
		want []store.Call
	}{
		{"all", store.CallFilter{}, []store.Call{c4, c3, c2, c1}},
		{"number as caller or callee", store.CallFilter{Number: A}, []store.Call{c3, c1}},
		{"since is inclusive", store.CallFilter{Since: t0.Add(time.Minute)}, []store.Call{c4, c3, c2}},
		{"limit", store.CallFilter{Limit: 2}, []store.Call{c4, c3}},
		{"number and since", store.CallFilter{Number: B, Since: t0.Add(time.Minute)}, []store.Call{c2}},
		{"all three", store.CallFilter{Number: C, Since: t0, Limit: 1}, []store.Call{c3}},
		{"unknown number", store.CallFilter{Number: "9995550100"}, nil},
	}
	for _, tt := range tests {
		got := must[[]store.Call](t, "ListCalls")(s.ListCalls(ctx, tt.f))
		diff(t, "ListCalls "+tt.name, tt.want, got)
	}
}

func testClose(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCustomer(t, s, "yara")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
	if _, err := s.ListCustomers(ctx); err == nil {
		t.Error("ListCustomers after Close succeeded")
	}
}
