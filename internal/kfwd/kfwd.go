//go:build linux

// Package kfwd is the media relay's kernel fast path. A TCX ingress eBPF
// program (kfwd.c) on the interface of the relay's address forwards the
// RTP of directions the relay installs: a datagram from a latched client
// to a relay socket leaves, addresses and ports rewritten, from the other
// side's relay socket toward the other side's latched address, without any
// process waking for it. Everything the program does not know (first
// packets, RTCP, DTLS, strangers, IP options, IPv6 extension headers,
// fragments) goes on to the relay's sockets untouched, so the relay's
// rules stay in one place (internal/relay) and the kernel only repeats a
// decision the relay made. IPv4 and IPv6 alike.
//
// Loading needs CAP_BPF and CAP_NET_ADMIN and a kernel with TCX (6.6);
// New fails without them and the relay forwards every packet itself.
package kfwd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Flow is one direction as it reaches the relay: the latched client
// address it comes from and the relay socket it arrives at.
type Flow struct {
	From netip.AddrPort
	At   netip.AddrPort
}

// Route is where a Flow's RTP goes: out of the other side's relay socket
// (From) to the other side's latched address (To). PT and Clock name the
// payload type whose sequence numbers and jitter the kernel follows.
type Route struct {
	From  netip.AddrPort
	To    netip.AddrPort
	PT    uint8
	Clock uint32
}

// Counters are what the kernel forwarded on one Flow.
type Counters struct {
	Packets, Bytes uint64
	Last           time.Time // wall time of the last packet; zero if none
	Lost           int64     // of PT, RFC 3550 A.3
	Jitter         uint32    // of PT, RFC 3550 A.8, in RTP units
	Clock          uint32
}

// ErrUnsupported is returned for a flow the kernel path cannot take:
// an unspecified address or port, or addresses of two families (the
// kernel rewrites a packet in place).
var ErrUnsupported = errors.New("kfwd: unicast addresses of one family only")

// ErrNoKernelSupport wraps New's error when the kernel lacks what the
// program needs (TCX, kernel 6.6), as opposed to a refusal (privileges) or
// a defect.
var ErrNoKernelSupport = errors.New("kfwd: the kernel does not support it")

// Forwarder holds the loaded program, its flow table and the attachment.
type Forwarder struct {
	objs kfwdObjects
	link link.Link

	mu     sync.Mutex // guards closed and every use of the table
	closed bool
}

// New loads the program with room for maxFlows directions and attaches it
// to the ingress of the interface that holds bind.
func New(bind netip.Addr, maxFlows int) (*Forwarder, error) {
	bind = bind.Unmap()
	if !bind.IsValid() || bind.IsUnspecified() {
		return nil, fmt.Errorf("kfwd: bind address %s: %w", bind, ErrUnsupported)
	}
	ifc, err := owner(bind)
	if err != nil {
		return nil, err
	}
	spec, err := loadKfwd()
	if err != nil {
		return nil, fmt.Errorf("kfwd: %w", err)
	}
	spec.Maps[kfwdMapFlows].MaxEntries = uint32(max(maxFlows, 16))
	f := &Forwarder{}
	if err := spec.LoadAndAssign(&f.objs, nil); err != nil {
		return nil, fmt.Errorf("kfwd: load: %w", err)
	}
	f.link, err = link.AttachTCX(link.TCXOptions{
		Interface: ifc.Index,
		Program:   f.objs.RelayIngress,
		Attach:    ebpf.AttachTCXIngress,
	})
	if err != nil {
		f.objs.Close()
		if errors.Is(err, ebpf.ErrNotSupported) {
			err = fmt.Errorf("%w: %w", ErrNoKernelSupport, err)
		}
		return nil, fmt.Errorf("kfwd: attach to %s ingress: %w", ifc.Name, err)
	}
	return f, nil
}

// owner is the interface an address belongs to; every loopback address is
// the loopback interface's.
func owner(a netip.Addr) (*net.Interface, error) {
	ifcs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("kfwd: interfaces: %w", err)
	}
	for i := range ifcs {
		ifc := &ifcs[i]
		if a.IsLoopback() && ifc.Flags&net.FlagLoopback != 0 {
			return ifc, nil
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, ad := range addrs {
			if n, ok := ad.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == a {
					if len(ifc.HardwareAddr) != 6 {
						return nil, fmt.Errorf("kfwd: %s is on %s, which has no Ethernet header", a, ifc.Name)
					}
					return ifc, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("kfwd: no interface holds %s", a)
}

// egress is the interface index a datagram to dst leaves by: 0 when dst
// is an address of this host (delivered up the stack), else the interface
// of the source address the kernel would choose (a connected UDP socket
// asks the routing table; nothing is sent).
func egress(dst netip.Addr) (int, error) {
	if dst.IsLoopback() {
		return 0, nil
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
	if err != nil {
		return 0, fmt.Errorf("kfwd: route to %s: %w", dst, err)
	}
	src := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	c.Close()
	if src == dst {
		return 0, nil
	}
	ifc, err := owner(src)
	if err != nil {
		return 0, err
	}
	if local, _ := owner(dst); local != nil {
		return 0, nil
	}
	return ifc.Index, nil
}

func key(fl Flow) (kfwdFlowKey, error) {
	if !valid(fl.From) || !valid(fl.At) || fl.From.Addr().Unmap().Is4() != fl.At.Addr().Unmap().Is4() {
		return kfwdFlowKey{}, ErrUnsupported
	}
	return kfwdFlowKey{
		Saddr: addr16(fl.From.Addr()), Daddr: addr16(fl.At.Addr()),
		Sport: port16(fl.From.Port()), Dport: port16(fl.At.Port()),
	}, nil
}

func valid(a netip.AddrPort) bool {
	ip := a.Addr().Unmap()
	return ip.IsValid() && !ip.IsUnspecified() && a.Port() != 0
}

// addr16 is the program's form of an address: IPv6, an IPv4 one mapped
// (::ffff:a.b.c.d), network order.
func addr16(a netip.Addr) [16]uint8 { return a.Unmap().As16() }

// port16 holds a port's network-order bytes in the host-order integer the
// map's layout has.
func port16(p uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], p)
	return binary.NativeEndian.Uint16(b[:])
}

// Add has the kernel forward fl along r from its next packet on,
// replacing any route it had (its counters start again).
func (f *Forwarder) Add(fl Flow, r Route) error {
	k, err := key(fl)
	if err != nil {
		return err
	}
	v4 := fl.At.Addr().Unmap().Is4()
	if !valid(r.From) || !valid(r.To) || r.From.Addr().Unmap().Is4() != v4 || r.To.Addr().Unmap().Is4() != v4 {
		return ErrUnsupported
	}
	ifindex, err := egress(r.To.Addr().Unmap())
	if err != nil {
		return err
	}
	v := kfwdFlow{
		Saddr: addr16(r.From.Addr()), Daddr: addr16(r.To.Addr()),
		Sport: port16(r.From.Port()), Dport: port16(r.To.Port()),
		Ifindex: uint32(ifindex), Clock: r.Clock, Pt: r.PT,
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return net.ErrClosed
	}
	if err := f.objs.Flows.Update(&k, &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("kfwd: add %s -> %s: %w", fl.From, fl.At, err)
	}
	return nil
}

// Read returns fl's counters so far; false when fl is not installed.
func (f *Forwarder) Read(fl Flow) (Counters, bool) {
	return f.take(fl, (*ebpf.Map).Lookup)
}

// Remove stops forwarding fl in the kernel and returns its final
// counters; false when it was not installed.
func (f *Forwarder) Remove(fl Flow) (Counters, bool) {
	return f.take(fl, (*ebpf.Map).LookupAndDelete)
}

// take reads fl's record with op (a lookup, or a lookup that deletes).
func (f *Forwarder) take(fl Flow, op func(m *ebpf.Map, key, value any) error) (Counters, bool) {
	k, err := key(fl)
	if err != nil {
		return Counters{}, false
	}
	var v kfwdFlow
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed { // the table's descriptor may be another file's by now
		return Counters{}, false
	}
	if err := op(f.objs.Flows, &k, &v); err != nil {
		return Counters{}, false
	}
	return counters(&v, time.Now(), monotonic()), true
}

// monotonic is CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns.
func monotonic() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// counters converts the program's record, read at wall time now and
// monotonic time mono.
func counters(v *kfwdFlow, now time.Time, mono time.Duration) Counters {
	c := Counters{Packets: v.Packets, Bytes: v.Bytes, Jitter: v.Jitter / 16, Clock: v.Clock}
	if v.LastNs != 0 && mono != 0 {
		c.Last = now.Add(-(mono - time.Duration(v.LastNs)))
	}
	if v.Started != 0 {
		expected := int64(v.MaxSeq) - int64(v.BaseSeq) + 1
		got := int64(v.PtPackets) - int64(v.RunStart)
		c.Lost = int64(v.LostBefore) + expected - got
	}
	return c
}

// Close detaches the program and frees the table. It is idempotent.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	err := f.link.Close()
	return errors.Join(err, f.objs.Close())
}
