package relay

import (
	"fmt"
	"net"
	"net/netip"
)

// takeSpread removes n free pairs from the pool, chosen to cover the range
// whose lowest even port is first: the first and last pairs and n-2 spread
// evenly between, each the free pair nearest its target. It takes nothing
// and returns false when fewer than n pairs are free. One O(range) scan per
// call: probes are rare.
func (p *portPool) takeSpread(n, first int) ([]uint16, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n < 1 || p.count < n || len(p.ring) == 0 {
		return nil, false
	}
	// where[i] is the ring position of the pair first+2i, or -1 when taken.
	where := make([]int32, len(p.ring))
	for i := range where {
		where[i] = -1
	}
	for k := range p.count {
		pos := (p.head + k) % len(p.ring)
		where[(int(p.ring[pos])-first)/2] = int32(pos)
	}
	out := make([]uint16, 0, n)
	for i := range n {
		target := 0
		if n > 1 {
			target = (i*(len(where)-1) + (n-1)/2) / (n - 1)
		}
		idx := nearestFree(where, target)
		if idx < 0 {
			break // cannot happen: count >= n
		}
		pos := int(where[idx])
		where[idx] = -1
		// Swap the taken pair with the oldest free one, then advance head:
		// O(1), and the displaced pair is reused a little later than it
		// would have been, which only helps stray packets die out.
		if pos != p.head {
			moved := p.ring[p.head]
			p.ring[pos] = moved
			where[(int(moved)-first)/2] = int32(pos)
		}
		out = append(out, uint16(first+2*idx))
		p.head = (p.head + 1) % len(p.ring)
		p.count--
		p.inUse += 2
	}
	return out, true
}

// nearestFree is the index nearest target whose pair is free, lower first
// on a tie; -1 when none is.
func nearestFree(where []int32, target int) int {
	for d := 0; d < len(where); d++ {
		if i := target - d; i >= 0 && where[i] >= 0 {
			return i
		}
		if i := target + d; i < len(where) && where[i] >= 0 {
			return i
		}
		if target-d < 0 && target+d >= len(where) {
			break
		}
	}
	return -1
}

// bindProbe binds one UDP socket of an allocated pair: the odd (RTCP) port
// when odd is set, so the very top of a range ending on an odd port gets
// tested too. A port another process holds is reported as such.
func bindProbe(bind netip.Addr, pairPort uint16, odd bool) (*net.UDPConn, uint16, error) {
	port := pairPort
	if odd {
		port++
	}
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(bind, port)))
	if err != nil {
		return nil, 0, fmt.Errorf("relay: bind probe port %d: %w", port, err)
	}
	return c, port, nil
}
