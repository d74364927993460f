package sipserver

import (
	"context"
	"sync"
	"time"

	"github.com/z5vrs/z5/internal/lru"
	"github.com/z5vrs/z5/internal/store"
)

// deviceCache keeps the devices the digest checks read, by SIP user, for
// sip.device_cache_ttl: a REGISTER and its refreshes would otherwise read
// the same row twice each (the challenge picks the algorithms by the
// device's kind, the answer needs its credentials), a third of the
// registrar's CPU. Only devices found are kept, so names a guesser
// invents cost a read each and never fill the cache; it is bounded
// anyway. Credentials change when a client logs in again: a digest that
// fails against a cached device is checked once more against the store
// (authenticate), so the cache never turns away a right password. And
// every node follows the store's log of changed devices (follow, each
// second): credentials replaced, or a customer deleted, by ZDial or
// `z5d admin` on any node, stop a cached device within about a second,
// not at the end of its TTL.
type deviceCache struct {
	read func(ctx context.Context, sipUser string) (store.Device, error)
	ttl  time.Duration // <= 0: every lookup reads the store
	now  func() time.Time

	mu  sync.Mutex
	m   *lru.Map[string, cachedDevice]
	seq int64 // the last entry of the change log applied; -1: none yet
}

type cachedDevice struct {
	dev store.Device
	at  time.Time
}

// maxCachedDevices bounds the cache: at about 400 bytes a device, 64k
// devices are 25 MB, more than a node's registrations need.
const maxCachedDevices = 1 << 16

func newDeviceCache(read func(context.Context, string) (store.Device, error), ttl time.Duration, now func() time.Time) *deviceCache {
	return &deviceCache{read: read, ttl: ttl, now: now, m: lru.New[string, cachedDevice](maxCachedDevices), seq: -1}
}

// get returns the device of sipUser and whether it came from the cache.
func (c *deviceCache) get(ctx context.Context, sipUser string) (store.Device, bool, error) {
	if dev, ok := c.cached(sipUser); ok {
		return dev, true, nil
	}
	c.mu.Lock()
	seq := c.seq
	c.mu.Unlock()
	dev, err := c.read(ctx, sipUser)
	if err != nil || c.ttl <= 0 {
		return dev, false, err
	}
	c.mu.Lock()
	c.m.Remove(sipUser)
	// A change applied while the row was read may postdate the row:
	// keep it only if none was.
	if c.seq == seq {
		c.m.Add(sipUser, cachedDevice{dev: dev, at: c.now()})
	}
	c.mu.Unlock()
	return dev, false, nil
}

// cached returns the device while the cache holds it fresh.
func (c *deviceCache) cached(sipUser string) (store.Device, bool) {
	if c.ttl <= 0 {
		return store.Device{}, false
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m.Get(sipUser)
	if ok && now.Sub(e.at) < c.ttl && !e.at.After(now) {
		return e.dev, true
	}
	if ok {
		c.m.Remove(sipUser)
	}
	return store.Device{}, false
}

// deviceLog reads the store's log of changed devices (store.DeviceChanges).
type deviceLog func(ctx context.Context, after int64) (sipUsers []string, last int64, complete bool, err error)

// follow applies the entries of the change log added since the last call:
// the devices named are dropped, or every device when the log cannot say
// (it was trimmed past the last entry applied). The first call only
// finds where the log ends.
func (c *deviceCache) follow(ctx context.Context, changes deviceLog) error {
	c.mu.Lock()
	after := c.seq
	c.mu.Unlock()
	users, last, complete, err := changes(ctx, after)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if after >= 0 {
		// Users the log lists again (its overlap, for changes committed
		// out of order) are dropped again: a read each, no more.
		if complete {
			for _, u := range users {
				c.m.Remove(u)
			}
		} else {
			c.m = lru.New[string, cachedDevice](maxCachedDevices)
		}
	}
	c.seq = last
	return nil
}

// forget drops sipUser, so the next lookup reads the store.
func (c *deviceCache) forget(sipUser string) {
	c.mu.Lock()
	c.m.Remove(sipUser)
	c.mu.Unlock()
}

// sweep drops devices older than the TTL from the least recently used end,
// so between refreshes the cache holds little beyond what recent requests
// read (a node's memory per registration counts it). One used lately but
// read long ago may stay until its next lookup drops it.
func (c *deviceCache) sweep(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		_, e, ok := c.m.Oldest()
		if !ok || now.Sub(e.at) < c.ttl {
			return
		}
		c.m.RemoveOldest()
	}
}
