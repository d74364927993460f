package sipserver

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"

	"github.com/z5vrs/z5/internal/acd"
	"github.com/z5vrs/z5/internal/media"
	"github.com/z5vrs/z5/internal/testenv"
)

// TestRelaySlateWhileQueued: a caller offering plain RTP H.264 video who
// waits in the queue gets 183 Session Progress whose description is the
// relay's (its caller-facing video port, sendonly) and, from that port,
// the "please wait" slate: H.264 that starts with a keyframe and decodes
// (ffprobe, when installed), all before any interpreter answers. Once an
// interpreter answers, the slate stops. The MCS sends the slate to the
// address the caller's SDP names, so the test runs in a network namespace
// with only loopback (root; skipped otherwise).
func TestRelaySlateWhileQueued(t *testing.T) {
	if os.Getenv("Z5_SLATE_NETNS") != "1" {
		reexecInNetns(t, "TestRelaySlateWhileQueued", "Z5_SLATE_NETNS", "")
		return
	}
	e := relayEnv(t, nil, nil)
	st := station(t, e, "9001", acd.NotReady)
	a := caller(t, e, "5552340001", "alice")
	video, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer video.Close()
	body := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"+
		"m=video %d RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n",
		a.rtp.LocalAddr().(*net.UDPAddr).Port, video.LocalAddr().(*net.UDPAddr).Port)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sess, err := a.dcli.WriteInvite(ctx, a.inviteRequest(hearing, []byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	early := make(chan *sipmsg.Response, 4)
	done := make(chan callResult, 1)
	go func() {
		err := sess.WaitAnswer(ctx, sipgo.AnswerOptions{Username: a.user, Password: a.pass,
			OnResponse: func(res *sipmsg.Response) error {
				if res.StatusCode == 183 {
					early <- res
				}
				return nil
			}})
		if err == nil {
			err = sess.Ack(context.Background())
		}
		done <- callResult{sess, err}
	}()

	res := wait(t, early, "183 Session Progress")
	sdp := string(res.Body())
	relayIP := netip.MustParseAddr("127.0.0.1") // the test relay's address
	var relayPort int
	for _, line := range strings.Split(sdp, "\r\n") {
		if strings.HasPrefix(line, "m=video ") {
			fmt.Sscanf(line, "m=video %d", &relayPort)
		}
	}
	if relayPort == 0 || !strings.Contains(sdp, "a=sendonly") || !strings.Contains(sdp, "m=audio 0 ") ||
		!strings.Contains(sdp, "c=IN IP4 "+relayIP.String()) {
		t.Fatalf("183 description:\n%s", sdp)
	}
	from := netip.AddrPortFrom(relayIP, uint16(relayPort))
	if !e.inRelay(from) {
		t.Errorf("early video port %v is not the relay's", from)
	}

	var d media.H264Depacketizer
	var frames []media.H264Frame
	buf := make([]byte, 2048)
	for len(frames) < 10 {
		video.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, src, err := video.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("slate: %d frames, then %v", len(frames), err)
		}
		if netip.AddrPortFrom(src.Addr().Unmap(), src.Port()) != from {
			t.Fatalf("early video from %v, want the relay port %v of the 183", src, from)
		}
		var p rtp.Packet
		if err := p.Unmarshal(buf[:n]); err != nil || p.PayloadType != 96 {
			t.Fatalf("early video packet: %v, payload type %d", err, p.PayloadType)
		}
		frames = append(frames, d.Push(&p)...)
	}
	if !frames[0].Keyframe || !bytes.Contains(frames[0].Data, []byte{0, 0, 0, 1, 0x67}) {
		t.Errorf("the slate does not start with SPS and an IDR picture")
	}
	if a := agentState(t, e, "9001"); a.State != acd.NotReady {
		t.Fatalf("interpreter %+v: the slate must come before any answer", a)
	}
	var all []byte
	for _, fr := range frames {
		all = append(all, fr.Data...)
	}
	if out, ok := testenv.ProbeH264(t, all); ok {
		if !strings.HasPrefix(out, fmt.Sprintf("h264,320,240,%d", len(frames))) {
			t.Errorf("ffprobe of the early video: %s", out)
		}
		t.Logf("early video: %d frames decoded by ffprobe (%s)", len(frames), out)
	}

	// The interpreter answers: the slate stops.
	setAgent(t, e, "9001", acd.Ready)
	ic := st.nextCall(5 * time.Second)
	ans := fmt.Sprintf("v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\nm=video 0 RTP/AVP 96\r\n", st.rtp.LocalAddr().(*net.UDPAddr).Port)
	go ic.dlg.RespondSDP([]byte(ans))
	if r := wait(t, done, "the interpreter's answer"); r.err != nil {
		t.Fatal(r.err)
	}
	ic.finish()
	// Whatever was in flight is read; then a second passes with nothing
	// (the slate sends five frames a second while it runs).
	for i := 0; ; i++ {
		video.SetReadDeadline(time.Now().Add(time.Second))
		if _, _, err := video.ReadFromUDPAddrPort(buf); err != nil {
			break
		}
		if i > 50 {
			t.Fatalf("slate still sent after the answer")
		}
	}
}
