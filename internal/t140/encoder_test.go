package t140

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"
)

var t0 = time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)

func testEncoder(tb testing.TB, gens int) *Encoder {
	tb.Helper()
	e, err := NewEncoder(EncoderConfig{T140PT: 98, RedPT: 100, Generations: gens, Interval: Interval,
		SSRC: 0x5a5a, Seq: 65534, TS: 1000, Start: t0})
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// sent is what one packet says, RED blocks oldest first.
type sent struct {
	marker bool
	seq    uint16
	ts     uint32
	blocks []string // redundant data then primary
	offs   []uint16
}

func parse(t *testing.T, pkt []byte) sent {
	t.Helper()
	var p rtp.Packet
	if err := p.Unmarshal(pkt); err != nil {
		t.Fatal(err)
	}
	s := sent{marker: p.Marker, seq: p.SequenceNumber, ts: p.Timestamp}
	if p.PayloadType == 98 {
		s.blocks = []string{string(p.Payload)}
		return s
	}
	if p.PayloadType != 100 {
		t.Fatalf("payload type %d", p.PayloadType)
	}
	bl, err := ParseRED(p.Payload)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bl {
		if b.PT != 98 {
			t.Fatalf("block payload type %d", b.PT)
		}
		s.blocks = append(s.blocks, string(b.Data))
		s.offs = append(s.offs, b.TSOffset)
	}
	return s
}

// TestEncoderSchedule walks the RFC 4103 sender rules step by step: one
// packet per 300 ms interval at most, each block repeated in the next two
// packets, nothing sent once all is repeated, the marker bit on the first
// packet after idle, timestamps in ms, sequence numbers wrapping.
func TestEncoderSchedule(t *testing.T) {
	e := testEncoder(t, 2)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	type step struct {
		at    int    // ms after t0
		write string // typed before the packet
		want  *sent  // nil: no packet due
	}
	steps := []step{
		{at: 0, want: nil}, // idle: nothing typed, nothing sent
		{at: 10, write: "H", want: &sent{marker: true, seq: 65534, ts: 1010, blocks: []string{"", "", "H"}, offs: []uint16{0, 0, 0}}},
		{at: 100, write: "el", want: nil}, // within the interval: buffered
		{at: 310, want: &sent{seq: 65535, ts: 1310, blocks: []string{"", "H", "el"}, offs: []uint16{0, 300, 0}}},
		{at: 610, write: "l\u00f6", want: &sent{seq: 0, ts: 1610, blocks: []string{"H", "el", "lö"}, offs: []uint16{600, 300, 0}}},
		{at: 910, want: &sent{seq: 1, ts: 1910, blocks: []string{"el", "lö", ""}, offs: []uint16{600, 300, 0}}},
		{at: 1210, want: &sent{seq: 2, ts: 2210, blocks: []string{"lö", "", ""}, offs: []uint16{600, 300, 0}}},
		{at: 1510, want: nil}, // all repeated twice: idle
		{at: 5000, write: "\u2028", want: &sent{marker: true, seq: 3, ts: 6000, blocks: []string{"", "", "\u2028"}, offs: []uint16{4090, 3790, 0}}},
		{at: 5001, write: "\xe2\x80", want: nil}, // half a rune waits
		{at: 5300, write: "\xa8", want: &sent{seq: 4, ts: 6300, blocks: []string{"", "\u2028", "\u2028"}, offs: []uint16{4090, 300, 0}}},
	}
	for _, s := range steps {
		if s.write != "" {
			e.Write([]byte(s.write))
		}
		pkt, ok := e.Packet(ms(s.at))
		if s.want == nil {
			if ok {
				t.Fatalf("at %d ms: packet %+v, want none", s.at, parse(t, pkt))
			}
			continue
		}
		if !ok {
			t.Fatalf("at %d ms: no packet, want %+v", s.at, *s.want)
		}
		got := parse(t, pkt)
		if got.marker != s.want.marker || got.seq != s.want.seq || got.ts != s.want.ts ||
			!slices.Equal(got.blocks, s.want.blocks) || !slices.Equal(got.offs, s.want.offs) {
			t.Fatalf("at %d ms: %+v, want %+v", s.at, got, *s.want)
		}
	}
	e.Packet(ms(5600))
	e.Packet(ms(5900))
	if _, busy := e.Due(); busy {
		t.Fatal("busy after every block went three times")
	}
	// A redundant block older than 14 bits of ms can carry goes empty.
	slow, err := NewEncoder(EncoderConfig{T140PT: 98, RedPT: 100, Generations: 2, Interval: 20 * time.Second, Start: t0})
	if err != nil {
		t.Fatal(err)
	}
	slow.Write([]byte("a"))
	slow.Packet(t0)
	pkt, ok := slow.Packet(t0.Add(20 * time.Second))
	if !ok {
		t.Fatal("no packet after a long interval")
	}
	if got := parse(t, pkt); !slices.Equal(got.blocks, []string{"", "", ""}) {
		t.Fatalf("after a long interval: %+v", got)
	}
}

func TestEncoderPlainAndLimits(t *testing.T) {
	e := testEncoder(t, 0)
	e.Write([]byte("ok\xff"))
	pkt, ok := e.Packet(t0)
	if !ok {
		t.Fatal("no packet")
	}
	if got := parse(t, pkt); !slices.Equal(got.blocks, []string{"ok\uFFFD"}) || !got.marker {
		t.Fatalf("plain t140: %+v", got)
	}
	if _, ok := e.Packet(t0.Add(Interval)); ok {
		t.Fatal("plain t140 with nothing typed sent a packet")
	}
	// A paste longer than one block goes over several intervals.
	e.Write(bytes.Repeat([]byte("é"), maxPrimary))
	var total int
	for i := 1; ; i++ {
		pkt, ok := e.Packet(t0.Add(time.Duration(i) * Interval))
		if !ok {
			break
		}
		got := parse(t, pkt)
		if len(got.blocks[0]) > maxPrimary {
			t.Fatalf("primary of %d bytes", len(got.blocks[0]))
		}
		total += len(got.blocks[0])
	}
	if total != 2*maxPrimary {
		t.Fatalf("sent %d bytes, want %d", total, 2*maxPrimary)
	}
	for _, cfg := range []EncoderConfig{
		{T140PT: 98, RedPT: 98, Generations: 2, Interval: Interval},
		{T140PT: 98, RedPT: 100, Generations: 2},
		{T140PT: 128, RedPT: 100, Generations: 2, Interval: Interval},
		{T140PT: 98, RedPT: 100, Generations: -1, Interval: Interval},
	} {
		if _, err := NewEncoder(cfg); err == nil {
			t.Errorf("NewEncoder(%+v) accepted", cfg)
		}
	}
}
