package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/z5vrs/z5/internal/media"
	"github.com/z5vrs/z5/internal/testenv"
)

// TestSlateEarlyMedia: a waiting caller's offer is answered for early
// media with the relay's caller-facing video port alone (sendonly, the
// caller's H.264 payload type, everything else refused), and the slate
// arrives from that port at the caller's announced address as H.264 that
// starts with a keyframe (SPS, PPS, IDR) and decodes (ffprobe, when
// installed). An SRTP-only video offer gets no slate.
func TestSlateEarlyMedia(t *testing.T) {
	r, _ := newTestRelay(t, relayOpts{})
	caller := newPeer(t, "127.0.0.1")
	c := r.NewCall(t.Name(), nil)
	defer c.Close()
	offer := sdpText(fmt.Sprintf(`v=0
		o=- 1 1 IN IP4 127.0.0.1
		s=-
		c=IN IP4 127.0.0.1
		t=0 0
		m=audio %d RTP/AVP 0
		a=rtpmap:0 PCMU/8000
		m=video %d RTP/AVP 97 96
		a=rtpmap:97 VP8/90000
		a=rtpmap:96 H264/90000
		a=fmtp:96 profile-level-id=42e01f;packetization-mode=1`, caller.port()+2, caller.port()))
	if _, err := c.RewriteSDP(SideA, offer, netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	ans, pt, err := c.EarlyAnswer(SideA, offer)
	if err != nil {
		t.Fatal(err)
	}
	port := int(c.streams[1].pairs[SideA].port)
	for _, want := range []string{"m=audio 0 RTP/AVP 0", fmt.Sprintf("m=video %d RTP/AVP 96", port), "a=sendonly",
		"a=fmtp:96 profile-level-id=42e01f;packetization-mode=1", "c=IN IP4 127.0.0.1"} {
		if !strings.Contains(string(ans), want) {
			t.Errorf("early answer lacks %q:\n%s", want, ans)
		}
	}
	if pt != 96 || strings.Contains(string(ans), "VP8") {
		t.Errorf("payload type %d, answer:\n%s", pt, ans)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		n, err := c.SendSlate(ctx, SideA, pt)
		if err != nil {
			t.Error(err)
		}
		done <- n
	}()
	var d media.H264Depacketizer
	var frames []media.H264Frame
	relayPort := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	for len(frames) < 12 {
		b, from, ok := caller.recv(5 * time.Second)
		if !ok {
			t.Fatalf("slate: %d frames, then nothing", len(frames))
		}
		if from != relayPort {
			t.Fatalf("slate packet from %v, want the caller-facing port %v", from, relayPort)
		}
		var p rtp.Packet
		if err := p.Unmarshal(b); err != nil || p.PayloadType != 96 {
			t.Fatalf("slate packet: %v, payload type %d", err, p.PayloadType)
		}
		frames = append(frames, d.Push(&p)...)
	}
	cancel()
	n := <-done
	if !frames[0].Keyframe || !bytes.Contains(frames[0].Data, []byte{0, 0, 0, 1, 0x67}) {
		t.Errorf("the slate does not start with SPS and an IDR picture")
	}
	t.Logf("slate: %d packets sent, %d frames received, first %d bytes", n, len(frames), len(frames[0].Data))
	var all []byte
	for _, fr := range frames {
		all = append(all, fr.Data...)
	}
	if out, ok := testenv.ProbeH264(t, all); ok && !strings.HasPrefix(out, "h264,320,240,12") {
		t.Errorf("ffprobe of the received slate: %s", out)
	}

	// An SDP naming another host than the caller's signalling address
	// cannot aim the slate there: nothing is sent until the caller's own
	// packet latches.
	victim := newPeer(t, "127.0.0.2")
	c3 := r.NewCall(t.Name()+"-elsewhere", nil)
	defer c3.Close()
	aimed := sdpText(fmt.Sprintf(`v=0
		o=- 1 1 IN IP4 127.0.0.2
		s=-
		c=IN IP4 127.0.0.2
		t=0 0
		m=video %d RTP/AVP 96
		a=rtpmap:96 H264/90000`, victim.port()))
	if _, err := c3.RewriteSDP(SideA, aimed, netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if _, pt, err = c3.EarlyAnswer(SideA, aimed); err != nil {
		t.Fatal(err)
	}
	ctx3, cancel3 := context.WithTimeout(context.Background(), time.Second)
	defer cancel3()
	if n, err := c3.SendSlate(ctx3, SideA, pt); n != 0 || err != nil {
		t.Errorf("slate to an address not the caller's: %d packets, %v", n, err)
	}
	victim.expectNothing()

	// SRTP video: the relay cannot send a plain slate into it.
	c2 := r.NewCall(t.Name()+"-srtp", nil)
	defer c2.Close()
	srtp := sdpText(fmt.Sprintf(`v=0
		o=- 1 1 IN IP4 127.0.0.1
		s=-
		c=IN IP4 127.0.0.1
		t=0 0
		m=video %d RTP/SAVP 96
		a=rtpmap:96 H264/90000
		a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz`, caller.port()))
	if _, err := c2.RewriteSDP(SideA, srtp, netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c2.EarlyAnswer(SideA, srtp); !errors.Is(err, ErrNoSlate) {
		t.Errorf("SRTP offer: %v, want ErrNoSlate", err)
	}
}
