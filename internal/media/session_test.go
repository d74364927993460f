package media

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

func listenLoopback(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func addrOf(c *net.UDPConn) netip.AddrPort {
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// endpoint is one side of a loopback call: audio with RTCP on its own
// port, video with rtcp-mux, both sending the test clip and recording.
type endpoint struct {
	audio, audioRTCP, video *net.UDPConn
	h264                    *H264FileSink
	wav                     string
	sess                    *Session
}

func newEndpoint(t *testing.T, dir string) *endpoint {
	e := &endpoint{audio: listenLoopback(t), audioRTCP: listenLoopback(t), video: listenLoopback(t)}
	var err error
	if e.h264, err = NewH264FileSink(filepath.Join(dir, "video.h264")); err != nil {
		t.Fatal(err)
	}
	e.wav = filepath.Join(dir, "audio.wav")
	return e
}

func (e *endpoint) start(t *testing.T, ctx context.Context, peer *endpoint) {
	t.Helper()
	vsrc, err := OpenH264File(clipH264)
	if err != nil {
		t.Fatal(err)
	}
	asrc, err := OpenPCMU(clipWAV)
	if err != nil {
		t.Fatal(err)
	}
	wav, err := NewWAVSink(e.wav)
	if err != nil {
		t.Fatal(err)
	}
	e.sess, err = NewSession(SessionConfig{
		RTCPInterval: 300 * time.Millisecond,
		Streams: []StreamConfig{
			{
				Kind: KindAudio, PT: PTPCMU, ClockRate: ClockPCMU,
				Local: e.audio, LocalRTCP: e.audioRTCP,
				Remote: addrOf(peer.audio), RemoteRTCP: addrOf(peer.audioRTCP),
				Source: asrc, Sink: wav,
			},
			{
				Kind: KindVideo, PT: PTH264, ClockRate: ClockH264,
				Local: e.video, Remote: addrOf(peer.video),
				Source: vsrc, Sink: e.h264,
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.sess.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.sess.Stop() })
}

func TestSessionLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("2 s of real-time media")
	}
	ctx := t.Context()
	a := newEndpoint(t, t.TempDir())
	b := newEndpoint(t, t.TempDir())
	a.start(t, ctx, b)
	b.start(t, ctx, a)

	time.Sleep(2 * time.Second)

	bSent := b.sess.Stats()
	if err := a.sess.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := a.sess.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	// Let the packets in flight land, then end b.
	time.Sleep(150 * time.Millisecond)
	if err := b.sess.Stop(); err != nil {
		t.Fatal(err)
	}
	aStats, bStats := a.sess.Stats(), b.sess.Stats()
	for i, st := range bStats {
		t.Logf("b %s: %+v", st.Kind, st)
		t.Logf("a %s: %+v", aStats[i].Kind, aStats[i])
	}

	// a -> b, complete: b heard everything a sent.
	av, bv := aStats[1], bStats[1]
	if av.FramesSent < 50 || av.KeyframesSent < 2 {
		t.Errorf("a sent %d video frames, %d keyframes in 2 s", av.FramesSent, av.KeyframesSent)
	}
	if float64(bv.FramesReceived) < 0.95*float64(av.FramesSent) {
		t.Errorf("b recorded %d of %d video frames", bv.FramesReceived, av.FramesSent)
	}
	if bv.PacketsReceived != av.PacketsSent || bv.BytesReceived != av.BytesSent || bv.Lost != 0 || bv.FramesDropped != 0 {
		t.Errorf("video a->b: sent %d/%d B, received %d/%d B, lost %d, dropped %d",
			av.PacketsSent, av.BytesSent, bv.PacketsReceived, bv.BytesReceived, bv.Lost, bv.FramesDropped)
	}
	aa, ba := aStats[0], bStats[0]
	if ba.PacketsReceived != aa.PacketsSent || aa.PacketsSent < 90 {
		t.Errorf("audio a->b: sent %d, received %d", aa.PacketsSent, ba.PacketsReceived)
	}
	// b -> a, up to when a stopped.
	if float64(av.FramesReceived) < 0.9*float64(bSent[1].FramesSent) {
		t.Errorf("a recorded %d of %d video frames", av.FramesReceived, bSent[1].FramesSent)
	}
	for _, st := range append(aStats, bStats...) {
		if st.RemoteReports == 0 || st.RemoteSSRC == 0 || st.Malformed != 0 || st.Foreign != 0 || st.SendErrors != 0 {
			t.Errorf("%s: reports %d, remote ssrc %d, malformed %d, foreign %d, send errors %d",
				st.Kind, st.RemoteReports, st.RemoteSSRC, st.Malformed, st.Foreign, st.SendErrors)
		}
		if st.JitterMs > 50 || st.RTTMs > 100 {
			t.Errorf("%s: jitter %.1f ms, rtt %.1f ms on loopback", st.Kind, st.JitterMs, st.RTTMs)
		}
	}
	if !bStats[0].RemoteBye || !bStats[1].RemoteBye {
		t.Error("b did not see a's BYE")
	}

	// The recordings decode.
	if got := ffprobeFrames(t, filepath.Join(filepath.Dir(b.wav), "video.h264")); got != b.h264.Frames() || float64(got) < 0.95*float64(av.FramesSent) {
		t.Errorf("ffprobe decodes %d frames of b's recording; sink wrote %d, a sent %d", got, b.h264.Frames(), av.FramesSent)
	}
	dur, err := strconv.ParseFloat(ffprobeWAV(t, b.wav), 64)
	if err != nil || dur < 1.8 || dur > 2.6 {
		t.Errorf("b's audio recording lasts %v s (%v), want about 2", dur, err)
	}
	ffprobeWAV(t, a.wav)
}

// TestSessionKeyframeOnPLI plays the peer with a bare socket: it asks for a
// keyframe mid-GOP and expects one at once; a stranger's packets are
// ignored.
func TestSessionKeyframeOnPLI(t *testing.T) {
	local, peer, stranger := listenLoopback(t), listenLoopback(t), listenLoopback(t)
	src, err := OpenH264File(clipH264)
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	sess, err := NewSession(SessionConfig{Streams: []StreamConfig{{
		Kind: KindVideo, PT: PTH264, ClockRate: ClockH264,
		Local: local, Remote: addrOf(peer), Source: src, Sink: sink,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer sess.Stop()

	buf := make([]byte, 2048)
	read := func() *rtp.Packet {
		t.Helper()
		for {
			peer.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := peer.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			if n >= 2 && buf[1] >= 192 && buf[1] <= 223 {
				continue // RTCP
			}
			var p rtp.Packet
			if err := p.Unmarshal(append([]byte(nil), buf[:n]...)); err != nil {
				t.Fatal(err)
			}
			return &p
		}
	}
	// Wait for frame 5 or so: mid-GOP.
	var p *rtp.Packet
	frames := 0
	for frames < 5 {
		if p = read(); p.Marker {
			frames++
		}
	}
	// A stranger's RTP is not taken for the peer's.
	junk := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: PTH264, SSRC: 1, Marker: true}, Payload: plIDR}
	jb, _ := junk.Marshal()
	if _, err := stranger.WriteToUDPAddrPort(jb, addrOf(local)); err != nil {
		t.Fatal(err)
	}
	pli := marshalRTCP(t, &rtcp.ReceiverReport{SSRC: 0x77}, &rtcp.PictureLossIndication{SenderSSRC: 0x77, MediaSSRC: p.SSRC})
	if _, err := peer.WriteToUDPAddrPort(pli, addrOf(local)); err != nil {
		t.Fatal(err)
	}
	// One frame may already be on its way; the next starts with SPS.
	gotKey := false
	for range 3 {
		first := read()
		for !first.Marker {
			if q := read(); q.Marker {
				break
			}
		}
		if startsPicture(first.Payload) && first.Payload[0]&nalTypeMask == nalSTAPA && first.Payload[3]&nalTypeMask == nalSPS {
			gotKey = true
			break
		}
	}
	if !gotKey {
		t.Error("no keyframe within 3 frames of the PLI")
	}
	st := sess.Stats()[0]
	if st.PLIReceived != 1 || st.KeyframesSent < 2 || st.Foreign != 1 || len(sink.frames) != 0 {
		t.Errorf("stats: %+v, recorded %d", st, len(sink.frames))
	}
}

func TestNewSessionErrors(t *testing.T) {
	c := listenLoopback(t)
	remote := netip.MustParseAddrPort("127.0.0.1:9")
	tests := map[string]StreamConfig{
		"no socket":  {Kind: KindAudio, PT: 0, ClockRate: 8000, Remote: remote},
		"no remote":  {Kind: KindAudio, PT: 0, ClockRate: 8000, Local: c},
		"bad kind":   {Kind: "text", PT: 0, ClockRate: 8000, Local: c, Remote: remote},
		"no clock":   {Kind: KindVideo, PT: 96, Local: c, Remote: remote},
		"pt too big": {Kind: KindVideo, PT: 200, ClockRate: 90000, Local: c, Remote: remote},
	}
	for name, sc := range tests {
		if _, err := NewSession(SessionConfig{Streams: []StreamConfig{sc}}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewSession(SessionConfig{}); err == nil {
		t.Error("no streams: accepted")
	}
	s, err := NewSession(SessionConfig{Streams: []StreamConfig{{Kind: KindAudio, ClockRate: 8000, Local: c, Remote: remote}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("Stop before Start: %v", err)
	}
	if err := s.Start(t.Context()); err == nil {
		t.Error("Start after Stop accepted")
	}
}
