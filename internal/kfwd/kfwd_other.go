//go:build !linux

package kfwd

import (
	"errors"
	"net/netip"
	"time"
)

// Flow, Route and Counters are as on Linux (kfwd.go); elsewhere New
// always fails and the relay forwards every packet itself.
type Flow struct{ From, At netip.AddrPort }

type Route struct {
	From, To netip.AddrPort
	PT       uint8
	Clock    uint32
}

type Counters struct {
	Packets, Bytes uint64
	Last           time.Time
	Lost           int64
	Jitter, Clock  uint32
}

var ErrUnsupported = errors.New("kfwd: the kernel path needs Linux")

var ErrNoKernelSupport = ErrUnsupported

type Forwarder struct{}

func New(netip.Addr, int) (*Forwarder, error)   { return nil, ErrUnsupported }
func (*Forwarder) Add(Flow, Route) error        { return ErrUnsupported }
func (*Forwarder) Read(Flow) (Counters, bool)   { return Counters{}, false }
func (*Forwarder) Remove(Flow) (Counters, bool) { return Counters{}, false }
func (*Forwarder) Close() error                 { return nil }
