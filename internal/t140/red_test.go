package t140

import (
	"bytes"
	"errors"
	"testing"
)

func TestREDRoundTrip(t *testing.T) {
	blocks := []Block{
		{PT: 98, TSOffset: 600, Data: []byte("ab")},
		{PT: 98, TSOffset: 300, Data: nil},
		{PT: 98, Data: []byte("c\u2028")},
	}
	b, err := AppendRED(nil, blocks)
	if err != nil {
		t.Fatal(err)
	}
	// F|PT, offset<<2|len>>8, len; then the primary's one byte header.
	want := []byte{0x80 | 98, 600 >> 6, (600 << 2) & 0xff, 2, 0x80 | 98, 300 >> 6, (300 << 2) & 0xff, 0, 98, 'a', 'b', 'c', 0xe2, 0x80, 0xa8}
	if !bytes.Equal(b, want) {
		t.Fatalf("AppendRED = % x, want % x", b, want)
	}
	got, err := ParseRED(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(blocks) {
		t.Fatalf("%d blocks, want %d", len(got), len(blocks))
	}
	for i := range got {
		if got[i].PT != blocks[i].PT || got[i].TSOffset != blocks[i].TSOffset || !bytes.Equal(got[i].Data, blocks[i].Data) {
			t.Errorf("block %d = %+v, want %+v", i, got[i], blocks[i])
		}
	}
}

func TestParseREDRejects(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"empty", nil},
		{"only a redundant header", []byte{0x80 | 98, 0, 0, 0}},
		{"header cut", []byte{0x80 | 98, 0, 0}},
		{"block past the end", []byte{0x80 | 98, 0, 0, 5, 98, 'a'}},
		{"too many blocks", bytes.Repeat([]byte{0x80 | 98, 0, 0, 0}, maxRedBlocks+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseRED(tc.payload); !errors.Is(err, ErrBadPacket) {
				t.Fatalf("ParseRED(% x) = %v, want ErrBadPacket", tc.payload, err)
			}
		})
	}
}

func TestAppendREDRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		blocks []Block
	}{
		{"no blocks", nil},
		{"payload type over 127", []Block{{PT: 200}}},
		{"offset over 14 bits", []Block{{PT: 98, TSOffset: 1 << 14}, {PT: 98}}},
		{"block over 10 bits", []Block{{PT: 98, Data: make([]byte, 1024)}, {PT: 98}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := AppendRED(nil, tc.blocks); !errors.Is(err, ErrBadConfig) {
				t.Fatalf("AppendRED = %v, want ErrBadConfig", err)
			}
		})
	}
}
