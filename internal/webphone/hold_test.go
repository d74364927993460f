package webphone

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/media"
)

// TestHoldHearingLeg: an interpreter's hearing leg (audio only, plain RTP
// toward the relay, as to the telephone network) is held and taken off
// hold through the tab. A hold asked for before the leg is answered (or
// with no leg) changes nothing; while held, none of the page's audio
// reaches the far end and none of the far end's reaches the page; after,
// both flow again and the far end sees the sequence numbers run on with no
// gap for the pause.
func TestHoldHearingLeg(t *testing.T) {
	g, _ := testGateway(t, config.WebPhone{})
	pc, pageAudio, _ := pageEnd(t)
	toPage := make(chan []byte, 256)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			select {
			case toPage <- p.Payload:
			default:
			}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tb := &tab{g: g, ctx: ctx, cancel: cancel}
	br, answer, err := tb.openBridge(pageOffer(t, pc), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(br.close)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	sipOffer, _, err := br.sipOffer(false)
	if err != nil {
		t.Fatal(err)
	}
	far, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer far.Close()
	sipAnswer, farNeg, err := media.BuildAnswer(sipOffer, netip.MustParseAddr("127.0.0.1"), far.LocalAddr().(*net.UDPAddr).Port, 0)
	if err != nil {
		t.Fatal(err)
	}
	neg, err := media.ParseAnswer(sipAnswer)
	if err != nil {
		t.Fatal(err)
	}
	if err := br.start(neg); err != nil {
		t.Fatal(err)
	}

	// No hearing leg, then one not yet answered: nothing is held.
	tb.hold(true)
	c, ok := tb.newCall(legHearing)
	if !ok {
		t.Fatal("no hearing leg")
	}
	tb.own(c, br)
	tb.hold(true)
	if br.held.Load() {
		t.Fatal("a hearing leg not yet answered was put on hold")
	}
	close(c.answered)

	deadline := time.Now().Add(20 * time.Second)
	seq := 0
	buf := make([]byte, 1500)
	// pageToFar sends the page's packets marked phase until want of that
	// phase reached the far end; seen keeps the forwarded sequence numbers
	// of every phase that arrived.
	seen := map[string][]uint16{}
	pageToFar := func(phase string, want int) {
		t.Helper()
		for len(seen[phase]) < want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d packets from the page reached the far end, want %d", phase, len(seen[phase]), want)
			}
			pageAudio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(seq),
				Timestamp: uint32(seq * 160), SSRC: 1234}, Payload: []byte(phase + " from the page")})
			seq++
			far.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			for {
				n, _, err := far.ReadFromUDPAddrPort(buf)
				if err != nil {
					break
				}
				var p rtp.Packet
				if isRTCP(buf[:n]) || p.Unmarshal(buf[:n]) != nil {
					continue
				}
				ph, _, _ := bytes.Cut(p.Payload, []byte(" "))
				seen[string(ph)] = append(seen[string(ph)], p.SequenceNumber)
			}
		}
	}
	// farToPage sends count of the far end's packets marked phase and
	// returns how many of each phase reached the page.
	farToPage := func(phase string, count int) map[string]int {
		t.Helper()
		got := map[string]int{}
		for i := range count {
			raw, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: farNeg.Audio.PT, SequenceNumber: uint16(5000 + seq + i),
				Timestamp: uint32(i * 160), SSRC: 4321}, Payload: []byte(phase + " from far")}).Marshal()
			far.WriteToUDPAddrPort(raw, farNeg.Audio.Remote)
			for wait := time.After(20 * time.Millisecond); ; {
				select {
				case p := <-toPage:
					ph, _, _ := bytes.Cut(p, []byte(" "))
					got[string(ph)]++
					continue
				case <-wait:
				}
				break
			}
		}
		return got
	}

	pageToFar("before", 20)
	if got := farToPage("before", 20); got["before"] == 0 {
		t.Fatal("nothing from the far end reached the page before the hold")
	}
	tb.hold(true)
	if !br.held.Load() {
		t.Fatal("the answered hearing leg is not on hold")
	}
	heldFromFar := farToPage("held", 20)["held"]
	// The page's packets while held: sent after the hold, so none may
	// arrive. The hold ends only once the bridge has dropped every held
	// packet both ways; "after" packets are what each side gets again.
	for range 20 {
		pageAudio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(seq),
			Timestamp: uint32(seq * 160), SSRC: 1234}, Payload: []byte("held from the page")})
		seq++
	}
	for br.audio.heldToRelay.Load() < 20 || br.audio.heldToPage.Load() < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("the bridge held %d of the page's 20 packets and %d of the far end's 20", br.audio.heldToRelay.Load(), br.audio.heldToPage.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	tb.hold(false)
	pageToFar("after", 20)
	afterFromFar := farToPage("after", 20)["after"]
	t.Logf("held: %d of the page's packets and %d of the far end's crossed; after: %d from the page and %d from the far end",
		len(seen["held"]), heldFromFar, len(seen["after"]), afterFromFar)
	if len(seen["held"]) != 0 || heldFromFar != 0 {
		t.Errorf("while held %d packets reached the far end and %d the page, want none", len(seen["held"]), heldFromFar)
	}
	if afterFromFar == 0 {
		t.Error("nothing from the far end reached the page after the hold")
	}
	before := seen["before"]
	if last, first := before[len(before)-1], seen["after"][0]; first != last+1 {
		t.Errorf("the far end saw sequence %d before the hold and %d after, want no gap", last, first)
	}
}
