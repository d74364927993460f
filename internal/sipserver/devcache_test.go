package sipserver

import (
	"context"
	"slices"
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

// TestDeviceCacheFollowsChanges: a device whose credentials are replaced
// elsewhere (a new login, `z5d admin` on another node) stops registering
// with its old password once the node has read the change log, without a
// REGISTER that uses the new one; a deleted customer's device stops too.
func TestDeviceCacheFollowsChanges(t *testing.T) {
	e := newEnv(t, nil)
	dev := e.provision("5552340042", store.DeviceSIP, "followed", "secret-1")
	p := newPhone(t, e, "5552340042", "followed", "secret-1")
	e.srv.followDevices() // where the log ends now
	if res := p.register(600); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d %s", res.StatusCode, res.Reason)
	}
	if err := e.st.UpdateDeviceCredentials(context.Background(), dev.ID, store.NewCredentials("followed", testDomain, "secret-2")); err != nil {
		t.Fatal(err)
	}
	if res := p.register(600); res.StatusCode != 200 {
		t.Fatalf("before the node read the change, the cached device should still answer: %d %s", res.StatusCode, res.Reason)
	}
	e.srv.followDevices()
	if res, err := p.tryRegister(600); err == nil && res.StatusCode == 200 {
		t.Fatal("the old password still registers after the node read the change log")
	}
	p.pass = "secret-2"
	if res := p.register(600); res.StatusCode != 200 {
		t.Fatalf("REGISTER with the new password: %d %s", res.StatusCode, res.Reason)
	}

	n, err := e.st.Number(context.Background(), "5552340042")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.DeleteCustomer(context.Background(), n.CustomerID); err != nil {
		t.Fatal(err)
	}
	e.srv.followDevices()
	if res, err := p.tryRegister(600); err == nil && res.StatusCode == 200 {
		t.Fatal("a deleted customer's device still registers after the node read the change log")
	}
}

// TestDeviceCacheFollow: what each read of the change log does to the
// cache.
func TestDeviceCacheFollow(t *testing.T) {
	type logRead struct {
		users    []string
		last     int64
		complete bool
		err      error
	}
	for _, tt := range []struct {
		name string
		read logRead
		want []string // cached afterwards, of a, b
		seq  int64
	}{
		{"nothing new", logRead{last: 5, complete: true}, []string{"a", "b"}, 5},
		{"a changed", logRead{users: []string{"a"}, last: 6, complete: true}, []string{"b"}, 6},
		{"a listed again in the overlap", logRead{users: []string{"a"}, last: 5, complete: true}, []string{"b"}, 5},
		{"log trimmed past us", logRead{last: 20000, complete: false}, nil, 20000},
		{"log not read", logRead{err: context.DeadlineExceeded}, []string{"a", "b"}, 5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newDeviceCache(func(_ context.Context, u string) (store.Device, error) {
				return store.Device{SIPUser: u}, nil
			}, time.Minute, time.Now)
			ctx := context.Background()
			start := func(context.Context, int64) ([]string, int64, bool, error) { return nil, 5, true, nil }
			if err := c.follow(ctx, start); err != nil {
				t.Fatal(err)
			}
			c.get(ctx, "a")
			c.get(ctx, "b")
			err := c.follow(ctx, func(_ context.Context, after int64) ([]string, int64, bool, error) {
				if after != 5 {
					t.Errorf("read the log after %d, want 5", after)
				}
				return tt.read.users, tt.read.last, tt.read.complete, tt.read.err
			})
			if (err != nil) != (tt.read.err != nil) {
				t.Errorf("follow: %v", err)
			}
			var got []string
			for _, u := range []string{"a", "b"} {
				if _, ok := c.m.Get(u); ok {
					got = append(got, u)
				}
			}
			if !slices.Equal(got, tt.want) || c.seq != tt.seq {
				t.Errorf("cached %v at %d, want %v at %d", got, c.seq, tt.want, tt.seq)
			}
		})
	}
}

// TestDeviceCacheReadDuringChange: a device read while a change is
// applied is not kept, since the row may predate the change.
func TestDeviceCacheReadDuringChange(t *testing.T) {
	ctx := context.Background()
	var c *deviceCache
	c = newDeviceCache(func(_ context.Context, u string) (store.Device, error) {
		c.follow(ctx, func(context.Context, int64) ([]string, int64, bool, error) { return []string{"x"}, 2, true, nil })
		return store.Device{SIPUser: u}, nil
	}, time.Minute, time.Now)
	c.follow(ctx, func(context.Context, int64) ([]string, int64, bool, error) { return nil, 1, true, nil })
	if _, cached, err := c.get(ctx, "a"); err != nil || cached {
		t.Fatalf("first get: cached %t, %v", cached, err)
	}
	if _, ok := c.m.Get("a"); ok {
		t.Fatal("a device read while a change was applied was kept")
	}
}
