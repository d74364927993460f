package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/media"
)

// TestSRTPZ5ToZ5 places a Z5-to-Z5 call through the MCS with the stack's
// TLS on, so both clients key SRTP by SDES. A capture of the relay's ports
// holds plenty of RTP, none of it carrying a byte run of the H.264 clip or
// the PCMU tone; both sides still record decodable media; z5 call --json,
// the listener's summary and the relay's call record say every stream,
// real-time text included, and the call were encrypted.
func TestSRTPZ5ToZ5(t *testing.T) {
	tshark := needTool(t, "tshark")
	if os.Geteuid() != 0 {
		t.Skip("capturing on the loopback interface needs root")
	}
	clip := plainClip(t)

	s := startStack(t)
	s.provision(t)
	alice := s.login(t, "alice", alicePass, aliceWork)
	bob := s.login(t, "bob", bobPass, "")

	pcap := filepath.Join(t.TempDir(), "relay.pcap")
	// The relay's range (devstack: ports.rtp) on this stack's address only:
	// other stacks may run on other loopback addresses at the same time.
	capture := startPath(t, tshark, []string{"-i", "lo", "-F", "pcap", "-w", pcap,
		"-f", "udp and host " + s.ip + " and portrange 20000-20999"}, func(out string) { t.Logf("tshark:\n%s", tailOf(out)) })
	waitFor(t, capture, "Capturing on", 20*time.Second)

	recBob, recAlice := t.TempDir(), t.TempDir()
	lis := startZ5(t, bob, "listen", "--auto-answer", "--record", recBob, "--max-calls", "1", "--json")
	waitRegistered(t, s, 1)
	out := mustZ5(t, alice, "", "call", bobNumber, "--duration", "4s", "--record", recAlice, "--json")
	waitExit(t, lis, 15*time.Second)
	// Let the last datagrams reach the capture file, then stop it.
	time.Sleep(300 * time.Millisecond)
	capture.stop(syscall.SIGINT)

	// Both clients' views: the caller's --json and the listener's line.
	var callerSum, calleeSum encSummary
	if i := strings.Index(out, "{"); i < 0 || json.Unmarshal([]byte(out[i:]), &callerSum) != nil {
		t.Fatalf("z5 call --json: no summary\n%s", out)
	}
	var last string
	for line := range strings.Lines(lis.Output()) {
		if strings.HasPrefix(line, "{") {
			last = line
		}
	}
	if err := json.Unmarshal([]byte(last), &calleeSum); err != nil {
		t.Fatalf("z5 listen --json: %v\n%s", err, lis.Output())
	}
	for _, sum := range []struct {
		who string
		encSummary
	}{{"caller", callerSum}, {"callee", calleeSum}} {
		text := sum.Negotiated.Text
		t.Logf("%s: call encrypted %t, audio %t, video %t, text negotiated %t encrypted %t", sum.who, sum.Encrypted,
			sum.Negotiated.Audio.Encrypted, sum.Negotiated.Video.Encrypted, text != nil, text != nil && text.Encrypted)
		if len(sum.Streams) != 2 || !sum.Negotiated.Audio.Encrypted || !sum.Negotiated.Video.Encrypted {
			t.Errorf("%s summary: %+v, want audio and video encrypted", sum.who, sum.encSummary)
		}
		if text == nil || !text.Encrypted || !sum.Encrypted {
			t.Errorf("%s summary: call encrypted %t, text %+v: want text keyed too and the call encrypted", sum.who, sum.Encrypted, text)
		}
		for _, st := range sum.Streams {
			if !st.Encrypted || st.PacketsReceived < 50 || st.SRTPRejected != 0 {
				t.Errorf("%s %s: encrypted %t, %d packets received, %d rejected by SRTP", sum.who, st.Kind, st.Encrypted, st.PacketsReceived, st.SRTPRejected)
			}
		}
	}
	if strings.Contains(out, "inline:") || strings.Contains(lis.Output(), "inline:") {
		t.Error("SDES keys in the client output")
	}

	// The wire: every RTP datagram on the relay's ports, both legs.
	pkts := readPcapUDP(t, pcap)
	var rtpCount, plain int
	kinds := map[string]int{}
	for _, p := range pkts {
		payload, pt, ok := rtpPayload(p)
		if !ok {
			continue
		}
		rtpCount++
		switch pt {
		case media.PTPCMU:
			kinds["audio"]++
		case media.PTH264:
			kinds["video"]++
		}
		if clip.plaintext(payload) {
			plain++
			if plain <= 3 {
				t.Errorf("plain media on the relay's ports: PT %d payload %x", pt, payload[:min(32, len(payload))])
			}
		}
	}
	t.Logf("capture: %d UDP datagrams on the relay's ports, %d RTP (%v), %d carrying the clip in the clear", len(pkts), rtpCount, kinds, plain)
	// 4 s of 30 fps video and 50 pps audio, both ways, on both legs.
	if kinds["audio"] < 400 || kinds["video"] < 400 || plain != 0 {
		t.Errorf("capture: RTP %v, %d plaintext: want >= 400 audio and video packets, none in the clear", kinds, plain)
	}

	// Both recordings decode.
	if _, err := os.Stat(filepath.Join(recAlice, "call.mkv")); err != nil {
		t.Fatal(err)
	}
	bobRec, _ := filepath.Glob(filepath.Join(recBob, "call1-*.mkv"))
	if len(bobRec) != 1 {
		t.Fatalf("bob's recordings: %v", bobRec)
	}
	needTool(t, "ffprobe")
	for _, path := range []string{filepath.Join(recAlice, "call.mkv"), bobRec[0]} {
		rec := probeMKV(t, path)
		t.Logf("%s: %.2f s, %v, decoded frames %v", filepath.Base(path), rec.duration, rec.codecs, rec.frames)
		if rec.codecs["video"] != "h264" || rec.frames["video"] < 90 || rec.codecs["audio"] != "pcm_s16le" || rec.frames["audio"] < 150 {
			t.Errorf("%s: %v %v, want >= 90 H.264 frames and 3 s of audio", path, rec.codecs, rec.frames)
		}
	}

	// The relay's record: every leg of every stream encrypted.
	var recs []struct {
		From, To string
		Streams  []struct {
			Leg, Media string
			Packets    uint64
			Encrypted  bool
		}
	}
	for deadline := time.Now().Add(15 * time.Second); ; {
		raw := s.admin(t, "", "--json", "calls", "--number", bobNumber, "--limit", "1")
		if err := json.Unmarshal([]byte(raw), &recs); err != nil {
			t.Fatalf("z5d admin calls: %v\n%s", err, raw)
		}
		if len(recs) == 1 && len(recs[0].Streams) >= 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(recs) != 1 || len(recs[0].Streams) < 4 {
		t.Fatalf("call record: %+v", recs)
	}
	av := 0
	for _, st := range recs[0].Streams {
		switch st.Media {
		case "audio", "video":
			av++
			if !st.Encrypted || st.Packets < 50 {
				t.Errorf("call record %s %s: encrypted %t, %d packets", st.Leg, st.Media, st.Encrypted, st.Packets)
			}
		case "text":
			if !st.Encrypted {
				t.Errorf("call record %s text: not encrypted", st.Leg)
			}
		}
	}
	if av != 4 {
		t.Errorf("call record: %d audio and video legs, want 4", av)
	}
	t.Logf("call record: %+v", recs[0].Streams)
}

// encSummary is what the SRTP test reads of a call summary.
type encSummary struct {
	Encrypted  bool `json:"encrypted"`
	Negotiated struct {
		Audio, Video encStream
		Text         *encStream
	} `json:"negotiated"`
	Streams []struct {
		Kind            string `json:"kind"`
		Encrypted       bool   `json:"encrypted"`
		PacketsReceived uint64 `json:"packets_received"`
		SRTPRejected    uint64 `json:"srtp_rejected"`
	} `json:"streams"`
}

type encStream struct {
	Encrypted bool `json:"encrypted"`
}

// clipBytes is the built-in clip as sent: the H.264 file's bytes and the
// tone's μ-law samples.
type clipBytes struct{ h264, ulaw []byte }

func plainClip(t *testing.T) clipBytes {
	t.Helper()
	var c clipBytes
	var err error
	if c.h264, err = os.ReadFile("../internal/media/testdata/clip.h264"); err != nil {
		t.Fatal(err)
	}
	if c.ulaw, err = os.ReadFile("../internal/media/testdata/clip.wav"); err != nil {
		t.Fatal(err)
	}
	// The detector must see the clip in the clear: packetize it as the
	// client does and require it to flag nearly every packet.
	flagged, total := 0, 0
	v, err := media.DefaultVideo()
	if err != nil {
		t.Fatal(err)
	}
	a, err := media.DefaultAudio()
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range []struct {
		kind  string
		pt    uint8
		clock uint32
		s     media.Source
	}{{media.KindVideo, media.PTH264, media.ClockH264, v}, {media.KindAudio, media.PTPCMU, media.ClockPCMU, a}} {
		snd, err := media.NewSender(media.SenderConfig{Kind: src.kind, PT: src.pt, ClockRate: src.clock})
		if err != nil {
			t.Fatal(err)
		}
		for range 150 {
			frame, dur, err := src.s.Next()
			if err != nil {
				t.Fatal(err)
			}
			pkts, err := snd.Packetize(frame, dur, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pkts {
				payload, _, ok := rtpPayload(p)
				if !ok {
					t.Fatalf("own RTP not parsed: %x", p[:12])
				}
				total++
				if c.plaintext(payload) {
					flagged++
				}
			}
		}
	}
	if flagged*100 < total*95 {
		t.Fatalf("plaintext detector flags %d of %d plain clip packets, want >= 95%%", flagged, total)
	}
	return c
}

// plaintext reports whether an RTP payload carries a run of the clip: 16
// bytes after the first two (past an FU-A's indicator and header). A
// ciphertext run matching by chance is about len(clip)/2^128 likely.
func (c clipBytes) plaintext(p []byte) bool {
	if len(p) < 18 {
		return false
	}
	w := p[2:18]
	return bytes.Contains(c.h264, w) || bytes.Contains(c.ulaw, w)
}

// rtpPayload returns the payload and type of an RTP datagram (not RTCP),
// past CSRCs and header extension; with SRTP the auth tag is included.
func rtpPayload(b []byte) ([]byte, uint8, bool) {
	if len(b) < 12 || b[0]>>6 != 2 || (b[1] >= 192 && b[1] <= 223) {
		return nil, 0, false
	}
	n := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 {
		if len(b) < n+4 {
			return nil, 0, false
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(b[n+2:]))
	}
	if len(b) < n {
		return nil, 0, false
	}
	return b[n:], b[1] & 0x7f, true
}

// readPcapUDP reads a classic pcap file (tshark -F pcap) and returns the
// UDP payloads of its IPv4 packets.
func readPcapUDP(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 {
		t.Fatalf("%s: %d bytes, no pcap header", path, len(b))
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		t.Fatalf("%s: not a pcap file (magic %x)", path, b[:4])
	}
	var link int // bytes before the IP header
	switch lt := bo.Uint32(b[20:]); lt {
	case 1: // Ethernet
		link = 14
	case 113: // Linux cooked
		link = 16
	case 276: // Linux cooked v2
		link = 20
	case 101: // raw IP
		link = 0
	default:
		t.Fatalf("%s: link type %d", path, lt)
	}
	var out [][]byte
	for off := 24; off+16 <= len(b); {
		n := int(bo.Uint32(b[off+8:]))
		off += 16
		if off+n > len(b) {
			break
		}
		frame := b[off : off+n]
		off += n
		if len(frame) < link+20 {
			continue
		}
		ip := frame[link:]
		if ip[0]>>4 != 4 || ip[9] != 17 {
			continue
		}
		ihl := 4 * int(ip[0]&0x0f)
		if len(ip) < ihl+8 {
			continue
		}
		out = append(out, ip[ihl+8:])
	}
	return out
}
