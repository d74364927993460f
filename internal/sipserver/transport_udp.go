package sipserver

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// udpSeenTTL is how long an address that sent us a datagram keeps its entry
// in sipgo's UDP connection pool (and ours) unless a registration holds it.
const udpSeenTTL = 3 * time.Minute

// packetConn is the UDP socket handed to sipgo's ServeUDP: each datagram
// is inspected first (size, framing, syntax), answered when bad, and
// delivered only when good.
//
// sipgo adds every source address it reads from to its connection pool and
// never removes it; packetConn remembers when each was last seen so the
// server can prune the pool (prune), or a stream of forged sources would
// grow it without bound. (sipgo's UDP reader also keeps its own set of the
// addresses for clean-up at close, out of reach here: a small residue per
// distinct source until the server stops.)
type packetConn struct {
	net.PacketConn
	t   *transport
	buf []byte // read buffer, one byte over the size limit to detect oversize

	last atomic.Pointer[string] // the latest source delivered to sipgo

	mu   sync.Mutex // guards seen
	seen map[string]time.Time
}

func newPacketConn(c net.PacketConn, t *transport) *packetConn {
	return &packetConn{PacketConn: c, t: t, buf: make([]byte, t.maxSize+1), seen: map[string]time.Time{}}
}

// ReadFrom returns the next datagram that passed inspection.
func (c *packetConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(c.buf)
		if err != nil {
			return 0, nil, err
		}
		b := c.buf[:n]
		src := addrPort(addr).Addr()
		if c.t.shield.bannedDatagram(src) {
			continue // before anything is spent on it
		}
		if len(bytes.Trim(b, "\r\n\x00")) == 0 {
			continue // keepalive or padding
		}
		if reply, ok := c.t.shield.admitMessage(src, b, true); !ok {
			if reply != nil {
				c.writeUnauth(reply, addr)
			}
			continue
		}
		limit := min(c.t.maxSize, len(p))
		var v verdict
		if n > limit {
			v = reject(b, errTooLarge)
		} else {
			v = c.t.in.inspectDatagram(b)
			if len(v.deliver) > len(p) {
				v = reject(b, errTooLarge) // grew beyond sipgo's buffer when rewritten
			}
		}
		if v.reply != nil {
			c.writeUnauth(v.reply, addr)
		}
		if v.deliver == nil {
			c.t.m.dropped.WithLabelValues("udp", "invalid").Inc()
			c.t.log.Debug("datagram not delivered", "remote_addr", addr.String(), "reason", v.reason)
			continue
		}
		key := addr.String()
		c.last.Store(&key)
		c.mu.Lock()
		c.seen[key] = time.Now()
		c.mu.Unlock()
		return copy(p, v.deliver), addr, nil
	}
}

// WriteTo sends one message. The retransmission of a forked INVITE whose
// branch was canceled is dropped here (amplify.go): sipgo's client
// transaction has no way to stop Timer A short of ending the transaction,
// which would also lose the branch's late responses. So are the responses
// sipgo makes by itself to a request not yet authenticated, or they are
// held to the unauthenticated budget (amplifyGuard.classify).
func (c *packetConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.t.amp != nil {
		switch c.t.amp.classify(b) {
		case dropIt:
			return len(b), nil
		case budgetIt:
			return c.writeUnauth(b, addr)
		}
	}
	out := c.t.stamp(b)
	if _, err := c.PacketConn.WriteTo(out, addr); err != nil {
		return 0, err
	}
	return len(b), nil
}

// writeUnauth sends a response to a request nobody has authenticated
// (a stateless answer, or a reject before parsing), within the global
// budget for such responses; over it the response is dropped silently.
func (c *packetConn) writeUnauth(b []byte, addr net.Addr) (int, error) {
	out, code := stampResponse(b, c.t.server)
	if c.t.amp != nil && !c.t.amp.allow(len(out)) {
		return len(b), nil
	}
	if code > 0 {
		c.t.m.responses.WithLabelValues(strconv.Itoa(code)).Inc()
	}
	if _, err := c.PacketConn.WriteTo(out, addr); err != nil {
		return 0, err
	}
	return len(b), nil
}

// prune forgets sources not seen for udpSeenTTL, except those keep
// reports as bound, and removes them from sipgo's pool.
func (c *packetConn) prune(now time.Time, pool *sipmsg.ConnectionPool, keep func(netip.AddrPort) bool) {
	last := ""
	if p := c.last.Load(); p != nil {
		last = *p
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, seen := range c.seen {
		if now.Sub(seen) < udpSeenTTL || key == last {
			continue
		}
		if ap, err := netip.ParseAddrPort(key); err == nil && keep(ap) {
			continue
		}
		delete(c.seen, key)
		if pool != nil {
			pool.Delete(key)
		}
	}
}
