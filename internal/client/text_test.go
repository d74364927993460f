package client

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/media"
	"github.com/z5vrs/z5/internal/testenv"
)

// TestTextStreams runs two text streams against each other over loopback
// UDP: what one side types (with a CR LF, a DEL and an escape sequence)
// shows on the other as T.140 edits it, and both transcripts hold it.
func TestTextStreams(t *testing.T) {
	conn := func() *net.UDPConn {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := conn(), conn()
	params := func(to *net.UDPConn) *media.TextParams {
		return &media.TextParams{RedPT: media.PTRed, StreamParams: media.StreamParams{Kind: media.KindText, PT: media.PTT140,
			ClockRate: media.ClockText, Remote: to.LocalAddr().(*net.UDPAddr).AddrPort(), Send: true, Recv: true}}
	}
	typed := make(chan []byte)
	var screen testenv.SyncBuffer // the test and the receiver both touch it
	dirA, dirB := t.TempDir(), t.TempDir()
	sa, err := startText(t.Context(), a, 11, params(b), MediaOptions{RecordDir: dirA, Text: &TextOptions{Typed: typed}}, nil, "call 1 with b")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := startText(t.Context(), b, 22, params(a), MediaOptions{RecordDir: dirB, Text: &TextOptions{Out: &screen}}, nil, "call 1 with a")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"hello\r", "\nwor", "mx\x7fld", "\x1b[2J!"} {
		typed <- []byte(p)
	}
	deadline := time.Now().Add(10 * time.Second)
	want := "hello\nwormx\b \bld!"
	for screen.String() != want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	a.Close()
	b.Close()
	sa.stop()
	sb.stop()
	if got := screen.String(); got != want {
		t.Fatalf("screen %q, want %q", got, want)
	}
	line := `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`
	for _, tc := range []struct{ dir, want string }{
		{dirA, `^` + line + ` # call 1 with b\n` + line + ` > hello\n` + line + ` > wormld!\n$`},
		{dirB, `^` + line + ` # call 1 with a\n` + line + ` < hello\n` + line + ` < wormld!\n$`},
	} {
		b, err := os.ReadFile(filepath.Join(tc.dir, transcriptName))
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(tc.want).Match(b) {
			t.Errorf("transcript:\n%s\nwant %s", b, strings.ReplaceAll(tc.want, `\n`, "\n"))
		}
		if fi, err := os.Stat(filepath.Join(tc.dir, transcriptName)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("transcript mode %v, %v; want 0600", fi.Mode(), err)
		}
	}
}

// TestTextEcho: on a terminal both sides share the screen; each turn
// starts a labelled line that repeats the side's unfinished text, so its
// later erases still land on it.
func TestTextEcho(t *testing.T) {
	var screen testenv.SyncBuffer
	ts := &textStream{out: &screen, echo: true}
	at := time.Now()
	ts.local([]byte("hel"), at)
	ts.remote([]byte("hi"), at, 0)
	ts.local([]byte("lo\b"), at)
	ts.remote([]byte("\r\n"), at, 0)
	ts.local([]byte("\u2028"), at)
	if got, want := screen.String(), "you: hel\nthem: hi\nyou: hello\b \b\nthem: hi\nyou: hell\n"; got != want {
		t.Fatalf("screen %q, want %q", got, want)
	}
}
