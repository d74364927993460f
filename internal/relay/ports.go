package relay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
)

// portPool hands out even RTP ports (RTCP on port+1) from the configured
// range. Free ports sit in a FIFO ring: allocation and release are O(1), and
// a released port goes to the back, so it is reused as late as possible and
// stray packets of an ended call rarely reach the next one.
type portPool struct {
	mu    sync.Mutex // guards the following
	ring  []uint16   // capacity = number of even ports in the range
	head  int        // index of the oldest free port
	count int        // free ports in ring
	inUse int        // ports (not pairs) handed out
}

func newPortPool(minPort, maxPort int) *portPool {
	first := minPort + minPort%2
	var ring []uint16
	for p := first; p+1 <= maxPort; p += 2 {
		ring = append(ring, uint16(p))
	}
	return &portPool{ring: ring, count: len(ring)}
}

// size is the number of port pairs the pool manages.
func (p *portPool) size() int { return len(p.ring) }

func (p *portPool) get() (uint16, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.count == 0 {
		return 0, false
	}
	port := p.ring[p.head]
	p.head = (p.head + 1) % len(p.ring)
	p.count--
	p.inUse += 2
	return port, true
}

func (p *portPool) put(port uint16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.count == len(p.ring) {
		return // never more free ports than the range holds
	}
	p.ring[(p.head+p.count)%len(p.ring)] = port
	p.count++
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

// bindPair takes free ports from the pool until both sockets of a pair bind.
// A port that another process holds goes back to the end of the ring, so
// one busy port costs one retry, not the range; after one lap the range
// counts as exhausted.
func (p *portPool) bindPair(bind netip.Addr) (pair, error) {
	for range p.size() {
		port, ok := p.get()
		if !ok {
			break
		}
		rtp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(bind, port)))
		if err != nil {
			p.put(port)
			if isAddrInUse(err) {
				continue
			}
			return pair{}, fmt.Errorf("relay: bind rtp port %d: %w", port, err)
		}
		rtcp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(bind, port+1)))
		if err != nil {
			rtp.Close()
			p.put(port)
			if isAddrInUse(err) {
				continue
			}
			return pair{}, fmt.Errorf("relay: bind rtcp port %d: %w", port+1, err)
		}
		return pair{port: port, rtp: rtp, rtcp: rtcp}, nil
	}
	return pair{}, ErrNoPorts
}

// release closes the pair's sockets and returns its ports to the pool.
func (p *portPool) release(pr pair) {
	if pr.rtp == nil {
		return
	}
	pr.rtp.Close()
	pr.rtcp.Close()
	p.put(pr.port)
}

func isAddrInUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }
