//go:build linux

package relay

import (
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/z5vrs/z5/internal/kfwd"
)

// newKernelRelay is a relay with the kernel path, which loads only as root
// (CI runs as root); elsewhere the test is skipped, never passed.
func newKernelRelay(t *testing.T, o relayOpts) *Relay {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the kernel path needs root")
	}
	f, err := kfwd.New(loopback, 16)
	switch {
	case errors.Is(err, kfwd.ErrNoKernelSupport):
		t.Skip(err)
	case err != nil:
		t.Fatalf("kernel forwarding does not load as root: %v", err)
	}
	f.Close() // the relay loads its own
	o.kernel = true
	r, _ := newTestRelay(t, o)
	if r.kern == nil {
		t.Fatal("kernel forwarding did not load as root")
	}
	return r
}

// TestKernelPath: once both sides of a stream latched, the kernel forwards
// its RTP in both directions (the relay's sockets see none of it) and the
// call's statistics include what the kernel counted; RTCP still goes
// through the relay; a new description takes the directions back, keeping
// their counts; Close leaves none in the kernel.
func TestKernelPath(t *testing.T) {
	r := newKernelRelay(t, relayOpts{})
	cs := setupCall(t, r, false, nil)
	a, b := cs.a, cs.b
	s := cs.call.streams[0]
	userPackets := func(side Side) uint64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.legs[side].packets
	}
	kernelFlows := func() float64 { return testutil.ToFloat64(r.m.kernelFlows) }

	// The caller latches; the callee has no latch yet: the relay forwards.
	// The callee's first packet latches it, and both ends are known.
	cs.audioBothWays(rtpPacket(0, 1, 160, 7, "a1"), rtpPacket(0, 1, 160, 9, "b1"))
	if got := kernelFlows(); got != 1 {
		t.Fatalf("kernel flows after both latched: %v, want 1 (callee to caller)", got)
	}
	// The caller's next packet moves its direction too.
	p := rtpPacket(0, 2, 320, 7, "a2")
	a.audio.send(cs.relayAAudio, p)
	b.audio.expect(p, cs.relayBAudio)
	if got := kernelFlows(); got != 2 {
		t.Fatalf("kernel flows: %v, want 2", got)
	}

	// Sequence 3-10 without 6: the kernel forwards, one lost.
	before := userPackets(SideA)
	for seq := uint16(3); seq <= 10; seq++ {
		if seq == 6 {
			continue
		}
		p := rtpPacket(0, seq, uint32(seq)*160, 7, "kernel")
		a.audio.send(cs.relayAAudio, p)
		b.audio.expect(p, cs.relayBAudio)
	}
	if n := userPackets(SideA); n != before {
		t.Fatalf("the relay's socket read %d packets the kernel should have forwarded", n-before)
	}
	st := statsOf(cs.call, "caller", "audio")
	if st.Packets != 2+7 || st.Lost != 1 || st.Bytes != 2*14+7*18 {
		t.Fatalf("caller audio %+v, want 9 packets (2 relay, 7 kernel), 1 lost, %d bytes", st, 2*14+7*18)
	}

	// RTCP stays with the relay (it reads the reports).
	rr := receiverReport(7, 9, 0, 0)
	a.audioRTCP.send(plus1(cs.relayAAudio), rr)
	b.audioRTCP.expect(rr, plus1(cs.relayBAudio))
	if st := statsOf(cs.call, "caller", "audio"); st.RTCP != 1 {
		t.Fatalf("RTCP through the relay: %d", st.RTCP)
	}

	// A re-INVITE takes both directions back; the counts stay.
	if _, err := cs.call.RewriteSDP(SideA, a.sdp(2), loopback); err != nil {
		t.Fatal(err)
	}
	if got := kernelFlows(); got != 0 {
		t.Fatalf("kernel flows after a new description: %v, want 0", got)
	}
	if st := statsOf(cs.call, "caller", "audio"); st.Packets != 2+7+1 || st.Lost != 1 {
		t.Fatalf("after taking back: %+v, want 10 packets, 1 lost", st)
	}
	p = rtpPacket(0, 11, 11*160, 7, "relay again")
	a.audio.send(cs.relayAAudio, p)
	b.audio.expect(p, cs.relayBAudio)
	if n := userPackets(SideA); n != before+2 {
		t.Fatalf("after a new description the relay read %d, want %d", n, before+2)
	}

	cs.call.Close()
	if got := kernelFlows(); got != 0 {
		t.Fatalf("kernel flows after Close: %v", got)
	}
	// The caller's 7 went through the kernel; every other packet (the
	// first of each direction, RTCP) through the relay.
	if got := testutil.ToFloat64(r.m.kernelPackets); got != 7 {
		t.Fatalf("kernel packets %v, want 7", got)
	}
}

// TestKernelPathKeepsCallAlive: media the kernel forwards counts as media
// for the media timeout.
func TestKernelPathKeepsCallAlive(t *testing.T) {
	r := newKernelRelay(t, relayOpts{timeout: time.Second, serve: true})
	var fired atomic.Int32
	cs := setupCall(t, r, false, func() { fired.Add(1) })
	cs.audioBothWays(rtpPacket(0, 1, 160, 7, "a"), rtpPacket(0, 1, 160, 9, "b"))
	for seq := uint16(2); seq < 40; seq++ { // 1.9 s of kernel-forwarded media
		p := rtpPacket(0, seq, uint32(seq)*160, 7, "kernel")
		cs.a.audio.send(cs.relayAAudio, p)
		cs.b.audio.expect(p, cs.relayBAudio)
		time.Sleep(50 * time.Millisecond)
	}
	if n := fired.Load(); n != 0 {
		t.Fatalf("media timeout fired %d times while the kernel forwarded media", n)
	}
	waitFor(t, "the media timeout once media stops", func() bool { return fired.Load() == 1 })
}
