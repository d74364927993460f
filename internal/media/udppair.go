package media

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// ListenRTPPair binds an even RTP port and the RTCP port above it on ip
// (RFC 3550 §11: RTP on an even port, RTCP on the next).
func ListenRTPPair(ip netip.Addr) (rtp, rtcp *net.UDPConn, err error) {
	for range 64 {
		rtp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
		if err != nil {
			return nil, nil, fmt.Errorf("media socket: %w", err)
		}
		p := rtp.LocalAddr().(*net.UDPAddr).Port
		if p%2 != 0 || p == 65535 {
			rtp.Close()
			continue
		}
		rtcp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(p+1))))
		if err != nil {
			rtp.Close()
			continue
		}
		return rtp, rtcp, nil
	}
	return nil, nil, errors.New("media socket: no free even/odd UDP port pair")
}
