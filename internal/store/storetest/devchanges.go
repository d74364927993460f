package storetest

import (
	"slices"
	"testing"

	"github.com/z5vrs/z5/internal/store"
)

// testDeviceChanges: new credentials and a deleted customer log their
// devices' SIP users; a reader that starts from the last entry sees only
// what changed after it, and is told when it fell behind a reset.
func testDeviceChanges(t *testing.T, s store.Store) {
	ctx := t.Context()
	users, start, complete, err := s.DeviceChanges(ctx, -1)
	noErr(t, "DeviceChanges(-1)", err)
	if users != nil || !complete {
		t.Errorf("DeviceChanges(-1) = %v, complete %t; want only the last entry", users, complete)
	}
	c := mustCustomer(t, s, "dora")
	mustNumber(t, s, c.ID, "2025550170")
	d1 := mustDevice(t, s, "2025550170", "dora-1")
	mustDevice(t, s, "2025550170", "dora-2")
	mustOwner(t, s, "olga", "3125550170")
	mustDevice(t, s, "3125550170", "olga-1")

	users, last, complete, err := s.DeviceChanges(ctx, start)
	noErr(t, "DeviceChanges after creating devices", err)
	if len(users) != 0 || last != start || !complete {
		t.Errorf("after creating devices: %v, last %d (was %d), complete %t; want nothing new", users, last, start, complete)
	}

	noErr(t, "UpdateDeviceCredentials", s.UpdateDeviceCredentials(ctx, d1.ID, store.NewCredentials("dora-1", "mcs.z5.test", "new")))
	users, afterCred, complete, err := s.DeviceChanges(ctx, last)
	noErr(t, "DeviceChanges after new credentials", err)
	if !slices.Equal(users, []string{"dora-1"}) || afterCred <= last || !complete {
		t.Errorf("after new credentials: %v, last %d (was %d), complete %t; want [dora-1]", users, afterCred, last, complete)
	}

	noErr(t, "DeleteCustomer", s.DeleteCustomer(ctx, c.ID))
	users, afterDelete, complete, err := s.DeviceChanges(ctx, afterCred)
	noErr(t, "DeviceChanges after deleting the customer", err)
	slices.Sort(users)
	// The overlap may repeat dora-1: dropping it twice costs one read.
	users = slices.DeleteFunc(users, func(u string) bool { return u == "dora-1" })
	if !slices.Equal(users, []string{"dora-2"}) || afterDelete <= afterCred || !complete {
		t.Errorf("after deleting the customer: %v, last %d (was %d), complete %t; want dora-2 (olga's device untouched)", users, afterDelete, afterCred, complete)
	}

	// A reader ahead of the log (a store restored from a backup) is told
	// to drop everything.
	if _, _, complete, err := s.DeviceChanges(ctx, afterDelete+1000); err != nil || complete {
		t.Errorf("DeviceChanges ahead of the log: complete %t, %v; want false", complete, err)
	}
}
