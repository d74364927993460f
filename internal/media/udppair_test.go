package media

import (
	"net"
	"net/netip"
	"testing"
)

func TestListenRTPPair(t *testing.T) {
	rtp, rtcp, err := ListenRTPPair(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer rtp.Close()
	defer rtcp.Close()
	p, q := rtp.LocalAddr().(*net.UDPAddr).Port, rtcp.LocalAddr().(*net.UDPAddr).Port
	if p%2 != 0 || q != p+1 {
		t.Errorf("RTP port %d, RTCP port %d: want an even port and the one above it", p, q)
	}
}
