package main

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBencode(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]any
		err  bool
	}{
		{in: "d6:result4:ponge", want: map[string]any{"result": "pong"}},
		{in: "d3:sdp5:v=0\r\n6:result2:oke", want: map[string]any{"result": "ok", "sdp": "v=0\r\n"}},
		{in: "d1:ai-42e1:bl1:xi1eee", want: map[string]any{"a": int64(-42), "b": []any{"x", int64(1)}}},
		{in: "d6:result5:error12:error-reason7:unknowne", want: map[string]any{"result": "error", "error-reason": "unknown"}},
		{in: "", err: true},
		{in: "d6:result", err: true},
		{in: "d99:ae", err: true},
		{in: "di1e1:ae", err: true},    // integer key
		{in: "l1:ae", err: true},       // not a dictionary
		{in: "d1:a1:be1:x", err: true}, // trailing bytes
		{in: "d1:ai1x2ee", err: true},  // bad integer
		{in: "d1:a-1:xe", err: true},   // negative length
		{in: "d1:ad1:ad1:ad1:a1:beeee", want: map[string]any{"a": map[string]any{"a": map[string]any{"a": map[string]any{"a": "b"}}}}},
	}
	for _, tt := range tests {
		got, err := decodeDict([]byte(tt.in))
		if tt.err {
			if err == nil || !errors.Is(err, errBencode) {
				t.Errorf("decodeDict(%q) = %v, %v; want a bencode error", tt.in, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("decodeDict(%q): %v", tt.in, err)
			continue
		}
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("decodeDict(%q) (-want +got):\n%s", tt.in, d)
		}
		// What decodes encodes back to the same bytes (keys sorted).
		out, err := bencode(nil, got)
		if err != nil {
			t.Fatalf("bencode(%v): %v", got, err)
		}
		back, err := decodeDict(out)
		if err != nil || !cmp.Equal(back, got) {
			t.Errorf("round trip of %q: %q, %v", tt.in, out, err)
		}
	}
}

func FuzzBdecode(f *testing.F) {
	for _, s := range []string{"d6:result4:ponge", "d1:al1:bi2eee", "d3:sdp0:e", "i1e", "l" + "l" + "e" + "e"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeDict(b)
		if err != nil {
			return
		}
		out, err := bencode(nil, d)
		if err != nil {
			t.Fatalf("decoded %q but cannot encode it: %v", b, err)
		}
		if _, err := decodeDict(out); err != nil {
			t.Fatalf("re-encoding of %q does not decode: %v", b, err)
		}
	})
}
