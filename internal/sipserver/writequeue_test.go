package sipserver

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// recordConn records each Write; the first waits for gate to close, and
// the writes fail with fail once it is set.
type recordConn struct {
	net.Conn
	gate   chan struct{}
	mu     sync.Mutex
	writes []string
	fail   error
	closed bool
}

func (c *recordConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	first := len(c.writes) == 0
	c.mu.Unlock()
	if first {
		<-c.gate
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return 0, c.fail
	}
	c.writes = append(c.writes, string(b))
	return len(b), nil
}

func (c *recordConn) SetWriteDeadline(time.Time) error { return nil }
func (c *recordConn) Close() error                     { c.mu.Lock(); c.closed = true; c.mu.Unlock(); return nil }

// TestSendCoalesces: messages sent while a write is under way go out
// together in the next write, whole and in the order queued; once a
// write fails the flow is closed and every later send fails.
func TestSendCoalesces(t *testing.T) {
	rc := &recordConn{gate: make(chan struct{})}
	c := &flowConn{Conn: rc}
	done := make(chan error)
	go func() {
		_, err := c.send([]byte("first;"), 6)
		done <- err
	}()
	waitFor(t, "the first write under way", func() bool {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return c.writing
	})
	for _, m := range []string{"a;", "bb;", "ccc;"} {
		if n, err := c.send([]byte(m), len(m)); n != len(m) || err != nil {
			t.Fatalf("queued send %q: %d, %v", m, n, err)
		}
	}
	close(rc.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	got := rc.writes
	rc.mu.Unlock()
	if len(got) != 2 || got[0] != "first;" || got[1] != "a;bb;ccc;" {
		t.Fatalf("writes %q, want [first; a;bb;ccc;]", got)
	}

	rc.mu.Lock()
	rc.fail = errors.New("broken pipe")
	rc.mu.Unlock()
	if _, err := c.send([]byte("x;"), 2); err == nil {
		t.Fatal("a failed write reported sent")
	}
	if _, err := c.send([]byte("y;"), 2); err == nil || !rc.closed {
		t.Fatalf("send after a failed write: %v (closed %t)", err, rc.closed)
	}
}
