//go:build unix

package sipserver

import (
	"io"
	"net"
	"os"
	"syscall"
)

// rawConn is the socket under an accepted or dialled plain TCP
// connection, or nil.
func rawConn(c net.Conn) syscall.RawConn {
	if cc, ok := c.(*countedConn); ok {
		c = cc.Conn
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// rawRead reads into c.buf[c.w:] as Conn.Read would (the read deadline
// applies), except that a flow with nothing buffered gives its buffer back
// to the transport's pool while it waits, and takes one when bytes arrive:
// an idle registered connection, which is most of them, holds no read
// buffer. The system calls are Conn.Read's: a read, and on EAGAIN a wait
// in the poller, then a read again.
func (c *flowConn) rawRead() (int, error) {
	var n int
	var rerr error
	err := c.raw.Read(func(fd uintptr) bool {
		if c.buf == nil {
			c.buf = c.t.getReadBuf()
		}
		for {
			n, rerr = syscall.Read(int(fd), c.buf[c.w:])
			if rerr != syscall.EINTR {
				break
			}
		}
		if rerr == syscall.EAGAIN {
			if c.w == 0 {
				c.t.putReadBuf(c.buf)
				c.buf = nil
			}
			return false
		}
		return true
	})
	switch {
	case err != nil:
		return 0, err // deadline, or the connection closed
	case rerr != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}
