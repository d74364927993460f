package sipserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"golang.org/x/time/rate"
)

// The TCP (and TLS) transport. sipgo's Server.ServeTCP takes a
// net.Listener; the one handed to it here is a stack of wrappers that add
// what sipgo lacks:
//
//	net.TCPListener
//	└ capListener     per-IP connection cap; survives EMFILE
//	  └ tls.Listener  (TLS only)
//	    └ flowListener every connection becomes a flowConn: framing, limits,
//	                   CRLF keepalive, idle and slow-sender deadlines, a flow
//	                   identity for the registrar, and a close notification
//
// sipgo reads a flowConn as if it were the socket, but only ever sees
// messages that passed inspection.

// writeTimeout bounds one write, so a peer that stops reading cannot hold
// a sender (and the write lock) forever.
const writeTimeout = 10 * time.Second

// failLinger is how long a flow that can no longer be framed stays open
// for responses to the messages before the failure.
const failLinger = time.Second

// bindingGrace is how long past its registration's expiry a flow may stay
// silent before the idle timeout closes it.
const bindingGrace = 30 * time.Second

// capListener admits accepted connections through the connection table
// (conns.go): per-source cap on unauthenticated connections, overall cap.
type capListener struct {
	net.Listener
	conns  *connTable
	log    *slog.Logger
	reject func()
	banned func(netip.Addr) bool // nil: no bans (guard.go)
}

func newCapListener(l net.Listener, conns *connTable, log *slog.Logger, reject func()) *capListener {
	return &capListener{Listener: l, conns: conns, log: log, reject: reject}
}

// Accept returns the next connection admitted by the table. Transient
// errors (out of file descriptors, aborted handshakes) are retried with a
// backoff rather than returned: sipgo stops serving on any Accept error.
func (l *capListener) Accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || !transientAcceptError(err) {
				return nil, err
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.log.Warn("accept failed, retrying", "error", err, "duration", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		ip := addrPort(c.RemoteAddr()).Addr()
		if l.banned != nil && l.banned(ip) {
			c.Close()
			continue
		}
		cc := &countedConn{Conn: c}
		slot, evict := l.conns.admit(ip, time.Now(), func() { cc.Close() })
		if slot == nil {
			c.Close()
			l.reject()
			l.log.Debug("connection refused: server connection limit", "remote_addr", ip.String(), "limit", l.conns.maxTotal)
			continue
		}
		cc.slot = slot
		if evict != nil {
			// The source is at its cap: its connection that made no
			// progress for the longest goes, not the newcomer.
			l.reject()
			l.log.Debug("closing stalled connection: per-source limit", "source", evict.key.String(), "limit", l.conns.maxUnauth)
			evict.closer()
		}
		return cc, nil
	}
}

func transientAcceptError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS)
}

// countedConn releases its slot in the connection table when closed.
type countedConn struct {
	net.Conn
	slot *connSlot
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	if c.slot != nil {
		c.slot.release()
	}
	return err
}

// slotOf finds the table slot under an accepted connection (TLS wraps it).
func slotOf(c net.Conn) *connSlot {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if cc, ok := c.(*countedConn); ok {
		return cc.slot
	}
	return nil
}

// flowListener turns accepted connections into flowConns.
type flowListener struct {
	net.Listener
	t         *transport
	transport string // "TCP" or "TLS"
}

func (l *flowListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.t.newFlowConn(c, l.transport), nil
}

// flowConn is one client connection: an RFC 5626 flow. Its read side is
// used only by the one goroutine sipgo runs per connection; writes come
// from any goroutine and are serialized.
type flowConn struct {
	net.Conn
	t         *transport
	id        string // unique for the server's lifetime
	transport string // "TCP" or "TLS"
	raddr     netip.AddrPort
	laddr     netip.AddrPort
	src       string    // the remote address as sipgo writes a request's source
	slot      *connSlot // nil when not admitted by a capListener

	// boundUntil (unix nanoseconds) is the latest expiry of a registration
	// bound to this flow: a registered client may stay quiet that long.
	boundUntil atomic.Int64

	// Read side (sipgo's reader goroutine only).
	limiter *rate.Limiter // a registered flow's own rate limit (authlimits.go)
	// raw reads the socket of a plain TCP flow without a buffer held
	// while it waits; nil for TLS (whose record layer buffers anyway).
	raw      syscall.RawConn
	buf      []byte // bytes read, not yet framed: buf[r:w]; nil while idle on raw
	r, w     int
	scanned  int            // bytes of the current message searched for its header end
	msgStart time.Time      // arrival of the current message's first byte; zero between messages
	out      []byte         // an inspected message for sipgo, not yet read
	msg      sipmsg.Message // out parsed; nil when it was rewritten
	// busy holds a token per stateless request of the flow being handled
	// (stateless.go); made by the reader at the flow's first.
	busy   chan struct{}
	rerr   error // read error held back until buffered bytes are handled
	failed error // framing failed: the flow drains, then ends

	// Writes are serialized (messages must never interleave) and
	// coalesced: while one sender writes, others queue their messages in
	// wq and the writer sends them all in one write when its own is done
	// (send). Guarded by wmu.
	wmu      sync.Mutex
	writing  bool       // a sender is writing
	wq       []byte     // messages queued behind it
	wspare   []byte     // the buffer being written, reused for the next queue
	werr     error      // the write that failed: the flow is closed
	wdrained *sync.Cond // made when a sender waits for a full queue

	closeOnce sync.Once
}

func (t *transport) newFlowConn(c net.Conn, transport string) *flowConn {
	fc := &flowConn{
		Conn:      c,
		t:         t,
		transport: transport,
		raddr:     addrPort(c.RemoteAddr()),
		laddr:     addrPort(c.LocalAddr()),
		src:       c.RemoteAddr().String(),
		slot:      slotOf(c),
		raw:       rawConn(c),
	}
	if fc.raw == nil {
		fc.buf = make([]byte, readBufSize)
	}
	fc.id = fmt.Sprintf("%s/%s/%d", transport, fc.raddr, t.nextID.Add(1))
	t.addFlow(fc)
	return fc
}

// extendBinding lets the flow idle until at least until (a registration
// bound to it expires then). Its caller authenticated the flow (a digest
// for a registration, or a peer node's mark), so the flow no longer counts
// against its source's connection cap and outlives bans of its source
// (guard.go).
func (c *flowConn) extendBinding(until time.Time) {
	c.slot.authenticate()
	for {
		cur := c.boundUntil.Load()
		if until.UnixNano() <= cur || c.boundUntil.CompareAndSwap(cur, until.UnixNano()) {
			return
		}
	}
}

// drained reports whether nothing the flow has read is left to frame:
// the message just handed over was the last one the peer has sent. The
// reader's own state: only its goroutine may ask.
func (c *flowConn) drained() bool { return c.r == c.w }

// authenticated reports whether a digest-authenticated registration has
// been bound to the flow.
func (c *flowConn) authenticated() bool { return c.boundUntil.Load() != 0 }

// WaitRead returns once Read has inspected bytes to hand over. sipgo
// (third_party/sipgo, sip.ReadWaiter) calls it before borrowing a read
// buffer for Read, so an idle flow holds none of sipgo's 32 KiB buffers.
func (c *flowConn) WaitRead() error {
	for c.msg == nil && len(c.out) == 0 {
		if err := c.frame(); err != nil {
			return err
		}
		if c.msg != nil || len(c.out) > 0 {
			break
		}
		if err := c.fill(); err != nil {
			return err
		}
	}
	return nil
}

var _ sipmsg.ReadWaiter = (*flowConn)(nil)

var _ sipmsg.MessageReader = (*flowConn)(nil)

// ReadMessage hands sipgo the next inspected message, parsed: inspection
// parsed it already, so sipgo need not parse it again (nor copy its bytes
// through Read). A message inspection rewrote is parsed here.
//
// A REGISTER goes to the server's stateless path instead (stateless.go),
// and the next message is read.
func (c *flowConn) ReadMessage() (sipmsg.Message, error) {
	for {
		if err := c.WaitRead(); err != nil {
			return nil, err
		}
		msg, out := c.msg, c.out
		c.msg, c.out = nil, nil
		if msg == nil {
			var err error
			if msg, err = c.t.in.parser.ParseSIP(out); err != nil {
				// Inspection wrote it from a message that parsed.
				return nil, endOfFlow(c.id, fmt.Errorf("rewritten message does not parse: %w", err))
			}
		}
		if req, ok := answersStatelessly(msg); ok && c.t.stateless != nil {
			c.t.stateless(req, c)
			continue
		}
		return msg, nil
	}
}

// Read hands the next inspected message as bytes, to a reader that parses
// them itself. A message kept parsed is written out again as sipgo would
// send it (the bytes it came in have been reused).
func (c *flowConn) Read(p []byte) (int, error) {
	if err := c.WaitRead(); err != nil {
		return 0, err
	}
	if c.msg != nil {
		c.out = []byte(c.msg.String())
		c.msg = nil
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	if len(c.out) == 0 {
		c.out = nil
	}
	return n, nil
}

// frame consumes keepalives and complete messages from the buffer.
func (c *flowConn) frame() error {
	for {
		in := c.buf[c.r:c.w]
		// RFC 5626 §4.4.1: CRLFCRLF between messages is a ping, answered
		// with a CRLF pong; a lone CRLF (RFC 3261 §7.5) is skipped. sipgo
		// answers a ping only when a read returns nothing else, so one
		// split across segments or followed at once by a message would go
		// unanswered; here every ping between messages is.
		for len(in) >= 2 && in[0] == '\r' && in[1] == '\n' {
			if len(in) >= 4 && in[2] == '\r' && in[3] == '\n' {
				if _, err := c.Write([]byte("\r\n")); err != nil {
					return err
				}
				c.r += 4
			} else if len(in) == 2 || len(in) == 3 && in[2] == '\r' {
				return nil // perhaps the first half of a ping
			} else {
				c.r += 2
			}
			in = c.buf[c.r:c.w]
		}
		if len(in) == 0 {
			c.msgStart = time.Time{}
			return nil
		}
		if c.msgStart.IsZero() {
			c.msgStart = time.Now()
		}
		n, scanned, err := frameStream(in, c.scanned, c.t.maxSize, c.t.maxHeaders)
		if err != nil {
			// No message boundary to resume at: answer if we can, then
			// end the flow (after a linger, see fill).
			se := err.(*sipError)
			if se != errTooLarge {
				if v := reject(in, se); v.reply != nil {
					c.Write(v.reply)
				}
			}
			c.t.m.dropped.WithLabelValues("tcp", "framing").Inc()
			c.t.log.Debug("closing flow: cannot frame", "flow", c.id, "error", se.reason)
			c.failed = err
			c.r, c.w = 0, 0
			return nil
		}
		if n == 0 {
			c.scanned = scanned
			return nil
		}
		if c.t.shield.bannedFlow(c) {
			return endOfFlow(c.id, errBanned)
		}
		if reply, ok := c.t.shield.admitFlow(c, in[:n]); !ok {
			c.r += n
			c.scanned = 0
			c.msgStart = time.Time{}
			if reply != nil {
				if _, err := c.Write(reply); err != nil {
					return err
				}
			}
			continue
		}
		v := c.t.in.inspectFrame(in[:n])
		c.r += n
		c.scanned = 0
		c.msgStart = time.Time{}
		if v.reply != nil {
			if _, err := c.Write(v.reply); err != nil {
				return err
			}
		}
		if v.deliver != nil {
			c.slot.touch(time.Now())
			if v.msg != nil {
				c.msg, c.out = v.msg, nil
			} else {
				// A rewritten message is its own buffer already.
				c.msg, c.out = nil, v.deliver
			}
			return nil
		}
		c.t.m.dropped.WithLabelValues("tcp", "invalid").Inc()
		c.t.log.Debug("message not delivered", "flow", c.id, "reason", v.reason)
	}
}

// fill reads more bytes under the deadline that applies: the slow-sender
// deadline while a message is incomplete, else the idle timeout (longer for
// a flow a registration is bound to).
func (c *flowConn) fill() error {
	if c.rerr != nil {
		return c.rerr
	}
	if c.failed != nil {
		// Messages framed before the failure are still being handled;
		// give their responses a moment to go out before sipgo closes
		// the connection, discarding whatever else arrives.
		if c.buf == nil {
			c.buf = make([]byte, readBufSize)
		}
		c.Conn.SetReadDeadline(time.Now().Add(failLinger))
		for {
			if _, err := c.Conn.Read(c.buf); err != nil {
				return endOfFlow(c.id, c.failed)
			}
		}
	}
	if c.r == c.w {
		c.r, c.w = 0, 0
	}
	if c.buf != nil && len(c.buf)-c.w < 1024 {
		if c.r > 0 {
			c.w = copy(c.buf, c.buf[c.r:c.w])
			c.r = 0
		}
		if len(c.buf)-c.w < 1024 {
			nb := make([]byte, 2*len(c.buf))
			copy(nb, c.buf[:c.w])
			c.buf = nb
		}
	}
	now := time.Now()
	var deadline time.Time
	if !c.msgStart.IsZero() {
		deadline = c.msgStart.Add(c.t.msgTimeout)
	} else {
		deadline = now.Add(c.t.idle)
		if b := time.Unix(0, c.boundUntil.Load()).Add(bindingGrace); b.After(deadline) {
			deadline = b
		}
	}
	if err := c.Conn.SetReadDeadline(deadline); err != nil {
		return err
	}
	var n int
	var err error
	if c.raw != nil {
		n, err = c.rawRead()
	} else {
		n, err = c.Conn.Read(c.buf[c.w:])
	}
	c.w += n
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if !c.msgStart.IsZero() {
				c.t.m.dropped.WithLabelValues("tcp", "slow-sender").Inc()
				err = fmt.Errorf("message incomplete after %s: %w", c.t.msgTimeout, err)
			} else {
				err = fmt.Errorf("idle: %w", err)
			}
		}
		c.t.log.Debug("closing flow", "flow", c.id, "error", err)
		err = endOfFlow(c.id, err)
		if n > 0 {
			c.rerr = err
			return nil
		}
		return err
	}
	return nil
}

// readBufSize is a flow's read buffer to begin with: a typical message
// fits; a larger one grows it (up to the message size limit).
const readBufSize = 4096

// getReadBuf and putReadBuf share read buffers of readBufSize between
// flows; a grown buffer is left to the collector.
func (t *transport) getReadBuf() []byte {
	if p, ok := t.rbufs.Get().(*[readBufSize]byte); ok {
		return p[:]
	}
	return make([]byte, readBufSize)
}

func (t *transport) putReadBuf(b []byte) {
	if len(b) == readBufSize {
		t.rbufs.Put((*[readBufSize]byte)(b))
	}
}

// Write sends one complete message (sipgo writes each in one call).
func (c *flowConn) Write(b []byte) (int, error) {
	return c.send(c.t.stamp(b), len(b))
}

// maxQueuedWrite bounds the bytes queued behind a write; a sender finding
// the queue fuller waits for it to be written.
const maxQueuedWrite = 256 << 10

// send writes out, a complete message already stamped (transport.stamp),
// and reports n written. When another sender is writing, out is queued
// and the writer sends it with whatever else queued in one write: under
// load, responses ready together (the stateless workers answer a flow's
// requests side by side) cost one system call, not one each. A queued
// message is reported sent once it is queued; if the write that carries
// it fails, the flow is closed, as it is when a sender's own write fails.
func (c *flowConn) send(out []byte, n int) (int, error) {
	c.wmu.Lock()
	for c.writing && len(c.wq)+len(out) > maxQueuedWrite && c.werr == nil {
		if c.wdrained == nil {
			c.wdrained = sync.NewCond(&c.wmu)
		}
		c.wdrained.Wait()
	}
	if c.werr != nil {
		err := c.werr
		c.wmu.Unlock()
		return 0, err
	}
	if c.writing {
		c.wq = append(c.wq, out...)
		c.wmu.Unlock()
		return n, nil
	}
	c.writing = true
	buf, queued := out, false
	for {
		c.wmu.Unlock()
		err := c.writeNow(buf)
		c.wmu.Lock()
		if queued {
			c.wspare = buf[:0] // a queue, written: the next one's buffer
		}
		if err != nil {
			c.werr, c.wq = err, nil
		}
		if err != nil || len(c.wq) == 0 {
			c.writing = false
			if len(c.wspare) == 0 && cap(c.wspare) > readBufSize {
				c.wspare = nil // a burst's buffer is not kept by an idle flow
			}
			if c.wdrained != nil {
				c.wdrained.Broadcast()
			}
			c.wmu.Unlock()
			if err != nil {
				return 0, err
			}
			return n, nil
		}
		buf, c.wq, queued = c.wq, c.wspare, true
		c.wspare = nil
		if c.wdrained != nil {
			c.wdrained.Broadcast()
		}
	}
}

// writeNow writes b to the socket under the write deadline; a failed write
// closes the flow: a peer that stopped reading (or a write cut short)
// leaves the stream unusable, and the flow ends, its reader and bindings
// with it.
func (c *flowConn) writeNow(b []byte) error {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		c.Conn.Close()
		return err
	}
	if _, err := c.Conn.Write(b); err != nil {
		c.Conn.Close()
		return err
	}
	return nil
}

// Close closes the connection and, once, tells the registrar the flow is
// gone so its bindings go with it.
func (c *flowConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() { c.t.removeFlow(c) })
	return err
}

// endOfFlow wraps the reason a flow ends so that sipgo, which logs any
// read error but io.EOF and net.ErrClosed as an error, takes it as the
// normal end of a connection; the flow logged the reason already.
func endOfFlow(id string, err error) error {
	return fmt.Errorf("flow %s: %w (%w)", id, err, io.EOF)
}

// addrPort converts a net.Addr of TCP or UDP to netip.AddrPort.
func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case *net.UDPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
