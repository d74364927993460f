package rtpprobe

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var key = []byte("0123456789abcdef0123456789abcdef")

// unhex reads a hex dump with spaces and newlines.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// request7 is request seq 7 sent at 1.5 s after the epoch, under key: the
// captured bytes pin the layout and the HMAC.
const request7 = `
5a355052 01 01 0000
00000007
0000000059682f00
0000000000000000
`

func TestMarshalLayout(t *testing.T) {
	buf := make([]byte, Size)
	n, err := Packet{Kind: KindRequest, Seq: 7, Sent: 1_500_000_000}.MarshalTo(buf, key)
	if err != nil || n != Size {
		t.Fatalf("MarshalTo = %d, %v", n, err)
	}
	if d := cmp.Diff(unhex(t, request7), buf[:HeaderSize]); d != "" {
		t.Errorf("header bytes (-want +got):\n%s", d)
	}
	if bytes.Equal(buf[HeaderSize:], make([]byte, MACSize)) {
		t.Error("MAC is all zero")
	}
}

func TestParse(t *testing.T) {
	good := func(size int) []byte {
		b, err := Request(7, time.Unix(0, 1_500_000_000), size, key)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	mutate := func(b []byte, i int, v byte) []byte {
		b = append([]byte(nil), b...)
		b[i] = v
		return b
	}
	reply := make([]byte, Size)
	if _, err := (Packet{Kind: KindReply, Seq: 7, Sent: 1, Received: 2}).MarshalTo(reply, key); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		key  []byte
		want Kind
		err  error
	}{
		{"request", good(Size), key, KindRequest, nil},
		{"padded request", good(172), key, KindRequest, nil},
		{"largest request", good(MaxSize), key, KindRequest, nil},
		{"reply", reply, key, KindReply, nil},
		{"empty", nil, key, KindRequest, ErrShort},
		{"one short", good(Size)[:Size-1], key, KindRequest, ErrShort},
		{"too long", append(good(MaxSize), 0), key, KindRequest, ErrLong},
		{"padded reply", append(append([]byte(nil), reply...), 0), key, KindReply, ErrLong},
		{"magic", mutate(good(Size), 0, 'X'), key, KindRequest, ErrMagic},
		{"version 2", mutate(good(Size), 4, 2), key, KindRequest, ErrVersion},
		{"reply as request", reply, key, KindRequest, ErrKind},
		{"request as reply", good(Size), key, KindReply, ErrKind},
		{"reserved bits", mutate(good(Size), 6, 1), key, KindRequest, ErrKind},
		{"seq changed", mutate(good(Size), 11, 8), key, KindRequest, ErrMAC},
		{"mac changed", mutate(good(Size), Size-1, 0), key, KindRequest, ErrMAC},
		{"other key", good(Size), []byte("another key of 32 bytes.........."), KindRequest, ErrMAC},
		{"short key", good(Size), key[:MinKeySize-1], KindRequest, ErrKey},
		{"padding not authenticated", mutate(good(172), 100, 0xff), key, KindRequest, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(tc.b, tc.key, tc.want)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Parse = %+v, %v; want %v", p, err, tc.err)
			}
			if err == nil && (p.Seq != 7 || p.Kind != tc.want) {
				t.Errorf("Parse = %+v", p)
			}
		})
	}
}

func TestReply(t *testing.T) {
	now := time.Unix(100, 42)
	for _, size := range []int{Size, 172, MaxSize} {
		req, err := Request(9, time.Unix(99, 0), size, key)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]byte, Size)
		n, err := Reply(req, key, now, out)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if n > len(req) {
			t.Errorf("size %d: reply of %d bytes is larger than the request", size, n)
		}
		p, err := Parse(out[:n], key, KindReply)
		if err != nil {
			t.Fatalf("parse reply: %v", err)
		}
		want := Packet{Kind: KindReply, Seq: 9, Sent: time.Unix(99, 0).UnixNano(), Received: now.UnixNano()}
		if p != want {
			t.Errorf("reply = %+v, want %+v", p, want)
		}
		// A reply bounced back at the relay is not answered again.
		if _, err := Reply(out[:n], key, now, make([]byte, Size)); !errors.Is(err, ErrKind) && !errors.Is(err, ErrShort) {
			t.Errorf("reply of a reply: err = %v", err)
		}
	}
	if _, err := Reply([]byte("hello"), key, now, make([]byte, Size)); err == nil {
		t.Error("garbage answered")
	}
}

// FuzzProbePacket: Reply never panics, never answers more bytes than it
// got, and answers only what verifies under the key; Parse agrees.
func FuzzProbePacket(f *testing.F) {
	req, _ := Request(1, time.Unix(1, 0), Size, key)
	padded, _ := Request(2, time.Unix(2, 0), 172, key)
	rep := make([]byte, Size)
	Reply(req, key, time.Unix(3, 0), rep)
	for _, b := range [][]byte{req, padded, rep, nil, []byte("Z5PR"), make([]byte, Size), []byte("Z5PR\x01\x01\x00\x00garbage-garbage-garbage-garbage-garbage")} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out := make([]byte, Size)
		n, err := Reply(b, key, time.Unix(5, 0), out)
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with %d bytes", err, n)
			}
			return
		}
		if n > len(b) {
			t.Fatalf("reply %d bytes for a %d-byte request", n, len(b))
		}
		if _, err := Parse(b, key, KindRequest); err != nil {
			t.Fatalf("Reply accepted what Parse rejects: %v", err)
		}
		p, err := Parse(out[:n], key, KindReply)
		if err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		if p.Received != time.Unix(5, 0).UnixNano() {
			t.Fatalf("reply receive time %d", p.Received)
		}
	})
}
