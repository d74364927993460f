package relay

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/z5vrs/z5/internal/config"
)

// TestMediaTimeoutSupervision drives Serve on the fake clock. Streams are
// set up in memory: calls that never bind a socket keep the bubble free of
// network I/O, which the fake clock cannot wait for.
func TestMediaTimeoutSupervision(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 30 * time.Second
		r, err := New(filled(Config{Bind: loopback, Ports: freeRangeFake(), MediaTimeout: timeout}), Deps{})
		if err != nil {
			t.Fatal(err)
		}
		var fired [4]atomic.Int32
		silent := r.NewCall("silent", func() { fired[0].Add(1) })
		r.NewCall("ringing", func() { fired[1].Add(1) })
		talking := r.NewCall("talking", func() { fired[2].Add(1) })
		held := r.NewCall("held", func() { fired[3].Add(1) })
		held.streams = []*stream{{enabled: true, legs: [2]leg{{silent: true}, {}}}}
		talking.streams = []*stream{{enabled: true}}
		silent.Answered()
		talking.Answered()
		held.Answered()

		ctx, cancel := context.WithCancel(t.Context())
		served := make(chan error)
		go func() { served <- r.Serve(ctx) }()

		// Media every 10s keeps "talking" alive; the others get nothing.
		for range 9 {
			time.Sleep(10 * time.Second)
			talking.last.Store(time.Now().UnixNano())
		}
		synctest.Wait()
		want := [4]int32{1, 0, 0, 0}
		for i := range fired {
			if got := fired[i].Load(); got != want[i] {
				t.Errorf("call %d: onMediaTimeout ran %d times, want %d", i, got, want[i])
			}
		}

		// The talking call goes quiet: it times out within timeout plus a
		// supervision period, and once only.
		time.Sleep(timeout + time.Second)
		synctest.Wait()
		if got := fired[2].Load(); got != 1 {
			t.Errorf("talking call went quiet: fired %d times, want 1", got)
		}
		time.Sleep(2 * timeout)
		synctest.Wait()
		if got := fired[2].Load(); got != 1 {
			t.Errorf("fired again: %d", got)
		}

		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		r.Close()
	})
}

// freeRangeFake is a range for relays that never bind (synctest bubbles).
func freeRangeFake() config.PortRange { return config.PortRange{Min: 62000, Max: 62063} }

// TestMediaTimeoutEndToEnd: a real call, real sockets, a short timeout.
// Media keeps it alive; when media stops the callback runs, and Close
// after Serve ends leaves nothing behind.
func TestMediaTimeoutEndToEnd(t *testing.T) {
	r, _ := newTestRelay(t, relayOpts{timeout: 500 * time.Millisecond, serve: true})
	timedOut := make(chan time.Time, 2)
	cs := setupCall(t, r, false, func() { timedOut <- time.Now() })
	start := time.Now()
	var lastSent time.Time
	// Keep media flowing for longer than the timeout.
	for i := range 30 {
		p := rtpPacket(0, uint16(i), uint32(i)*160, 9, "keepalive")
		lastSent = time.Now()
		cs.a.audio.send(cs.relayAAudio, p)
		cs.b.audio.expect(p, cs.relayBAudio)
		select {
		case at := <-timedOut:
			t.Fatalf("timed out after %s while media flowed", at.Sub(start))
		case <-time.After(20 * time.Millisecond):
		}
	}
	select {
	case at := <-timedOut:
		if d := at.Sub(lastSent); d < 500*time.Millisecond {
			t.Errorf("timed out %s after media stopped, before the 500ms timeout", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no media timeout")
	}
}

func TestAnsweredIsIdempotent(t *testing.T) {
	r, _ := newTestRelay(t, relayOpts{})
	c := r.NewCall("x", nil)
	c.Answered()
	first := c.answeredAt
	time.Sleep(time.Millisecond)
	c.Answered()
	if !c.answeredAt.Equal(first) {
		t.Error("second Answered moved the start of supervision")
	}
	if c.expire(first.Add(time.Hour), time.Second) != true {
		t.Error("silent answered call not expired")
	}
	if c.expire(first.Add(2*time.Hour), time.Second) {
		t.Error("expired twice")
	}
}
