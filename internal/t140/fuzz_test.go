package t140

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// FuzzDecode feeds the decoder what the network may send: it must not
// panic, and a RED payload it parses must write back to the same blocks.
func FuzzDecode(f *testing.F) {
	enc := testEncoder(f, 2)
	enc.Write([]byte("hi\u2028"))
	pkt, _ := enc.Packet(enc.cfg.Start)
	f.Add(pkt)
	f.Add([]byte{0x80, 100, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 0x80 | 98, 0, 0, 2, 98, 'a', 'b', 'c'})
	f.Add([]byte{0x80, 98, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 0xff, 0xfe})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		d, err := NewDecoder(DecoderConfig{T140PT: 98, RedPT: 100, Red: true})
		if err != nil {
			t.Fatal(err)
		}
		var ed Editor
		for range 2 { // the second time it is a duplicate or a new stream
			text, _ := d.Decode(nil, pkt)
			ops, _ := ed.Feed(text, enc.cfg.Start)
			for _, op := range ops {
				if op.Kind == Insert && (op.Rune < 0x20 || (op.Rune >= 0x7f && op.Rune < 0xa0)) {
					t.Fatalf("control %U passed to the screen", op.Rune)
				}
				if op.Kind == Insert && !utf8.ValidRune(op.Rune) {
					t.Fatalf("invalid rune %U", op.Rune)
				}
			}
		}
		if len(pkt) < 12 {
			return
		}
		blocks, err := ParseRED(pkt[12:])
		if err != nil {
			return
		}
		back, err := AppendRED(nil, blocks)
		if err != nil {
			return // a parsed block may be longer than a sender may write
		}
		again, err := ParseRED(back)
		if err != nil || len(again) != len(blocks) {
			t.Fatalf("re-parse of % x: %v", back, err)
		}
		for i := range again {
			if again[i].PT != blocks[i].PT || again[i].TSOffset != blocks[i].TSOffset || !bytes.Equal(again[i].Data, blocks[i].Data) {
				t.Fatalf("block %d changed: %+v then %+v", i, blocks[i], again[i])
			}
		}
	})
}
