package relay

import (
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"syscall"
)

// portPool hands out even RTP ports (RTCP on port+1) from the configured
// range. Free pairs sit in a slice and each allocation takes one at random
// (swap with the last, shrink: O(1)), from a generator seeded by
// crypto/rand: a host that sees one call's ports learns nothing about the
// next call's, so it cannot aim at a leg before its client latches.
type portPool struct {
	mu    sync.Mutex // guards the following
	first int        // lowest even port of the range
	n     int        // pairs the range holds
	free  []uint16   // free pairs, in no order
	pos   []int32    // by pair index (port-first)/2: index in free, -1 when taken
	rng   *rand.Rand // nil: lowest free pair first (tests that expect ports)
	inUse int        // ports (not pairs) handed out
}

func newPortPool(minPort, maxPort int) *portPool {
	first := minPort + minPort%2
	p := &portPool{first: first}
	for port := first; port+1 <= maxPort; port += 2 {
		p.pos = append(p.pos, int32(len(p.free)))
		p.free = append(p.free, uint16(port))
	}
	p.n = len(p.free)
	var seed [32]byte
	crand.Read(seed[:]) // never fails (crypto/rand panics instead)
	p.rng = rand.New(rand.NewChaCha8(seed))
	return p
}

// size is the number of port pairs the pool manages.
func (p *portPool) size() int { return p.n }

func (p *portPool) get() (uint16, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) == 0 {
		return 0, false
	}
	var port uint16
	if p.rng != nil {
		port = p.free[p.rng.IntN(len(p.free))]
	} else {
		port = uint16(p.first + 2*nearestFree(p.pos, 0))
	}
	p.takeLocked(port)
	return port, true
}

// takeLocked removes a free pair from free. The caller holds p.mu.
func (p *portPool) takeLocked(port uint16) {
	idx := (int(port) - p.first) / 2
	i := p.pos[idx]
	last := len(p.free) - 1
	moved := p.free[last]
	p.free[i] = moved
	p.pos[(int(moved)-p.first)/2] = i
	p.free = p.free[:last]
	p.pos[idx] = -1
	p.inUse += 2
}

func (p *portPool) put(port uint16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	idx := (int(port) - p.first) / 2
	if idx < 0 || idx >= p.n || p.pos[idx] >= 0 {
		return // not ours, or free already: never hand a pair out twice
	}
	p.pos[idx] = int32(len(p.free))
	p.free = append(p.free, port)
	p.inUse -= 2
}

func (p *portPool) allocated() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inUse
}

// pair is an RTP socket on an even port and its RTCP socket on port+1.
type pair struct {
	port uint16
	rtp  *net.UDPConn
	rtcp *net.UDPConn
}

// bindPair takes random free pairs from the pool until both sockets of one
// bind. A pair that another process holds is set aside until the search
// ends, then goes back to the pool: so one busy port costs one retry, not
// the range, and every free pair is tried at most once before the range
// counts as exhausted.
func (p *portPool) bindPair(bind netip.Addr) (pair, error) {
	var busy []uint16
	defer func() {
		for _, port := range busy {
			p.put(port)
		}
	}()
	for {
		port, ok := p.get()
		if !ok {
			return pair{}, ErrNoPorts
		}
		rtp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(bind, port)))
		if err != nil {
			if isAddrInUse(err) {
				busy = append(busy, port)
				continue
			}
			p.put(port)
			return pair{}, fmt.Errorf("relay: bind rtp port %d: %w", port, err)
		}
		rtcp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(bind, port+1)))
		if err != nil {
			rtp.Close()
			if isAddrInUse(err) {
				busy = append(busy, port)
				continue
			}
			p.put(port)
			return pair{}, fmt.Errorf("relay: bind rtcp port %d: %w", port+1, err)
		}
		return pair{port: port, rtp: rtp, rtcp: rtcp}, nil
	}
}

// release closes the pair's sockets and returns its ports to the pool.
// A loop's pair has no conns (the loop closes its sockets).
func (p *portPool) release(pr pair) {
	if pr.port == 0 {
		return
	}
	if pr.rtp != nil {
		pr.rtp.Close()
		pr.rtcp.Close()
	}
	p.put(pr.port)
}

func isAddrInUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }
