//go:build linux

package kfwd

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/z5vrs/z5/internal/testenv"
)

// routedNetnsEnv marks the copy of the test binary that runs inside the
// relay's network namespace.
const routedNetnsEnv = "Z5_KFWD_ROUTED_NETNS"

// routedSetup prepares the relay's namespace: a veth pair whose r0 end
// holds the relay's address; f0 moves to the far namespace in the test.
const routedSetup = "ip link set lo up && ip link add r0 type veth peer name f0 && " +
	"ip addr add 198.18.0.1/24 dev r0 && ip link set r0 up"

var (
	relayIP  = netip.MustParseAddr("198.18.0.1")
	clientIP = netip.MustParseAddr("198.18.0.2")
	peerIP   = netip.MustParseAddr("198.18.0.3")
)

// TestForwardsRoutedFlow: the destination is another host, so the program
// rewrites the datagram and redirects it out of the veth toward the far
// namespace. Checksum offload is off where the datagram leaves the relay
// and where it arrives, so the far side verifies the rewritten IP and UDP
// checksums in software and drops the datagram if either is wrong; the
// peer reading it is the proof.
func TestForwardsRoutedFlow(t *testing.T) {
	if os.Getenv(routedNetnsEnv) == "" {
		if os.Geteuid() != 0 {
			t.Skip("needs its own network namespaces and eBPF, which need root")
		}
		reexecInRelayNetns(t)
		return
	}

	far := newFarNetns(t)
	mustRun(t, "ip", "link", "set", "f0", "netns", strconv.Itoa(far.tid))
	var client, peer *net.UDPConn
	err := far.do(func() error {
		for _, args := range [][]string{
			{"link", "set", "lo", "up"},
			{"addr", "add", clientIP.String() + "/24", "dev", "f0"},
			{"addr", "add", peerIP.String() + "/24", "dev", "f0"},
			{"link", "set", "f0", "up"},
		} {
			if err := run("ip", args...); err != nil {
				return err
			}
		}
		// Bound here, the sockets belong to the far namespace for good.
		var err error
		if client, err = listenUDP(clientIP); err != nil {
			return err
		}
		peer, err = listenUDP(peerIP)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); peer.Close() })
	if err := checksumOffload("r0", false, false); err != nil {
		t.Fatal(err)
	}
	relayA, err := listenUDP(relayIP)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relayA.Close() })
	relayB, err := listenUDP(relayIP)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relayB.Close() })
	clientAddr, peerAddr := addrOf(client), addrOf(peer)
	relayAAddr, relayBAddr := addrOf(relayA), addrOf(relayB)

	// The link works both ways without the program: what fails later is
	// the program's. The peer's neighbour entry is left for the program's
	// first packet to resolve.
	linkUp := false
	for range 10 {
		relayB.WriteToUDPAddrPort([]byte("probe"), clientAddr)
		if b, _, ok := recv(t, client); ok && string(b) == "probe" {
			linkUp = true
			break
		}
	}
	if !linkUp {
		t.Fatal("the veth carried nothing from the relay to the client")
	}
	client.WriteToUDPAddrPort([]byte("probe"), relayAAddr)
	if b, from, ok := recv(t, relayA); !ok || string(b) != "probe" || from != clientAddr {
		t.Fatalf("the relay socket did not read the client's probe (%v from %s)", ok, from)
	}

	f, err := New(relayIP, 64)
	if errors.Is(err, ErrNoKernelSupport) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	r0, err := net.InterfaceByName("r0")
	if err != nil {
		t.Fatal(err)
	}
	if ifindex, err := egress(peerIP); err != nil || ifindex != r0.Index {
		t.Fatalf("egress(%s) = %d, %v; want r0 (%d)", peerIP, ifindex, err, r0.Index)
	}

	fl := Flow{From: clientAddr, At: relayAAddr}
	for _, tc := range []struct {
		name string
		// senderOffload leaves the client's UDP checksum to the veth:
		// the datagram reaches the program with only the pseudo-header
		// sum in its checksum field (CHECKSUM_PARTIAL, as from a
		// container or a VM on the same host), which the program must
		// update for the new addresses; r0, its offload off, then
		// completes the checksum in software on the way out.
		senderOffload bool
	}{
		{"software checksum", false},
		{"checksum left to the sender's device", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := far.do(func() error { return checksumOffload("f0", tc.senderOffload, false) }); err != nil {
				t.Fatal(err)
			}
			// Installed again, the flow's counters start from zero.
			if err := f.Add(fl, Route{From: relayBAddr, To: peerAddr, PT: 96, Clock: 90000}); err != nil {
				t.Fatal(err)
			}
			forwardRouted(t, far, f, fl, client, peer, relayA, relayBAddr)
		})
	}
}

// forwardRouted sends RTP on fl from client and checks that peer reads it
// unchanged from relayB, that relayA reads nothing and that the counters
// count it; then that RTCP on fl goes to relayA.
func forwardRouted(t *testing.T, far *farNetns, f *Forwarder, fl Flow, client, peer, relayA *net.UDPConn, relayBAddr netip.AddrPort) {
	t.Helper()
	// Sequence 100-119 without 107: one lost. Odd and even payload lengths.
	sent, sentBytes := 0, 0
	for seq := uint16(100); seq < 120; seq++ {
		if seq == 107 {
			continue
		}
		pkt := rtp(96, seq, uint32(seq)*3000, 160+int(seq%2))
		for i := 12; i < len(pkt); i++ {
			pkt[i] = byte(i*7 + int(seq))
		}
		if _, err := client.WriteToUDPAddrPort(pkt, fl.At); err != nil {
			t.Fatal(err)
		}
		sent++
		sentBytes += len(pkt)
		b, from, ok := recv(t, peer)
		if !ok {
			t.Fatalf("seq %d: nothing reached the peer; far side %s", seq, far.udpStats())
		}
		if from != relayBAddr || !bytes.Equal(b, pkt) {
			t.Fatalf("seq %d: the peer read %d bytes from %s, want the %d sent from %s", seq, len(b), from, len(pkt), relayBAddr)
		}
	}
	if b, _, ok := recv(t, relayA); ok {
		t.Fatalf("the relay socket read %d bytes of a forwarded flow", len(b))
	}
	c, ok := f.Read(fl)
	if !ok || c.Packets != uint64(sent) || c.Bytes != uint64(sentBytes) || c.Lost != 1 {
		t.Fatalf("counters %+v (%v), want %d packets, %d bytes, 1 lost", c, ok, sent, sentBytes)
	}
	if age := time.Since(c.Last); age < 0 || age > 5*time.Second {
		t.Errorf("last packet %s ago", age)
	}

	// RTCP on the same flow crosses the veth to the relay's socket.
	rtcp := append([]byte{0x80, 200, 0, 6}, make([]byte, 24)...)
	client.WriteToUDPAddrPort(rtcp, fl.At)
	if b, _, ok := recv(t, relayA); !ok || !bytes.Equal(b, rtcp) {
		t.Error("RTCP: the relay socket did not read it")
	}
	if _, _, ok := recv(t, peer); ok {
		t.Error("RTCP reached the peer")
	}
}

// reexecInRelayNetns runs TestForwardsRoutedFlow again in a network
// namespace of its own (`unshare --net`) set up by routedSetup; the
// namespace, the far one and the veth die with that process.
func reexecInRelayNetns(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (util-linux, iproute2)", tool)
		}
	}
	testenv.ReexecInNetns(t, "^TestForwardsRoutedFlow$", routedNetnsEnv, routedSetup, time.Minute)
}

// farNetns is a network namespace held by one OS thread of this process;
// what do runs on that thread, so sockets and commands it creates are in
// the far namespace while the rest of the process stays in the relay's.
type farNetns struct {
	tid  int
	work chan func()
	done chan struct{}
}

func newFarNetns(t *testing.T) *farNetns {
	t.Helper()
	n := &farNetns{work: make(chan func()), done: make(chan struct{})}
	ready := make(chan error)
	go func() {
		defer close(n.done)
		// Never unlocked: the thread, in the wrong namespace for anyone
		// else, ends with this goroutine instead of going back to the pool.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ready <- fmt.Errorf("unshare: %w", err)
			return
		}
		n.tid = unix.Gettid()
		ready <- nil
		for fn := range n.work {
			fn()
		}
	}()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(n.work); <-n.done })
	return n
}

// do runs fn in the far namespace and waits for it.
func (n *farNetns) do(fn func() error) error {
	errc := make(chan error, 1)
	n.work <- func() { errc <- fn() }
	return <-errc
}

// udpStats is the far namespace's Udp counters (InCsumErrors among them),
// to say why a datagram went missing.
func (n *farNetns) udpStats() string {
	var s string
	n.do(func() error {
		b, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			s = err.Error()
			return nil
		}
		for line := range strings.Lines(string(b)) {
			if strings.HasPrefix(line, "Udp:") {
				s += line
			}
		}
		return nil
	})
	return s
}

func run(name string, args ...string) error {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if err := run(name, args...); err != nil {
		t.Fatal(err)
	}
}

func listenUDP(ip netip.Addr) (*net.UDPConn, error) {
	return net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
}

func addrOf(c *net.UDPConn) netip.AddrPort {
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// checksumOffload is `ethtool -K dev tx on|off rx on|off` in the
// calling thread's namespace. A veth leaves a sent datagram's UDP checksum
// to a device that never computes it and has the receiver trust it, so
// with tx on at the sender a rewrite that breaks the checksum would go
// unnoticed; with tx off the sender computes it and the receiver checks it.
func checksumOffload(dev string, tx, rx bool) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("ethtool socket: %w", err)
	}
	defer unix.Close(fd)
	for _, c := range []struct {
		set, get uint32
		on       bool
	}{
		{unix.ETHTOOL_STXCSUM, unix.ETHTOOL_GTXCSUM, tx},
		{unix.ETHTOOL_SRXCSUM, unix.ETHTOOL_GRXCSUM, rx},
	} {
		want := uint32(0)
		if c.on {
			want = 1
		}
		if _, err := ethtool(fd, dev, c.set, want); err != nil {
			return err
		}
		got, err := ethtool(fd, dev, c.get, 0)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("ethtool %s: checksum offload %#x is %d, want %d", dev, c.get, got, want)
		}
	}
	return nil
}

type ethtoolValue struct{ cmd, data uint32 }

// ifreqData is struct ifreq with ifr_data set, padded past the kernel's
// size of the union.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data *ethtoolValue
	_    [24]byte
}

// ethtool issues one SIOCETHTOOL command that takes a struct ethtool_value.
func ethtool(fd int, dev string, cmd, data uint32) (uint32, error) {
	v := &ethtoolValue{cmd: cmd, data: data}
	var ifr ifreqData
	if len(dev) >= len(ifr.name) {
		return 0, fmt.Errorf("ethtool: interface name %q too long", dev)
	}
	copy(ifr.name[:], dev)
	ifr.data = v
	var pin runtime.Pinner
	pin.Pin(v)
	defer pin.Unpin()
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if errno != 0 {
		return 0, fmt.Errorf("ethtool %s cmd %#x: %w", dev, cmd, errno)
	}
	return v.data, nil
}
