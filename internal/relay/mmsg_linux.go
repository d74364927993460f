package relay

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgBatch is how many datagrams one recvmmsg takes from a socket, and
// one sendmmsg sends, at the most.
const mmsgBatch = 8

// mmsghdr is struct mmsghdr: a msghdr and the length the kernel
// received. Go pads it as C does (to the msghdr's alignment).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// mmsgIO is one loop's buffers for batched receiving and sending: the
// datagrams received from one socket stay in bufs while they are sent
// on, so forwarding copies nothing. Used by one goroutine at a time.
type mmsgIO struct {
	bufs  [mmsgBatch][maxDatagram + 1]byte // one byte over, to see an oversized datagram
	names [mmsgBatch]unix.RawSockaddrAny
	riov  [mmsgBatch]unix.Iovec
	rmsgs [mmsgBatch]mmsghdr

	queued int // datagrams in smsgs, not yet sent
	dsts   [mmsgBatch]unix.RawSockaddrInet6
	siov   [mmsgBatch]unix.Iovec
	smsgs  [mmsgBatch]mmsghdr
}

func newMmsgIO() *mmsgIO {
	m := new(mmsgIO)
	for i := range m.rmsgs {
		m.riov[i].Base = &m.bufs[i][0]
		m.riov[i].SetLen(len(m.bufs[i]))
		m.rmsgs[i].hdr.Name = (*byte)(unsafe.Pointer(&m.names[i]))
		m.rmsgs[i].hdr.Iov = &m.riov[i]
		m.rmsgs[i].hdr.SetIovlen(1)
		m.smsgs[i].hdr.Name = (*byte)(unsafe.Pointer(&m.dsts[i]))
		m.smsgs[i].hdr.Iov = &m.siov[i]
		m.smsgs[i].hdr.SetIovlen(1)
	}
	return m
}

// recv reads up to mmsgBatch datagrams from fd without waiting.
func (m *mmsgIO) recv(fd int) (int, error) {
	for i := range m.rmsgs {
		m.rmsgs[i].hdr.Namelen = uint32(unsafe.Sizeof(m.names[i])) // value-result
	}
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&m.rmsgs[0])), mmsgBatch,
		unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// datagram is the i-th datagram recv read.
func (m *mmsgIO) datagram(i int) []byte { return m.bufs[i][:m.rmsgs[i].n] }

// source is where the i-th datagram came from; the zero AddrPort for a
// family the relay does not use (its checks then drop the datagram).
func (m *mmsgIO) source(i int) netip.AddrPort {
	src, _ := addrOf(&m.names[i])
	return src
}

// queue adds b (a datagram recv read) for dst to the next send from a
// socket of family v6; false when that socket cannot reach dst.
func (m *mmsgIO) queue(b []byte, dst netip.AddrPort, v6 bool) bool {
	k := m.queued
	salen := putAddr(&m.dsts[k], v6, dst)
	if salen == 0 {
		return false
	}
	m.smsgs[k].hdr.Namelen = uint32(salen)
	if len(b) > 0 {
		m.siov[k].Base = &b[0]
	}
	m.siov[k].SetLen(len(b))
	m.queued++
	return true
}

// send sends the queued datagrams from fd in one sendmmsg, and reports
// how many left and their bytes. A datagram the kernel refuses ends the
// call: it and those behind it are not sent (err says why).
func (m *mmsgIO) send(fd int) (sent, bytes int, err error) {
	if m.queued == 0 {
		return 0, 0, nil
	}
	n, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&m.smsgs[0])), uintptr(m.queued),
		0, 0, 0)
	if errno != 0 {
		return 0, 0, errno
	}
	for i := range int(n) {
		bytes += int(m.siov[i].Len)
	}
	return int(n), bytes, nil
}
