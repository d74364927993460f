package storetest

import (
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/store"
)

// testRoles: roles and CA IDs round-trip; the empty role is a customer; a
// CA ID is unique and only an interpreter's; a station number is only its
// own interpreter's.
func testRoles(t *testing.T, s store.Store) {
	ctx := t.Context()
	cust := mustCustomer(t, s, "celia")
	if cust.Role != store.RoleCustomer {
		t.Errorf("customer created without a role: Role %q, want %q", cust.Role, store.RoleCustomer)
	}
	ip := store.Customer{Username: "ian", PasswordHash: "$argon2id$x", Role: store.RoleInterpreter, CAID: "1001", CreatedAt: t0}
	got := must[store.Customer](t, "create interpreter")(s.CreateCustomer(ctx, ip))
	ip.ID = got.ID
	diff(t, "created interpreter", ip, got)
	diff(t, "Customer(interpreter)", ip, must[store.Customer](t, "Customer")(s.Customer(ctx, ip.ID)))
	staff := must[store.Customer](t, "create staff")(s.CreateCustomer(ctx, store.Customer{Username: "sam", Role: store.RoleStaff, CreatedAt: t0}))
	diff(t, "CustomerByUsername(staff)", staff, must[store.Customer](t, "CustomerByUsername")(s.CustomerByUsername(ctx, "sam")))
	diff(t, "ListCustomers", []store.Customer{cust, ip, staff}, must[[]store.Customer](t, "ListCustomers")(s.ListCustomers(ctx)))

	_, err := s.CreateCustomer(ctx, store.Customer{Username: "ivy", Role: store.RoleInterpreter, CAID: "1001"})
	wantErr(t, "second interpreter with CA ID 1001", err, store.ErrExists)
	for _, bad := range []store.Customer{
		{Username: "bad1", Role: "operator"},
		{Username: "bad2", Role: store.RoleInterpreter},
		{Username: "bad3", Role: store.RoleInterpreter, CAID: "10-01"},
		{Username: "bad4", Role: store.RoleInterpreter, CAID: "12345678901234567"},
		{Username: "bad5", CAID: "1002"},
		{Username: "bad6", Role: store.RoleStaff, CAID: "1003"},
	} {
		_, err := s.CreateCustomer(ctx, bad)
		wantSomeErr(t, "create "+bad.Username, err)
	}

	station := store.StationNumber("1001")
	noErr(t, "AddNumber(station)", s.AddNumber(ctx, store.Number{Number: station, CustomerID: ip.ID, CreatedAt: t0}))
	diff(t, "Number(station)", store.Number{Number: station, CustomerID: ip.ID, CreatedAt: t0},
		must[store.Number](t, "Number")(s.Number(ctx, station)))
	wantSomeErr(t, "station number of another CA ID", s.AddNumber(ctx, store.Number{Number: "ca-1002", CustomerID: ip.ID}))
	wantSomeErr(t, "station number to a customer", s.AddNumber(ctx, store.Number{Number: "ca-1001x", CustomerID: cust.ID}))
	wantSomeErr(t, "malformed station number", s.AddNumber(ctx, store.Number{Number: "ca-", CustomerID: ip.ID}))
	wantErr(t, "station number taken", s.AddNumber(ctx, store.Number{Number: station, CustomerID: ip.ID}), store.ErrExists)
}

// testDeleteCustomer: the account goes with its numbers, devices,
// sessions, registrations and location; other accounts, call records and
// the location trail stay; its username and CA ID can be used again.
func testDeleteCustomer(t *testing.T, s store.Store) {
	ctx := t.Context()
	ip := must[store.Customer](t, "create interpreter")(s.CreateCustomer(ctx, store.Customer{Username: "ines", Role: store.RoleInterpreter, CAID: "77"}))
	station := store.StationNumber("77")
	mustNumber(t, s, ip.ID, station)
	dev := mustDevice(t, s, station, "ca-77-1")
	tok := []byte("token-of-ines-000000000000000000")
	noErr(t, "CreateSession", s.CreateSession(ctx, store.Session{TokenHash: tok, Kind: store.SessionMCS, CustomerID: ip.ID,
		Number: station, DeviceID: dev.ID, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
	noErr(t, "PutRegistration", s.PutRegistration(ctx, store.Registration{Number: station, DeviceID: dev.ID, Node: "mcs1",
		FlowID: "f1", ExpiresAt: t0.Add(time.Hour), UpdatedAt: t0}))
	must[store.Contact](t, "CreateContact")(s.CreateContact(ctx, store.Contact{Owner: station, Name: "Kim", Number: "2025550100"}, 0))
	noErr(t, "SetLocation", s.SetLocation(ctx, store.Location{CustomerID: ip.ID, Street: "1 Main St", City: "Austin", State: "TX", Zip: "78701"}))
	noErr(t, "CreateCall", s.CreateCall(ctx, store.Call{CallID: "kept", From: "2025550100", To: "3125550100", CAID: "77", Direction: store.CallOutbound, StartedAt: t0}))
	other := mustCustomer(t, s, "olga")
	mustNumber(t, s, other.ID, "2025550177")

	noErr(t, "DeleteCustomer", s.DeleteCustomer(ctx, ip.ID))
	_, err := s.Customer(ctx, ip.ID)
	wantErr(t, "Customer after delete", err, store.ErrNotFound)
	_, err = s.Number(ctx, station)
	wantErr(t, "Number after delete", err, store.ErrNotFound)
	_, err = s.Device(ctx, dev.ID)
	wantErr(t, "Device after delete", err, store.ErrNotFound)
	_, err = s.Session(ctx, tok)
	wantErr(t, "Session after delete", err, store.ErrNotFound)
	_, err = s.Location(ctx, ip.ID)
	wantErr(t, "Location after delete", err, store.ErrNotFound)
	diff(t, "Registrations after delete", []store.Registration(nil), must[[]store.Registration](t, "Registrations")(s.Registrations(ctx, station, t0)))
	diff(t, "contacts after delete", []store.Contact(nil), must[[]store.Contact](t, "ListContacts")(s.ListContacts(ctx, station)))
	if h := must[[]store.LocationChange](t, "LocationHistory")(s.LocationHistory(ctx, ip.ID)); len(h) != 1 {
		t.Errorf("location trail after delete: %d entries, want 1", len(h))
	}
	if c := must[store.Call](t, "Call")(s.Call(ctx, "kept")); c.CAID != "77" {
		t.Errorf("call record after delete: CAID %q, want 77", c.CAID)
	}
	must[store.Number](t, "other customer's number")(s.Number(ctx, "2025550177"))
	wantErr(t, "DeleteCustomer(missing)", s.DeleteCustomer(ctx, ip.ID), store.ErrNotFound)

	again := must[store.Customer](t, "re-create interpreter")(s.CreateCustomer(ctx, store.Customer{Username: "ines", Role: store.RoleInterpreter, CAID: "77"}))
	mustNumber(t, s, again.ID, station)
	diff(t, "contacts of the re-created station", []store.Contact(nil), must[[]store.Contact](t, "ListContacts")(s.ListContacts(ctx, station)))
}

// testLocations: a location round-trips, defaults Country and UpdatedAt,
// and every change is in the audit trail with the old and new address.
func testLocations(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := mustCustomer(t, s, "lena")
	_, err := s.Location(ctx, c.ID)
	wantErr(t, "Location(none yet)", err, store.ErrNotFound)
	diff(t, "LocationHistory(none yet)", []store.LocationChange(nil), must[[]store.LocationChange](t, "LocationHistory")(s.LocationHistory(ctx, c.ID)))

	first := store.Location{CustomerID: c.ID, Street: "1600 Pennsylvania Ave NW", City: "Washington", State: "DC", Zip: "20500",
		Country: "US", UpdatedAt: t0, UpdatedBy: "admin"}
	noErr(t, "SetLocation", s.SetLocation(ctx, first))
	diff(t, "Location", first, must[store.Location](t, "Location")(s.Location(ctx, c.ID)))

	// Country defaults to US, UpdatedAt to now.
	before := time.Now().Add(-time.Second)
	second := store.Location{CustomerID: c.ID, Street: "350 Fifth Avenue", City: "New York", State: "NY", Zip: "10118-0110", UpdatedBy: "lena"}
	noErr(t, "SetLocation again", s.SetLocation(ctx, second))
	got := must[store.Location](t, "Location")(s.Location(ctx, c.ID))
	if got.UpdatedAt.Before(before) || got.UpdatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("UpdatedAt = %v, want about now", got.UpdatedAt)
	}
	second.Country, second.UpdatedAt = "US", got.UpdatedAt
	diff(t, "Location after change", second, got)

	addr := func(l store.Location) store.Location {
		return store.Location{CustomerID: l.CustomerID, Street: l.Street, City: l.City, State: l.State, Zip: l.Zip, Country: l.Country}
	}
	diff(t, "LocationHistory", []store.LocationChange{
		{CustomerID: c.ID, At: first.UpdatedAt, By: "admin", New: first},
		{CustomerID: c.ID, At: second.UpdatedAt, By: "lena", Old: addr(first), New: second},
	}, must[[]store.LocationChange](t, "LocationHistory")(s.LocationHistory(ctx, c.ID)))

	wantErr(t, "SetLocation(unknown customer)", s.SetLocation(ctx, store.Location{CustomerID: c.ID + 1000,
		Street: "1 Main St", City: "Austin", State: "TX", Zip: "78701"}), store.ErrNotFound)
	wantSomeErr(t, "SetLocation(no street)", s.SetLocation(ctx, store.Location{CustomerID: c.ID, City: "Austin", State: "TX", Zip: "78701"}))
	if h := must[[]store.LocationChange](t, "LocationHistory")(s.LocationHistory(ctx, c.ID)); len(h) != 2 {
		t.Errorf("refused writes reached the trail: %d entries, want 2", len(h))
	}
}

// testRelayCalls: the relay fields round-trip through create and update,
// and RelayCalls lists the relay records queued in a window in QueuedAt
// order, leaving out point-to-point calls.
func testRelayCalls(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := store.Call{CallID: "relay-1@z5", From: "2025550100", To: "2125550100", Node: "mcs1", StartedAt: t0,
		Direction: store.CallOutbound, Dialed: "2125550100", UserNumber: "2025550100", UserIP: "2001:db8::7", QueuedAt: t0}
	noErr(t, "CreateCall(relay)", s.CreateCall(ctx, c))
	diff(t, "queued relay call", c, must[store.Call](t, "Call")(s.Call(ctx, c.CallID)))

	c.CAID, c.OfferedAt, c.SessionStart = "1001", t0.Add(2*time.Second), t0.Add(5*time.Second)
	c.AnsweredAt = c.SessionStart
	c.ConversationStart, c.ConversationEnd = t0.Add(9*time.Second), t0.Add(70*time.Second)
	c.SessionEnd, c.EndedAt, c.EndReason, c.Status = t0.Add(71*time.Second), t0.Add(71*time.Second), "bye", 200
	c.MediaStats = []store.StreamStats{{Leg: "caller", Media: "video", Packets: 10}, {Leg: "hearing", Media: "audio", Packets: 20},
		{Leg: "interpreter2", Media: "audio", Packets: 30}}
	noErr(t, "UpdateCall(relay)", s.UpdateCall(ctx, c))
	diff(t, "ended relay call", c, must[store.Call](t, "Call")(s.Call(ctx, c.CallID)))

	// A caller re-queued after the interpreter's connection was lost: its
	// new call's record names the one it continues (queued outside the
	// windows listed below).
	rq := store.Call{CallID: "relay-1-again@z5", From: "2025550100", To: "2125550100", Node: "mcs1", StartedAt: t0.Add(90 * time.Minute),
		Direction: store.CallOutbound, Dialed: "2125550100", UserNumber: "2025550100", QueuedAt: t0.Add(90 * time.Minute), RequeueOf: c.CallID}
	noErr(t, "CreateCall(requeued)", s.CreateCall(ctx, rq))
	diff(t, "requeued relay call", rq, must[store.Call](t, "Call")(s.Call(ctx, rq.CallID)))
	rq.CAID, rq.SessionStart, rq.EndedAt, rq.EndReason, rq.Status = "1002", t0.Add(91*time.Minute), t0.Add(95*time.Minute), "bye", 200
	noErr(t, "UpdateCall(requeued)", s.UpdateCall(ctx, rq))
	diff(t, "ended requeued relay call", rq, must[store.Call](t, "Call")(s.Call(ctx, rq.CallID)))

	mk := func(id, dir string, queued time.Duration) store.Call {
		r := store.Call{CallID: id, From: "2025550101", To: "9115550100", StartedAt: t0.Add(queued), Direction: dir, QueuedAt: t0.Add(queued)}
		noErr(t, "CreateCall "+id, s.CreateCall(ctx, r))
		return r
	}
	in := mk("relay-in", store.CallInbound, time.Minute)
	e := mk("relay-911", store.CallEmergency, -time.Minute)
	mk("relay-later", store.CallOutbound, time.Hour)
	noErr(t, "CreateCall p2p", s.CreateCall(ctx, store.Call{CallID: "p2p", From: "2025550101", To: "2025550102", StartedAt: t0}))

	got := must[[]store.Call](t, "RelayCalls")(s.RelayCalls(ctx, t0.Add(-time.Minute), t0.Add(time.Hour)))
	diff(t, "RelayCalls [t0-1m, t0+1h)", []store.Call{e, c, in}, got)
	diff(t, "RelayCalls of an empty window", []store.Call(nil), must[[]store.Call](t, "RelayCalls")(s.RelayCalls(ctx, t0.Add(2*time.Hour), t0.Add(3*time.Hour))))
}
