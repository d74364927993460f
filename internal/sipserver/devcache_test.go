package sipserver

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/store"
)

// countingStore counts the reads of one SIP user's device.
type countingStore struct {
	Store
	user  string
	reads atomic.Int64
}

func (c *countingStore) DeviceBySIPUser(ctx context.Context, sipUser string) (store.Device, error) {
	if sipUser == c.user {
		c.reads.Add(1)
	}
	return c.Store.DeviceBySIPUser(ctx, sipUser)
}

// TestDeviceCache: refreshes read the device once, not twice a REGISTER;
// a new password works at once, and the old one stops working at once.
func TestDeviceCache(t *testing.T) {
	var cs *countingStore
	e := newEnvWith(t, nil, func(d *Deps) {
		cs = &countingStore{Store: d.Store, user: "cached"}
		d.Store = cs
	})
	dev := e.provision("5552340041", store.DeviceSIP, "cached", "secret-1")
	p := newPhone(t, e, "5552340041", "cached", "secret-1")
	if res := p.register(600); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d %s", res.StatusCode, res.Reason)
	}
	before := cs.reads.Load()
	for range 5 {
		if res := p.register(600); res.StatusCode != 200 {
			t.Fatalf("refresh: %d %s", res.StatusCode, res.Reason)
		}
	}
	if n := cs.reads.Load() - before; n != 0 {
		t.Errorf("5 refreshes read the device %d times, want 0 (cached)", n)
	}

	// The client logs in again and gets a new SIP password.
	if err := e.st.UpdateDeviceCredentials(context.Background(), dev.ID, store.NewCredentials("cached", testDomain, "secret-2")); err != nil {
		t.Fatal(err)
	}
	p.pass = "secret-2"
	if res := p.register(600); res.StatusCode != 200 {
		t.Fatalf("REGISTER with the new password: %d %s", res.StatusCode, res.Reason)
	}
	p.pass = "secret-1"
	if res, err := p.tryRegister(600); err == nil && res.StatusCode == 200 {
		t.Fatal("the old password still registers after the change")
	}
}

func TestDeviceCacheSweep(t *testing.T) {
	now := time.Unix(1000, 0)
	reads := 0
	c := newDeviceCache(func(_ context.Context, u string) (store.Device, error) {
		reads++
		return store.Device{SIPUser: u}, nil
	}, 10*time.Second, func() time.Time { return now })
	ctx := context.Background()
	c.get(ctx, "a")
	now = now.Add(6 * time.Second)
	c.get(ctx, "b")
	now = now.Add(5 * time.Second) // a is 11 s old, b 5 s
	c.sweep(now)
	if c.m.Len() != 1 {
		t.Fatalf("%d devices kept after the sweep, want 1 (b)", c.m.Len())
	}
	if _, cached, _ := c.get(ctx, "b"); !cached || reads != 2 {
		t.Fatalf("b cached %t after %d reads, want cached after 2", cached, reads)
	}
}
