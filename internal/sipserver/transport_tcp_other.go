//go:build !unix

package sipserver

import (
	"errors"
	"net"
	"syscall"
)

// rawConn: elsewhere than on Unix a flow keeps its read buffer and reads
// through Conn.Read.
func rawConn(net.Conn) syscall.RawConn { return nil }

func (c *flowConn) rawRead() (int, error) { return 0, errors.New("sipserver: raw reads need Unix") }
