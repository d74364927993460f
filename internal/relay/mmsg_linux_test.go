package relay

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// detachedPair opens two IPv4 loopback sockets taken out of Go's netpoller
// (as a loop holds them) and returns their descriptors and the second's
// address.
func detachedPair(t *testing.T) (afd, bfd int, aAddr, bAddr netip.AddrPort) {
	t.Helper()
	var fds [2]int
	var addrs [2]netip.AddrPort
	for i := range fds {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = c.LocalAddr().(*net.UDPAddr).AddrPort()
		fd, _, err := detach(c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		fds[i] = fd
	}
	return fds[0], fds[1], addrs[0], addrs[1]
}

// recvAll reads what fd holds, retrying briefly for datagrams in flight.
func recvAll(t *testing.T, m *mmsgIO, fd, want int) []string {
	t.Helper()
	var got []string
	for try := 0; len(got) < want && try < 100000; try++ {
		n, err := m.recv(fd)
		if err != nil {
			continue // EAGAIN: not there yet
		}
		for i := range n {
			got = append(got, fmt.Sprintf("%s from %s", m.datagram(i), m.source(i)))
		}
	}
	return got
}

// TestMmsgBatch: a backlog of datagrams is read in batches of mmsgBatch
// with their sources, and sent on in one sendmmsg each, in order.
func TestMmsgBatch(t *testing.T) {
	afd, bfd, aAddr, bAddr := detachedPair(t)
	cfd, dfd, _, dAddr := detachedPair(t)
	const total = mmsgBatch + 3 // a full batch and a partial one
	for i := range total {
		if err := sendTo(afd, false, fmt.Appendf(nil, "pkt-%02d", i), bAddr); err != nil {
			t.Fatal(err)
		}
	}
	m := newMmsgIO()
	var got []string
	for try := 0; len(got) < total && try < 100000; try++ {
		n, err := m.recv(bfd)
		if err != nil {
			continue
		}
		if n > mmsgBatch {
			t.Fatalf("recv returned %d datagrams, more than a batch (%d)", n, mmsgBatch)
		}
		for i := range n {
			got = append(got, fmt.Sprintf("%s from %s", m.datagram(i), m.source(i)))
			if !m.queue(m.datagram(i), dAddr, false) {
				t.Fatalf("queue to %s refused", dAddr)
			}
		}
		sent, bytes, err := m.send(cfd)
		if err != nil || sent != n || bytes != 6*n {
			t.Fatalf("send of %d: sent %d, %d bytes, %v", n, sent, bytes, err)
		}
		m.queued = 0
	}
	for i := range total {
		if want := fmt.Sprintf("pkt-%02d from %s", i, aAddr); i >= len(got) || got[i] != want {
			t.Fatalf("received %q, want datagram %d to be %q", got, i, want)
		}
	}
	fwd := recvAll(t, newMmsgIO(), dfd, total)
	if len(fwd) != total {
		t.Fatalf("forwarded %d of %d: %q", len(fwd), total, fwd)
	}
	for i, f := range fwd {
		if want := fmt.Sprintf("pkt-%02d from 127.0.0.1:", i); len(f) < len(want) || f[:len(want)] != want {
			t.Errorf("forwarded datagram %d: %q, want %q...", i, f, want)
		}
	}
}

// TestMmsgOversized: a datagram over maxDatagram shows as one byte longer
// than the limit, so the relay's checks refuse it rather than forward a
// truncated one.
func TestMmsgOversized(t *testing.T) {
	afd, bfd, _, bAddr := detachedPair(t)
	if err := sendTo(afd, false, make([]byte, maxDatagram+100), bAddr); err != nil {
		t.Fatal(err)
	}
	m := newMmsgIO()
	for try := 0; try < 100000; try++ {
		n, err := m.recv(bfd)
		if err != nil {
			continue
		}
		if n != 1 || len(m.datagram(0)) != maxDatagram+1 {
			t.Fatalf("got %d datagrams, the first %d bytes; want 1 of %d", n, len(m.datagram(0)), maxDatagram+1)
		}
		return
	}
	t.Fatal("nothing received")
}

// TestMmsgFamily: an IPv4 socket cannot send to an IPv6 address; a
// dual-stack one sends to IPv4 as v4-mapped.
func TestMmsgFamily(t *testing.T) {
	m := newMmsgIO()
	b := []byte("x")
	if m.queue(b, netip.MustParseAddrPort("[2001:db8::1]:5004"), false) {
		t.Error("an IPv4 socket queued a datagram to an IPv6 address")
	}
	if !m.queue(b, netip.MustParseAddrPort("198.18.0.1:5004"), true) || m.dsts[0].Family != unix.AF_INET6 {
		t.Error("a dual-stack socket did not queue a datagram to IPv4 as IPv6")
	}
}
