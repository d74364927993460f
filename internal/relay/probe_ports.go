package relay

import (
	"fmt"
	"net"
	"net/netip"
)

// takeSpread removes n free pairs from the pool, chosen to cover the range
// whose lowest even port is first: the first and last pairs and n-2 spread
// evenly between, each the free pair nearest its target. It takes nothing
// and returns false when fewer than n pairs are free. Probes are rare, so
// the nearest-free search may scan the range.
func (p *portPool) takeSpread(n, first int) ([]uint16, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n < 1 || len(p.free) < n || p.n == 0 || first != p.first {
		return nil, false
	}
	out := make([]uint16, 0, n)
	for i := range n {
		target := 0
		if n > 1 {
			target = (i*(p.n-1) + (n-1)/2) / (n - 1)
		}
		idx := nearestFree(p.pos, target)
		if idx < 0 {
			break // cannot happen: len(free) >= n
		}
		port := uint16(first + 2*idx)
		p.takeLocked(port)
		out = append(out, port)
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
