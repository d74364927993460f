package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioLoop forwards the datagrams of many sockets from one goroutine. Its
// sockets sit in an epoll set of its own (level-triggered); the epoll
// descriptor sits in Go's netpoller, so the goroutine parks there while no
// socket has a datagram. Woken, it takes the ready sockets with
// epoll_wait(0), reads what each holds (recvmmsg, mmsg_linux.go), decides
// and sends it on (sendmmsg), and asks again until none is ready. The
// relay runs one loop per core.
//
// Why (BENCHMARKS.md, "relay after the per-core loops"): with a goroutine
// per socket, a quarter of the relay's CPU went to the Go scheduler and the
// netpoller (a park and a wake-up per datagram) and a tenth to the
// recvfrom that finds the socket empty; a loop pays one wake-up and one
// epoll_wait for all the sockets ready together, and no failed read. A
// goroutine blocked in epoll_wait instead was slower still: a thread
// parked in a system call costs the scheduler more on every wake-up.
//
// The loop's sockets are taken out of Go's netpoller (detach), so a
// datagram wakes the loop only. A stream's four sockets belong to one
// loop, so a datagram leaves by a socket of the same loop; every use of a
// socket, and its closing, happens under the loop's mutex, so a socket is
// never used after it is closed (its descriptor number may be reused at
// once).
type ioLoop struct {
	epfd  int
	file  *os.File        // epfd, registered in Go's netpoller
	rc    syscall.RawConn // of file
	m     *metrics
	debug bool
	done  sync.WaitGroup

	mu       sync.Mutex // guards the following; held while a batch is handled
	regs     []*loopReg // by slot (epoll event data); nil: free
	free     []int32
	stopping bool
}

// loopReg is one socket of a loop: side's socket comp of stream s.
type loopReg struct {
	c    *Call
	s    *stream
	side Side
	comp component
	fd   int
}

// streamIO is a stream's sockets in a loop: descriptors by side and
// component, and their slots.
type streamIO struct {
	loop   *ioLoop
	fd     [2][2]int
	v6     [2][2]bool // the socket is AF_INET6 (a dual-stack wildcard included)
	slot   [2][2]int32
	closed bool // guarded by loop.mu
}

// haveLoops: the relay reads its sockets with ioLoops by default.
const haveLoops = true

// loopEvents is how many ready sockets one epoll_wait returns at most.
const loopEvents = 128

func newLoop(m *metrics, log *slog.Logger) (*ioLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("relay: epoll_create1: %w", err)
	}
	// The epoll descriptor is readable while any of its sockets is: Go's
	// netpoller wakes the loop's goroutine, which then never blocks in a
	// system call (a goroutine blocked in epoll_wait costs a thread and
	// the scheduler's attention on every wake-up).
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("relay: epoll non-blocking: %w", err)
	}
	f := os.NewFile(uintptr(epfd), "relay-epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("relay: epoll conn: %w", err)
	}
	l := &ioLoop{epfd: epfd, file: f, rc: rc, m: m, debug: log.Enabled(context.Background(), slog.LevelDebug)}
	l.done.Add(1)
	go l.run()
	return l, nil
}

// stop ends the loop and closes its epoll descriptor. Every stream must
// have been removed before.
func (l *ioLoop) stop() {
	l.mu.Lock()
	l.stopping = true
	l.mu.Unlock()
	l.file.Close() // wakes the parked loop with ErrClosed
	l.done.Wait()
}

// detach takes conn's socket out of Go's netpoller: a duplicate
// descriptor keeps the socket, and closing conn removes the original from
// the netpoller's epoll set. The duplicate stays non-blocking.
func detach(conn *net.UDPConn) (fd int, v6 bool, err error) {
	defer conn.Close()
	rc, err := conn.SyscallConn()
	if err != nil {
		return -1, false, err
	}
	fd = -1
	var derr error
	if err := rc.Control(func(f uintptr) { fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, false, err
	}
	if derr != nil {
		return -1, false, fmt.Errorf("relay: dup socket: %w", derr)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, false, fmt.Errorf("relay: getsockname: %w", err)
	}
	_, v6 = sa.(*unix.SockaddrInet6)
	return fd, v6, nil
}

// add moves the stream's sockets into the loop. On error nothing is
// registered and the pairs' sockets are closed.
func (l *ioLoop) add(c *Call, s *stream) error {
	io := &streamIO{loop: l}
	var err error
	for side := SideA; side <= SideB; side++ {
		for comp, conn := range []*net.UDPConn{s.pairs[side].rtp, s.pairs[side].rtcp} {
			io.fd[side][comp] = -1
			if err != nil {
				conn.Close()
				continue
			}
			io.fd[side][comp], io.v6[side][comp], err = detach(conn)
		}
		s.pairs[side].rtp, s.pairs[side].rtcp = nil, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil && l.stopping {
		err = ErrClosed
	}
	var added [][2]int
	for side := range 2 {
		for comp := range 2 {
			if err != nil {
				break
			}
			slot := l.slotLocked()
			ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: slot}
			if err = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, io.fd[side][comp], &ev); err != nil {
				l.free = append(l.free, slot)
				err = fmt.Errorf("relay: epoll_ctl add: %w", err)
				break
			}
			io.slot[side][comp] = slot
			l.regs[slot] = &loopReg{c: c, s: s, side: Side(side), comp: component(comp), fd: io.fd[side][comp]}
			added = append(added, [2]int{side, comp})
		}
	}
	if err != nil {
		for _, sc := range added {
			l.dropLocked(io, sc[0], sc[1])
		}
		for side := range 2 {
			for comp := range 2 {
				if fd := io.fd[side][comp]; fd >= 0 {
					unix.Close(fd)
				}
			}
		}
		io.closed = true
		return err
	}
	s.io = io
	return nil
}

func (l *ioLoop) slotLocked() int32 {
	if n := len(l.free); n > 0 {
		slot := l.free[n-1]
		l.free = l.free[:n-1]
		return slot
	}
	l.regs = append(l.regs, nil)
	return int32(len(l.regs) - 1)
}

func (l *ioLoop) dropLocked(io *streamIO, side, comp int) {
	slot := io.slot[side][comp]
	unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, io.fd[side][comp], nil)
	l.regs[slot] = nil
	l.free = append(l.free, slot)
}

// remove closes the stream's sockets. A batch the loop is handling ends
// first; events it has not handled yet find their slot empty.
func (l *ioLoop) remove(io *streamIO) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if io.closed {
		return
	}
	io.closed = true
	for side := range 2 {
		for comp := range 2 {
			l.dropLocked(io, side, comp)
			unix.Close(io.fd[side][comp])
		}
	}
}

// send sends b from side's socket comp of the stream, unless its sockets
// are closed (ErrClosed).
func (l *ioLoop) send(io *streamIO, side Side, comp component, b []byte, dst netip.AddrPort) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if io.closed {
		return ErrClosed
	}
	return sendTo(io.fd[side][comp], io.v6[side][comp], b, dst)
}

func (l *ioLoop) run() {
	defer l.done.Done()
	events := make([]unix.EpollEvent, loopEvents)
	bio := newMmsgIO()
	stopped := false
	// poll handles ready sockets until none is left, then returns false
	// so the goroutine parks until the epoll set has news (an edge that
	// comes only once the set was seen empty).
	poll := func(uintptr) bool {
		for {
			n, err := epollReady(l.epfd, events)
			if err != nil && !errors.Is(err, unix.EINTR) {
				stopped = true // the descriptor is gone: nothing to wait for
				return true
			}
			if n <= 0 {
				return false
			}
			if !l.batch(events[:n], bio) {
				stopped = true
				return true
			}
		}
	}
	for !stopped {
		if err := l.rc.Read(poll); err != nil {
			return // closed by stop
		}
	}
}

// batch handles the sockets epoll_wait found ready; false when the loop
// is stopping.
func (l *ioLoop) batch(events []unix.EpollEvent, bio *mmsgIO) bool {
	now := time.Now()
	var packets, bytes int
	l.mu.Lock()
	if l.stopping {
		l.mu.Unlock()
		return false
	}
	for i := range events {
		slot := events[i].Fd
		if int(slot) >= len(l.regs) {
			continue
		}
		r := l.regs[slot]
		if r == nil {
			continue // removed after epoll_wait returned
		}
		p, b := l.handle(r, bio, now)
		packets += p
		bytes += b
	}
	l.mu.Unlock()
	if packets > 0 {
		l.m.packets.Add(float64(packets))
		l.m.bytes.Add(float64(bytes))
	}
	return true
}

// handle reads what r's socket holds, up to mmsgBatch datagrams in one
// recvmmsg (the socket stays ready while more are queued: epoll is
// level-triggered), and forwards each, those leaving by the same socket in
// one sendmmsg. At low rates a socket holds one datagram when it is read,
// and this costs what recvfrom and sendto did; a socket with a backlog
// (the loop fell behind) is drained with a pair of system calls per batch
// instead of per datagram. It returns the datagrams and bytes sent. The
// caller holds l.mu.
func (l *ioLoop) handle(r *loopReg, bio *mmsgIO, now time.Time) (packets, bytes int) {
	n, err := bio.recv(r.fd)
	if err != nil {
		// EAGAIN (another event of the same socket in this batch), or
		// an ICMP error queued on the socket, which the read clears.
		return 0, 0
	}
	s, io := r.s, r.s.io
	side := 1 - r.side
	out := -1 // the component the pending sends leave by
	for i := range n {
		b := bio.datagram(i)
		dst, comp, ok := r.c.judge(s, r.side, r.comp, b, bio.source(i), now, l.debug)
		if !ok {
			continue
		}
		if out >= 0 && int(comp) != out {
			p, by := l.flush(r, bio, io.fd[side][out], side, component(out))
			packets, bytes = packets+p, bytes+by
		}
		out = int(comp)
		if !bio.queue(b, dst, io.v6[side][comp]) {
			l.m.sendErrors.Inc() // a destination the socket's family cannot reach
		}
	}
	if out >= 0 {
		p, by := l.flush(r, bio, io.fd[side][out], side, component(out))
		packets, bytes = packets+p, bytes+by
	}
	return packets, bytes
}

// flush sends the queued datagrams from fd; one the socket refuses (a full
// buffer: dropped, as rtpengine does) is counted, and so are those behind
// it in the batch.
func (l *ioLoop) flush(r *loopReg, bio *mmsgIO, fd int, side Side, comp component) (packets, bytes int) {
	sent, by, err := bio.send(fd)
	if failed := bio.queued - sent; failed > 0 {
		l.m.sendErrors.Add(float64(failed))
		if l.debug {
			r.c.log.Debug("relay send", "stream", r.s.index, "side", side, "component", comp, "datagrams", failed, "error", err)
		}
	}
	bio.queued = 0
	return sent, by
}

// epollReady is epoll_wait with a zero timeout. It never blocks, so it is
// made as a raw system call: unix.EpollWait tells the scheduler it enters
// a system call, which wakes the sysmon thread when it sleeps; at 7,000
// datagrams/s that wake-up was an eighth of the relay's CPU.
func epollReady(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// addrOf reads an IPv4 or IPv6 socket address.
func addrOf(rsa *unix.RawSockaddrAny) (netip.AddrPort, bool) {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), portOf(&sa.Port)), true
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), portOf(&sa.Port)), true
	}
	return netip.AddrPort{}, false
}

// putAddr writes dst into sa as a socket of family v6 (IPv6, IPv4 then
// v4-mapped) or IPv4 takes it, and returns its length; 0 when an IPv4
// socket cannot reach dst. sa is storage for either.
func putAddr(sa *unix.RawSockaddrInet6, v6 bool, dst netip.AddrPort) uintptr {
	switch {
	case v6:
		*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: dst.Addr().As16()}
		setPort(&sa.Port, dst.Port())
		return unsafe.Sizeof(*sa)
	case dst.Addr().Unmap().Is4():
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*s4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: dst.Addr().Unmap().As4()}
		setPort(&s4.Port, dst.Port())
		return unsafe.Sizeof(*s4)
	}
	return 0
}

// sendTo sends one datagram without allocating; v6 is the socket's family.
func sendTo(fd int, v6 bool, b []byte, dst netip.AddrPort) error {
	var sa unix.RawSockaddrInet6
	salen := putAddr(&sa, v6, dst)
	if salen == 0 {
		return unix.EAFNOSUPPORT
	}
	var b0 unsafe.Pointer
	if len(b) > 0 {
		b0 = unsafe.Pointer(&b[0])
	}
	_, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(b0), uintptr(len(b)),
		0, uintptr(unsafe.Pointer(&sa)), salen)
	if errno != 0 {
		return errno
	}
	return nil
}

// portOf and setPort read and write a sockaddr port, kept in network byte
// order.
func portOf(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}

func setPort(p *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}
