package media

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pion/rtp"
)

// packets wraps payloads in RTP packets from seq on, one frame per
// timestamp, marker on the frame's last packet.
func framePackets(seq uint16, ts uint32, payloads [][]byte) []*rtp.Packet {
	var out []*rtp.Packet
	for i, pl := range payloads {
		out = append(out, &rtp.Packet{
			Header:  rtp.Header{Version: 2, PayloadType: PTH264, SequenceNumber: seq + uint16(i), Timestamp: ts, Marker: i == len(payloads)-1},
			Payload: pl,
		})
	}
	return out
}

func TestH264RoundTripClip(t *testing.T) {
	src, err := OpenH264File(clipH264)
	if err != nil {
		t.Fatal(err)
	}
	for _, pz := range []H264Packetizer{{}, {DisableSTAPA: true}, {MTU: 100}, {MTU: 1400}} {
		t.Run(fmt.Sprintf("mtu=%d,nostap=%t", pz.MTU, pz.DisableSTAPA), func(t *testing.T) {
			var d H264Depacketizer
			seq := uint16(65500) // wraps during the clip
			var fuA, stapA, single int
			for i, want := range src.frames {
				payloads := pz.Packetize(want)
				var got []H264Frame
				for _, p := range framePackets(seq, uint32(i*3000), payloads) {
					if len(p.Payload) > pz.mtu() {
						t.Fatalf("frame %d: payload of %d bytes over MTU %d", i, len(p.Payload), pz.mtu())
					}
					switch p.Payload[0] & nalTypeMask {
					case nalFUA:
						fuA++
					case nalSTAPA:
						stapA++
					default:
						single++
					}
					got = append(got, d.Push(p)...)
				}
				seq += uint16(len(payloads))
				if len(got) != 1 {
					t.Fatalf("frame %d: %d frames out, want 1", i, len(got))
				}
				f := got[0]
				if !f.Complete || f.Discontinuity || f.Keyframe != src.keys[i] || f.Timestamp != uint32(i*3000) {
					t.Errorf("frame %d: complete %t discontinuity %t key %t ts %d", i, f.Complete, f.Discontinuity, f.Keyframe, f.Timestamp)
				}
				if !bytes.Equal(f.Data, want) {
					t.Fatalf("frame %d: %d bytes out, %d in, not equal", i, len(f.Data), len(want))
				}
			}
			if fuA == 0 || (stapA == 0) != pz.DisableSTAPA || (single == 0) != (pz.MTU == 100) {
				t.Errorf("packet mix: %d FU-A, %d STAP-A, %d single", fuA, stapA, single)
			}
		})
	}
}

func TestH264PacketizerLayout(t *testing.T) {
	sps := []byte{0x67, 0x42, 0xe0, 0x1f}
	pps := []byte{0x68, 0xce, 0x3c, 0x80}
	idr := append([]byte{0x65, 0x88}, bytes.Repeat([]byte{0xab}, 40)...)
	au := appendAnnexB(appendAnnexB(appendAnnexB(nil, sps), pps), idr)

	got := H264Packetizer{MTU: 20}.Packetize(au)
	want := [][]byte{
		// STAP-A: F=0, NRI=3 (max of the units), type 24; 16-bit sizes.
		{0x78, 0, 4, 0x67, 0x42, 0xe0, 0x1f, 0, 4, 0x68, 0xce, 0x3c, 0x80},
		// FU-A: indicator NRI=3 type 28; header S/E and type 5; the NAL
		// header is not sent, 41 bytes in three near-equal fragments.
		append([]byte{0x7c, 0x85, 0x88}, bytes.Repeat([]byte{0xab}, 13)...),
		append([]byte{0x7c, 0x05}, bytes.Repeat([]byte{0xab}, 14)...),
		append([]byte{0x7c, 0x45}, bytes.Repeat([]byte{0xab}, 13)...),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// Hand-made payloads for the depacketizer tables.
var (
	plSPS  = []byte{0x67, 0x42, 0xe0, 0x1f}
	plPPS  = []byte{0x68, 0xce, 0x3c, 0x80}
	plIDR  = []byte{0x65, 0x88, 0x84, 0x00}
	plP    = []byte{0x41, 0x9a, 0x02, 0x03}
	plStap = []byte{0x78, 0, 4, 0x67, 0x42, 0xe0, 0x1f, 0, 4, 0x68, 0xce, 0x3c, 0x80}
	plFUs  = []byte{0x7c, 0x85, 0x88, 0x84}
	plFUm  = []byte{0x7c, 0x05, 0x10}
	plFUe  = []byte{0x7c, 0x45, 0x20}
	idrFU  = []byte{0x65, 0x88, 0x84, 0x10, 0x20}
	annexB = func(nals ...[]byte) []byte {
		var b []byte
		for _, n := range nals {
			b = appendAnnexB(b, n)
		}
		return b
	}
)

type pkt struct {
	seq    uint16
	ts     uint32
	marker bool
	pl     []byte
}

func TestH264Depacketizer(t *testing.T) {
	tests := []struct {
		name string
		in   []pkt
		want []H264Frame
	}{
		{"STAP-A + FU-A keyframe", []pkt{
			{1, 10, false, plStap}, {2, 10, false, plFUs}, {3, 10, false, plFUm}, {4, 10, true, plFUe},
		}, []H264Frame{{Data: annexB(plSPS, plPPS, idrFU), Timestamp: 10, Keyframe: true, Complete: true}}},
		{"single NAL units, no marker: timestamp change ends the frame", []pkt{
			{1, 10, false, plSPS}, {2, 10, false, plPPS}, {3, 10, false, plIDR}, {4, 20, true, plP},
		}, []H264Frame{
			{Data: annexB(plSPS, plPPS, plIDR), Timestamp: 10, Keyframe: true, Complete: true},
			{Data: annexB(plP), Timestamp: 20, Complete: true},
		}},
		{"lost middle fragment", []pkt{
			{1, 10, false, plFUs}, {3, 10, true, plFUe},
		}, []H264Frame{{Data: nil, Timestamp: 10, Keyframe: false, Complete: false}}},
		{"lost first fragment", []pkt{
			{7, 10, true, plP}, {9, 20, false, plFUm}, {10, 20, true, plFUe},
		}, []H264Frame{
			{Data: annexB(plP), Timestamp: 10, Complete: true},
			{Timestamp: 20, Discontinuity: true},
		}},
		{"lost whole frame: next picture is whole but discontinuous", []pkt{
			{1, 10, true, plP}, {3, 30, true, plP},
		}, []H264Frame{
			{Data: annexB(plP), Timestamp: 10, Complete: true},
			{Data: annexB(plP), Timestamp: 30, Complete: true, Discontinuity: true},
		}},
		{"lost tail of a frame without marker", []pkt{
			{1, 10, false, plP}, {3, 20, true, plSPS},
		}, []H264Frame{
			{Data: annexB(plP), Timestamp: 10, Complete: false},
			{Data: annexB(plSPS), Timestamp: 20, Complete: false, Discontinuity: true}, // no picture
		}},
		{"duplicate and late packets dropped", []pkt{
			{1, 10, false, plSPS}, {1, 10, false, plSPS}, {2, 10, true, plIDR}, {1, 10, true, plIDR},
		}, []H264Frame{{Data: annexB(plSPS, plIDR), Timestamp: 10, Keyframe: true, Complete: true}}},
		{"sequence wrap", []pkt{
			{65535, 10, false, plSPS}, {0, 10, true, plIDR},
		}, []H264Frame{{Data: annexB(plSPS, plIDR), Timestamp: 10, Keyframe: true, Complete: true}}},
		{"FU-A interrupted by a single NAL", []pkt{
			{1, 10, false, plFUs}, {2, 10, true, plP},
		}, []H264Frame{{Data: annexB(plP), Timestamp: 10, Complete: false}}},
		{"malformed STAP-A", []pkt{
			{1, 10, true, []byte{0x78, 0, 9, 0x67}},
		}, []H264Frame{{Timestamp: 10}}},
		{"FU-B is not mode 1", []pkt{
			{1, 10, true, []byte{0x7d, 0x85, 0, 1, 0x88}},
		}, []H264Frame{{Timestamp: 10}}},
		{"start and end bit together", []pkt{
			{1, 10, true, []byte{0x7c, 0xc5, 0x88}},
		}, []H264Frame{{Timestamp: 10}}},
		{"empty payload", []pkt{{1, 10, true, nil}}, []H264Frame{{Timestamp: 10}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d H264Depacketizer
			var got []H264Frame
			for _, p := range tt.in {
				got = append(got, d.Push(&rtp.Packet{
					Header:  rtp.Header{Version: 2, SequenceNumber: p.seq, Timestamp: p.ts, Marker: p.marker},
					Payload: p.pl,
				})...)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestH264DepacketizerMaxFrameSize(t *testing.T) {
	d := H264Depacketizer{MaxFrameSize: 64}
	big := append([]byte{0x41}, bytes.Repeat([]byte{1}, 100)...)
	frames := d.Push(&rtp.Packet{Header: rtp.Header{Marker: true}, Payload: big})
	if len(frames) != 1 || frames[0].Complete || len(frames[0].Data) != 0 {
		t.Errorf("oversized frame: %+v", frames)
	}
}

// FuzzDepacketizeH264 feeds arbitrary payloads; each input is split into
// packets by a length byte, sequence numbers and markers from the data.
func FuzzDepacketizeH264(f *testing.F) {
	src, err := OpenH264File(clipH264)
	if err != nil {
		f.Fatal(err)
	}
	seed := func(payloads [][]byte) []byte {
		var b []byte
		for i, pl := range payloads {
			if len(pl) > 250 {
				pl = pl[:250]
			}
			flags := byte(1)
			if i == len(payloads)-1 {
				flags |= 2
			}
			b = append(b, flags, byte(len(pl)))
			b = append(b, pl...)
		}
		return b
	}
	f.Add(seed(H264Packetizer{MTU: 200}.Packetize(src.frames[1])))
	f.Add(seed(H264Packetizer{MTU: 60}.Packetize(src.frames[30][:400])))
	f.Add(seed([][]byte{plStap, plFUs, plFUm, plFUe}))
	f.Add(seed([][]byte{{0x78, 0xff, 0xff}, {0x7c}, {0x7c, 0x40}, {0x1c, 0x80}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := H264Depacketizer{MaxFrameSize: 1 << 16}
		var seq uint16
		var ts uint32
		for len(data) >= 2 {
			flags, n := data[0], int(data[1])
			data = data[2:]
			n = min(n, len(data))
			pl := data[:n]
			data = data[n:]
			seq += uint16(flags&1) + uint16(flags>>4) // steps, gaps, duplicates
			ts += uint32(flags >> 2 & 1)
			for _, fr := range d.Push(&rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: ts, Marker: flags&2 != 0}, Payload: pl}) {
				if len(fr.Data) > 1<<16 {
					t.Fatalf("frame of %d bytes over the limit", len(fr.Data))
				}
				if fr.Complete {
					// A complete frame is well-formed Annex B with a picture.
					nals := splitAnnexB(fr.Data)
					if len(nals) == 0 {
						t.Fatalf("complete frame without NAL units: % x", fr.Data)
					}
				}
			}
		}
	})
}
