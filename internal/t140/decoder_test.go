package t140

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// packets sends each text as one packet, 300 ms apart, and then the
// redundancy tail, from a stream whose sequence numbers wrap.
func packets(t *testing.T, gens int, texts ...string) [][]byte {
	t.Helper()
	e := testEncoder(t, gens)
	var out [][]byte
	at := t0
	for _, s := range texts {
		e.Write([]byte(s))
		pkt, ok := e.Packet(at)
		if !ok {
			t.Fatalf("no packet for %q", s)
		}
		out = append(out, pkt)
		at = at.Add(Interval)
	}
	for {
		pkt, ok := e.Packet(at)
		if !ok {
			return out
		}
		out = append(out, pkt)
		at = at.Add(Interval)
	}
}

func TestDecoderRecovery(t *testing.T) {
	texts := []string{"a", "b", "c", "d", "e", "f"} // then 2 tail packets: 8 in all
	for _, tc := range []struct {
		name    string
		gens    int
		deliver []int // indexes into the packets, in arrival order
		want    string
		lost    int
	}{
		{"all", 2, []int{0, 1, 2, 3, 4, 5, 6, 7}, "abcdef", 0},
		{"one lost", 2, []int{0, 1, 3, 4, 5, 6, 7}, "abcdef", 0},
		{"two lost in a row", 2, []int{0, 3, 4, 5, 6, 7}, "abcdef", 0},
		{"three lost in a row", 2, []int{0, 4, 5, 6, 7}, "a\uFFFDcdef", 1},
		{"first ones lost", 2, []int{2, 3, 4, 5, 6, 7}, "abcdef", 0},
		{"last text lost, tail recovers it", 2, []int{0, 1, 2, 3, 4, 6}, "abcdef", 0},
		{"duplicate", 2, []int{0, 1, 1, 2, 3, 4, 5, 6, 7}, "abcdef", 0},
		{"late after recovery", 2, []int{0, 2, 1, 3, 4, 5, 6, 7}, "abcdef", 0},
		{"plain t140, one lost", 0, []int{0, 1, 3, 4, 5}, "ab\uFFFDdef", 1},
		{"one generation, two lost", 1, []int{0, 3, 4, 5, 6}, "a\uFFFDcdef", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkts := packets(t, tc.gens, texts...)
			d, err := NewDecoder(DecoderConfig{T140PT: 98, RedPT: 100, Red: tc.gens > 0})
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			for _, i := range tc.deliver {
				if got, err = d.Decode(got, pkts[i]); err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
			}
			if string(got) != tc.want || d.Lost != tc.lost {
				t.Fatalf("got %q (lost %d), want %q (lost %d)", got, d.Lost, tc.want, tc.lost)
			}
		})
	}
}

func TestDecoderRejects(t *testing.T) {
	good := packets(t, 2, "a")[0]
	plain := packets(t, 0, "a")[0]
	for _, tc := range []struct {
		name string
		cfg  DecoderConfig
		pkt  []byte
	}{
		{"short", DecoderConfig{T140PT: 98, RedPT: 100, Red: true}, good[:5]},
		{"red not negotiated", DecoderConfig{T140PT: 98}, good},
		{"other payload type", DecoderConfig{T140PT: 99, RedPT: 101, Red: true}, plain},
		{"red cut", DecoderConfig{T140PT: 98, RedPT: 100, Red: true}, good[:14]},
		{"rtp version 1", DecoderConfig{T140PT: 98}, append([]byte{0x40}, plain[1:]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := NewDecoder(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if out, err := d.Decode(nil, tc.pkt); !errors.Is(err, ErrBadPacket) || len(out) != 0 {
				t.Fatalf("Decode = %q, %v; want ErrBadPacket", out, err)
			}
		})
	}
	if _, err := NewDecoder(DecoderConfig{T140PT: 98, RedPT: 98, Red: true}); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("shared payload type: %v", err)
	}
}

func TestEditor(t *testing.T) {
	at := t0.Add(time.Second)
	for _, tc := range []struct {
		name  string
		in    []string // fed one after another
		lines []string
		rest  string
		ops   string // I=insert E=erase N=new line
	}{
		{"plain", []string{"hi"}, nil, "hi", "II"},
		{"backspace", []string{"hex\bllo"}, nil, "hello", "IIIEIII"},
		{"backspace at line start does nothing", []string{"\ba"}, nil, "a", "I"},
		{"backspace does not reopen a line", []string{"a\u2028\bb"}, []string{"a"}, "b", "INI"},
		{"line separator", []string{"one\u2028two"}, []string{"one"}, "two", "IIINIII"},
		{"CR LF is one new line", []string{"a\r\nb"}, []string{"a"}, "b", "INI"},
		{"CR LF split over packets", []string{"a\r", "\nb"}, []string{"a"}, "b", "INI"},
		{"LF alone", []string{"a\n\nb"}, []string{"a", ""}, "b", "INNI"},
		{"BOM keepalive", []string{"\uFEFFa\uFEFF"}, nil, "a", "I"},
		{"loss marker shown", []string{"a\uFFFDb"}, nil, "a\uFFFDb", "III"},
		{"controls dropped", []string{"a\x07\x1b[31mb\x1b]c\u009b2Jd"}, nil, "abcd", "IIII"},
		{"invalid UTF-8", []string{"a\xffb"}, nil, "a\uFFFDb", "III"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e Editor
			var lines []string
			var ops []byte
			for _, s := range tc.in {
				o, l := e.Feed([]byte(s), at)
				for _, x := range l {
					if !x.At.Equal(at) {
						t.Errorf("line %q at %v", x.Text, x.At)
					}
					lines = append(lines, x.Text)
				}
				for _, x := range o {
					ops = append(ops, "IEN"[x.Kind])
				}
			}
			rest, _ := e.Flush()
			if !slices.Equal(lines, tc.lines) || rest.Text != tc.rest || string(ops) != tc.ops {
				t.Fatalf("lines %q rest %q ops %s; want %q %q %s", lines, rest.Text, ops, tc.lines, tc.rest, tc.ops)
			}
		})
	}
}

func TestTyped(t *testing.T) {
	var ty Typed
	var out []byte
	for _, in := range []string{"ab\x7fc\r", "\nd\n\te\x08", "\xc3\xa9", "\x1b[", "1;5D\x1bOAf\x1b", "x"} {
		out = ty.Convert(out, []byte(in))
	}
	if want := "ab\bc\u2028d\u2028e\béf"; string(out) != want {
		t.Fatalf("Convert = %q, want %q", out, want)
	}
}
