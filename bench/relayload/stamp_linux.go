//go:build linux

package main

import (
	"encoding/binary"
	"net"

	"golang.org/x/sys/unix"
)

// Receive timestamps from the kernel (SO_TIMESTAMPNS): a packet's latency
// ends when it reached the leg's socket, not when the generator's reader
// goroutine got round to it, so the generator's own wake-ups (on a host
// whose two cores it shares with the relay) stay out of the relay's figure.

// kernelStamps turns on receive timestamps for conn; false if the kernel
// refused.
func kernelStamps(conn *net.UDPConn) bool {
	rc, err := conn.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return false
	}
	return true
}

// rxStamp finds the SCM_TIMESTAMPNS in a datagram's control messages: the
// arrival time in Unix nanoseconds.
func rxStamp(oob []byte) (int64, bool) {
	const hdr = 16 // struct cmsghdr on 64-bit Linux: size_t len, int level, int type
	if unix.SizeofCmsghdr != hdr {
		return 0, false
	}
	for len(oob) >= hdr {
		l := int(binary.NativeEndian.Uint64(oob[0:8]))
		level := int32(binary.NativeEndian.Uint32(oob[8:12]))
		typ := int32(binary.NativeEndian.Uint32(oob[12:16]))
		if l < hdr || l > len(oob) {
			return 0, false
		}
		if level == unix.SOL_SOCKET && typ == unix.SO_TIMESTAMPNS && l >= hdr+16 {
			d := oob[hdr:]
			sec := int64(binary.NativeEndian.Uint64(d[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(d[8:16]))
			return sec*1e9 + nsec, true
		}
		oob = oob[min((l+7)&^7, len(oob)):]
	}
	return 0, false
}
