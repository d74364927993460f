package clip

import (
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"a longer value", 8, "a longer..."},
		{"", 0, ""},
		{"x", 0, "..."},
		// "é" is two bytes: a cut inside it backs off to its start.
		{"caféteria", 4, "caf..."},
		{"caféteria", 5, "café..."},
		{"日本語", 4, "日..."},
	} {
		got := String(tc.in, tc.n)
		if got != tc.want {
			t.Errorf("String(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("String(%q, %d) = %q: not valid UTF-8", tc.in, tc.n, got)
		}
	}
}
