//go:build !linux

package relay

import (
	"errors"
	"log/slog"
	"net/netip"
)

// Without epoll the relay reads each socket on its own goroutine
// (socket.go); these stand in for the Linux loop and are never reached.

const haveLoops = false

type ioLoop struct{}

type streamIO struct{ loop *ioLoop }

var errNoLoops = errors.New("relay: per-core socket loops need Linux")

func newLoop(*metrics, *slog.Logger) (*ioLoop, error) { return nil, errNoLoops }

func (l *ioLoop) stop()                    {}
func (l *ioLoop) add(*Call, *stream) error { return errNoLoops }
func (l *ioLoop) remove(*streamIO)         {}

func (l *ioLoop) send(*streamIO, Side, component, []byte, netip.AddrPort) error { return errNoLoops }
