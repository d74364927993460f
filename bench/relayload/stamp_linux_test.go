//go:build linux

package main

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, 16+len(data))
	binary.NativeEndian.PutUint64(b[0:], uint64(16+len(data)))
	binary.NativeEndian.PutUint32(b[8:], uint32(level))
	binary.NativeEndian.PutUint32(b[12:], uint32(typ))
	copy(b[16:], data)
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	return b
}

func TestRxStamp(t *testing.T) {
	ts := make([]byte, 16)
	binary.NativeEndian.PutUint64(ts[0:], 1700000000)
	binary.NativeEndian.PutUint64(ts[8:], 123456789)
	const want = 1700000000*1e9 + 123456789
	other := cmsg(unix.SOL_IP, unix.IP_TOS, []byte{0})
	for _, c := range []struct {
		name string
		oob  []byte
		ok   bool
	}{
		{"alone", cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, ts), true},
		{"after another", append(other, cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, ts)...), true},
		{"none", other, false},
		{"empty", nil, false},
		{"short", cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, ts[:8]), false},
		{"length past the end", cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, ts)[:20], false},
	} {
		got, ok := rxStamp(c.oob)
		if ok != c.ok || ok && got != want {
			t.Errorf("%s: rxStamp = %d, %v; want %d, %v", c.name, got, ok, int64(want), c.ok)
		}
	}
}

// The kernel stamps a datagram between its sending and its reading.
func TestKernelStampsOnLoopback(t *testing.T) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !kernelStamps(c) {
		t.Fatal("SO_TIMESTAMPNS refused")
	}
	before := time.Now().UnixNano()
	if _, err := c.WriteToUDP([]byte("x"), c.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	buf, oob := make([]byte, 16), make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, oobn, _, _, err := c.ReadMsgUDPAddrPort(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now().UnixNano()
	got, ok := rxStamp(oob[:oobn])
	if !ok {
		t.Fatalf("no timestamp in %d bytes of control messages", oobn)
	}
	if got < before || got > after {
		t.Errorf("stamp %d outside [%d, %d]", got, before, after)
	}
}
