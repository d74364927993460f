package media

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// memSink records frames in memory.
type memSink struct {
	frames [][]byte
	closed bool
}

func (m *memSink) WriteFrame(p []byte, _ uint32) error {
	m.frames = append(m.frames, append([]byte(nil), p...))
	return nil
}
func (m *memSink) Close() error { m.closed = true; return nil }

func marshalRTCP(t testing.TB, pkts ...rtcp.Packet) []byte {
	t.Helper()
	b, err := rtcp.Marshal(pkts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// videoPair is a Sender feeding a Receiver through memory.
type videoPair struct {
	src  *H264Source
	tx   *Sender
	rx   *Receiver
	sink *memSink
	now  time.Time
}

func newVideoPair(t *testing.T) *videoPair {
	t.Helper()
	src, err := OpenH264File(clipH264)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := NewSender(SenderConfig{Kind: KindVideo, PT: PTH264, ClockRate: ClockH264})
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	rx, err := NewReceiver(ReceiverConfig{Kind: KindVideo, PT: PTH264, ClockRate: ClockH264, LocalSSRC: 0x1234, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	return &videoPair{src: src, tx: tx, rx: rx, sink: sink, now: time.Unix(1_800_000_000, 0)}
}

// send moves n frames, dropping the packets whose index in the whole run
// drop selects.
func (v *videoPair) send(t *testing.T, n int, drop func(frame, pkt int) bool) {
	t.Helper()
	for i := range n {
		f, d, _ := v.src.Next()
		pkts, err := v.tx.Packetize(f, d, v.now)
		if err != nil {
			t.Fatal(err)
		}
		for j, p := range pkts {
			if drop != nil && drop(i, j) {
				continue
			}
			if err := v.rx.HandleRTP(p, v.now); err != nil {
				t.Fatal(err)
			}
		}
		v.now = v.now.Add(d)
	}
}

func TestReceiverLossAsksForKeyframe(t *testing.T) {
	v := newVideoPair(t)
	v.send(t, 10, nil)
	if fb := v.rx.Feedback(v.now); fb != nil {
		t.Fatalf("feedback without loss: %v", fb)
	}
	// Lose the first packet of frame 10: it and what follows cannot be
	// decoded until the keyframe at 30.
	v.send(t, 5, func(frame, pkt int) bool { return frame == 0 && pkt == 0 })
	fb := v.rx.Feedback(v.now)
	want := []rtcp.Packet{&rtcp.PictureLossIndication{SenderSSRC: 0x1234, MediaSSRC: v.tx.SSRC()}}
	if diff := cmp.Diff(want, fb); diff != "" {
		t.Fatalf("feedback after loss (-want +got):\n%s", diff)
	}
	if fb := v.rx.Feedback(v.now.Add(100 * time.Millisecond)); fb != nil {
		t.Error("PLI repeated within 500 ms")
	}
	// The sender honours it: the next frame sent is the keyframe.
	v.src.RequestKeyframe()
	v.send(t, 3, nil)
	st := v.rx.Stats(v.now)
	// Frames 0-9 recorded, 10-14 dropped, then keyframe 30, 31, 32.
	if st.Frames != 13 || st.FramesDropped != 5 || st.PLISent != 1 || st.Lost != 1 {
		t.Errorf("stats: frames %d dropped %d pli %d lost %d", st.Frames, st.FramesDropped, st.PLISent, st.Lost)
	}
	if !bytes.Equal(v.sink.frames[10], v.src.frames[30]) {
		t.Error("recording does not resume at the keyframe")
	}
	if fb := v.rx.Feedback(v.now.Add(time.Second)); fb != nil {
		t.Error("PLI still due after the keyframe")
	}
}

func TestReceiverStartsAtKeyframe(t *testing.T) {
	v := newVideoPair(t)
	for range 3 {
		v.src.Next() // join mid-GOP
	}
	v.send(t, 2, nil)
	if fb := v.rx.Feedback(v.now); len(fb) != 1 {
		t.Fatalf("no PLI when the stream starts without a keyframe: %v", fb)
	}
	if len(v.sink.frames) != 0 {
		t.Error("recorded frames before the first keyframe")
	}
}

func TestReceiverKeyframeRequests(t *testing.T) {
	var asked int
	rx, err := NewReceiver(ReceiverConfig{
		Kind: KindVideo, PT: PTH264, ClockRate: ClockH264, LocalSSRC: 0xaaaa,
		OnKeyframeRequest: func() { asked++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	step := func(pkts ...rtcp.Packet) int {
		t.Helper()
		before := asked
		now = now.Add(time.Second)
		if err := rx.HandleRTCP(marshalRTCP(t, pkts...), now); err != nil {
			t.Fatal(err)
		}
		return asked - before
	}
	rr := &rtcp.ReceiverReport{SSRC: 0xbbbb}
	tests := []struct {
		name string
		pkts []rtcp.Packet
		want int
	}{
		{"PLI for us", []rtcp.Packet{rr, &rtcp.PictureLossIndication{SenderSSRC: 0xbbbb, MediaSSRC: 0xaaaa}}, 1},
		{"PLI for another SSRC", []rtcp.Packet{rr, &rtcp.PictureLossIndication{SenderSSRC: 0xbbbb, MediaSSRC: 0xcccc}}, 0},
		{"FIR seq 1", []rtcp.Packet{rr, &rtcp.FullIntraRequest{SenderSSRC: 0xbbbb, FIR: []rtcp.FIREntry{{SSRC: 0xaaaa, SequenceNumber: 1}}}}, 1},
		{"FIR seq 1 retransmitted", []rtcp.Packet{rr, &rtcp.FullIntraRequest{SenderSSRC: 0xbbbb, FIR: []rtcp.FIREntry{{SSRC: 0xaaaa, SequenceNumber: 1}}}}, 0},
		{"FIR seq 2", []rtcp.Packet{rr, &rtcp.FullIntraRequest{SenderSSRC: 0xbbbb, FIR: []rtcp.FIREntry{{SSRC: 0xaaaa, SequenceNumber: 2}}}}, 1},
		{"plain report", []rtcp.Packet{rr}, 0},
	}
	for _, tt := range tests {
		if got := step(tt.pkts...); got != tt.want {
			t.Errorf("%s: %d keyframe requests, want %d", tt.name, got, tt.want)
		}
	}
	// A flood within 200 ms is served once.
	before := asked
	for i := range 5 {
		pli := &rtcp.PictureLossIndication{MediaSSRC: 0xaaaa}
		if err := rx.HandleRTCP(marshalRTCP(t, rr, pli), now.Add(time.Duration(i)*10*time.Millisecond+time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if asked-before != 1 {
		t.Errorf("PLI flood served %d times, want 1", asked-before)
	}
}

func TestReceiverRTCPReports(t *testing.T) {
	// Two ends: A sends audio to B, B reports back, A measures RTT.
	now := time.Unix(1_800_000_000, 0)
	txA, _ := NewSender(SenderConfig{Kind: KindAudio, PT: 0, ClockRate: 8000})
	rxA, _ := NewReceiver(ReceiverConfig{Kind: KindAudio, PT: 0, ClockRate: 8000, LocalSSRC: txA.SSRC()})
	rxB, _ := NewReceiver(ReceiverConfig{Kind: KindAudio, PT: 0, ClockRate: 8000, LocalSSRC: 0xb})
	frame := bytes.Repeat([]byte{0xff}, 160)
	for i := range 50 {
		pkts, _ := txA.Packetize(frame, 20*time.Millisecond, now)
		if i%10 != 3 { // lose 5 of 50
			if err := rxB.HandleRTP(pkts[0], now.Add(15*time.Millisecond)); err != nil {
				t.Fatal(err)
			}
		}
		now = now.Add(20 * time.Millisecond)
	}
	sr, ok := txA.SenderReport(now)
	if !ok || sr.PacketCount != 50 || sr.OctetCount != 50*160 {
		t.Fatalf("SR %+v", sr)
	}
	// One-way delay 15 ms each way, B holds the SR 100 ms: RTT 30 ms.
	if err := rxB.HandleRTCP(marshalRTCP(t, &sr), now.Add(15*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	block, ok := rxB.ReceptionReport(now.Add(115 * time.Millisecond))
	if !ok {
		t.Fatal("no report block")
	}
	// Packets 3, 13, 23, 33 and 43 of 50 lost: 5, and 5/50 = 25/256.
	if block.SSRC != txA.SSRC() || block.TotalLost != 5 || block.FractionLost != 25 ||
		block.LastSenderReport != ntpMiddle(sr.NTPTime) || block.Delay != 6553 {
		t.Errorf("block %+v", block)
	}
	if err := rxA.HandleRTCP(marshalRTCP(t, &rtcp.ReceiverReport{SSRC: 0xb, Reports: []rtcp.ReceptionReport{block}}), now.Add(130*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	st := rxA.Stats(now)
	if st.RTT < 29*time.Millisecond || st.RTT > 31*time.Millisecond {
		t.Errorf("RTT %v, want 30ms", st.RTT)
	}
	if st.RemoteLost != 5 || st.RemoteFractionLost < 0.09 || st.RemoteFractionLost > 0.11 {
		t.Errorf("remote loss %d, fraction %.3f; want 5, 0.1", st.RemoteLost, st.RemoteFractionLost)
	}
	if bs := rxB.Stats(now); bs.Lost != 5 || bs.Packets != 45 || bs.JitterMs != 0 {
		t.Errorf("B stats: lost %d packets %d jitter %.2f", bs.Lost, bs.Packets, bs.JitterMs)
	}
}

func TestReceiverSSRCChange(t *testing.T) {
	sink := &memSink{}
	rx, _ := NewReceiver(ReceiverConfig{Kind: KindAudio, PT: 0, ClockRate: 8000, Sink: sink})
	now := time.Unix(1_800_000_000, 0)
	send := func(ssrc uint32, seq uint16) {
		p := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: ssrc, SequenceNumber: seq}, Payload: []byte{1}}
		b, _ := p.Marshal()
		if err := rx.HandleRTP(b, now); err != nil {
			t.Fatal(err)
		}
	}
	send(1, 100)
	send(1, 101)
	send(2, 500) // stray
	send(1, 102)
	if st := rx.Stats(now); st.RemoteSSRC != 1 || st.Packets != 3 || st.ForeignSSRC != 1 {
		t.Fatalf("after a stray packet: %+v", st)
	}
	send(2, 7)
	send(2, 8) // two in sequence: the peer restarted
	if st := rx.Stats(now); st.RemoteSSRC != 2 || st.Lost != 0 {
		t.Errorf("after restart: ssrc %d lost %d", st.RemoteSSRC, st.Lost)
	}
}

func TestReceiverMalformed(t *testing.T) {
	rx, _ := NewReceiver(ReceiverConfig{Kind: KindVideo, PT: PTH264, ClockRate: ClockH264})
	now := time.Now()
	for _, b := range [][]byte{nil, {0x80}, {0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if err := rx.HandleRTP(b, now); err == nil {
			t.Errorf("HandleRTP(% x) accepted", b)
		}
	}
	if err := rx.HandleRTCP([]byte{0x81, 200, 0, 9}, now); err == nil {
		t.Error("truncated RTCP accepted")
	}
	if st := rx.Stats(now); st.Malformed != 3 || st.BadRTCP != 1 || st.Packets != 0 {
		t.Errorf("stats %+v", st)
	}
}

// FuzzRTCP feeds arbitrary RTCP to a receiver that has a stream going.
func FuzzRTCP(f *testing.F) {
	f.Add(marshalRTCP(f, &rtcp.SenderReport{SSRC: 9, NTPTime: 1 << 40, Reports: []rtcp.ReceptionReport{{SSRC: 0xaaaa, LastSenderReport: 77, Delay: 5}}},
		rtcp.NewCNAMESourceDescription(9, "peer")))
	f.Add(marshalRTCP(f, &rtcp.ReceiverReport{SSRC: 9, Reports: []rtcp.ReceptionReport{{SSRC: 0xaaaa, TotalLost: 0x800000}}},
		&rtcp.PictureLossIndication{MediaSSRC: 0xaaaa}))
	f.Add(marshalRTCP(f, &rtcp.ReceiverReport{SSRC: 9}, &rtcp.FullIntraRequest{FIR: []rtcp.FIREntry{{SSRC: 0xaaaa, SequenceNumber: 3}}},
		&rtcp.Goodbye{Sources: []uint32{9}, Reason: "bye"}))
	f.Add([]byte{0x80, 0xc9, 0x00, 0x01, 0, 0, 0, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		rx, err := NewReceiver(ReceiverConfig{Kind: KindVideo, PT: PTH264, ClockRate: ClockH264, LocalSSRC: 0xaaaa, OnKeyframeRequest: func() {}})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Unix(1_800_000_000, 0)
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: PTH264, SSRC: 9, Marker: true}, Payload: plIDR}
		b, _ := p.Marshal()
		if err := rx.HandleRTP(b, now); err != nil {
			t.Fatal(err)
		}
		_ = rx.HandleRTCP(data, now)
		rx.ReceptionReport(now)
		rx.Feedback(now)
		rx.Stats(now)
	})
}

// TestStreamConfigChecked: a sender and a receiver refuse the same bad
// streams, and take a good one.
func TestStreamConfigChecked(t *testing.T) {
	for _, tc := range []struct {
		name      string
		kind      string
		pt        uint8
		clockRate uint32
		ok        bool
	}{
		{"audio", KindAudio, 0, 8000, true},
		{"video", KindVideo, PTH264, ClockH264, true},
		{"text is not RTP media here", "text", 98, 1000, false},
		{"no clock rate", KindAudio, 0, 0, false},
		{"payload type over 7 bits", KindVideo, 128, ClockH264, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, serr := NewSender(SenderConfig{Kind: tc.kind, PT: tc.pt, ClockRate: tc.clockRate})
			_, rerr := NewReceiver(ReceiverConfig{Kind: tc.kind, PT: tc.pt, ClockRate: tc.clockRate})
			for who, err := range map[string]error{"sender": serr, "receiver": rerr} {
				if tc.ok && err != nil || !tc.ok && !errors.Is(err, ErrBadConfig) {
					t.Errorf("%s: %v, want ok %t", who, err, tc.ok)
				} else if !tc.ok && !strings.Contains(err.Error(), who) {
					t.Errorf("%s error does not say which: %v", who, err)
				}
			}
		})
	}
}
