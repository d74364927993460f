package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/z5vrs/z5/internal/cli"
	"github.com/z5vrs/z5/internal/media"
	"github.com/z5vrs/z5/internal/testenv/clitest"
)

// TestMain lets a test run this binary's main in a child process (under a
// pseudo-terminal) by setting Z5_TEST_MAIN.
func TestMain(m *testing.M) { clitest.Main(m, "Z5", "z5", main) }

func runZ5(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), err
}

// TestLoginPromptsForPasswordOnTTY: on a terminal, z5 login asks for the
// password without echo and goes on to log in (which fails here at the
// missing profile, after the password was taken).
func TestLoginPromptsForPasswordOnTTY(t *testing.T) {
	home := t.TempDir()
	out := clitest.OnTTY(t, "Z5", "--home "+home+" login --username alice", "Password for alice: ", "tty-typed-secret\r")
	if !strings.Contains(out, "Password for alice: ") {
		t.Fatalf("no prompt: %q", out)
	}
	if strings.Contains(out, "tty-typed-secret") {
		t.Errorf("the password was echoed: %q", out)
	}
	if !strings.Contains(out, "no provider profile") {
		t.Errorf("login did not go on past the password: %q", out)
	}
	// Without a terminal and without --password-stdin: a usage error.
	_, _, err := runZ5(t, "--home", home, "login", "--username", "alice")
	if cli.ExitCode(err) != 2 || !strings.Contains(err.Error(), "--password-stdin") {
		t.Errorf("login without a terminal: %v", err)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	home := t.TempDir()
	for _, args := range [][]string{
		{}, {"bogus"}, {"contacts"}, {"contacts", "bogus"}, {"contacts", "add", "x"},
		{"status", "extra"}, {"logout", "extra"}, {"call"}, {"call", "a", "b"}, {"login", "--bogus"},
		{"check", "--timeout", "2h"}, {"listen", "--raw"}, {"interpret", "extra"},
	} {
		_, _, err := runZ5(t, append([]string{"--home", home}, args...)...)
		if code := cli.ExitCode(err); code != 2 {
			t.Errorf("z5 %q: exit %d (%v), want 2", args, code, err)
		}
	}
	// Global flags anywhere.
	for _, args := range [][]string{{"status", "--home", home, "--json"}, {"--json", "status", "--home", home}} {
		out, _, err := runZ5(t, args...)
		if err != nil || !strings.Contains(out, `"logged_in": false`) {
			t.Errorf("z5 %q: %v %s", args, err, out)
		}
	}
}

func TestHelpEverywhere(t *testing.T) {
	clitest.CheckTree(t, newRoot(nil, io.Discard, io.Discard), 15, func(args ...string) (string, error) {
		out, _, err := runZ5(t, args...)
		return out, err
	})
	out, _, err := runZ5(t, "--version")
	if err != nil || !strings.HasPrefix(out, "z5 ") {
		t.Errorf("--version: %v %q", err, out)
	}
}

// TestCallJSONError: z5 call --json prints a JSON object when the call
// fails (here: not logged in), naming the step and what to do.
func TestCallJSONError(t *testing.T) {
	out, _, err := runZ5(t, "--home", t.TempDir(), "call", "2025550101", "--json")
	if err == nil {
		t.Fatal("call succeeded without a login")
	}
	var got map[string]any
	if jerr := json.Unmarshal([]byte(out), &got); jerr != nil {
		t.Fatalf("not JSON: %v\n%s", jerr, out)
	}
	if got["error"] == nil || got["step"] == nil || got["what_to_do"] == nil || got["target"] != "2025550101" {
		t.Errorf("JSON error object %v", got)
	}
}

func TestProgressInOrder(t *testing.T) {
	for _, tc := range []struct {
		in   []int
		want string
	}{
		{[]int{100, 180}, "100 180 "},
		{[]int{180, 100}, "180 "},
		{[]int{100, 183, 180}, "100 183 "},
		{[]int{100, 180, 180}, "100 180 180 "},
		{[]int{100, 182, 183, 182, 182}, "100 182 183 182 182 "},
	} {
		var b strings.Builder
		p := progressPrinter(func(code int, _ string) { b.WriteString(strconv.Itoa(code) + " ") })
		for _, c := range tc.in {
			p(c, "")
		}
		if b.String() != tc.want {
			t.Errorf("%v: printed %q, want %q", tc.in, b.String(), tc.want)
		}
	}
}

func TestProgressLine(t *testing.T) {
	for _, tc := range []struct {
		code         int
		reason, want string
	}{
		{182, "Queued (position 3)", "  182 Queued (position 3): waiting for an interpreter, number 3 in the queue"},
		{182, "Queued", "  182 Queued"},
		{180, "Ringing", "  180 Ringing"},
	} {
		if got := progressLine(tc.code, tc.reason); got != tc.want {
			t.Errorf("progressLine(%d, %q) = %q, want %q", tc.code, tc.reason, got, tc.want)
		}
	}
}

// TestLiveLine: in place on a terminal, plain lines when piped; colour
// never with NO_COLOR.
func TestLiveLine(t *testing.T) {
	var b bytes.Buffer
	l := cli.NewLiveLine(&b)
	l.Set("one")
	l.Set("two")
	l.Done()
	if b.String() != "one\ntwo\n" {
		t.Errorf("piped: %q", b.String())
	}
	f, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	defer tty.Close()
	l = cli.NewLiveLine(tty)
	l.Set("one")
	l.Set("two")
	l.Done()
	// The terminal may hand the bytes over in several reads.
	var got []byte
	buf := make([]byte, 64)
	f.SetReadDeadline(time.Now().Add(2 * time.Second))
	for !strings.Contains(string(got), "\r\x1b[Kone\r\x1b[Ktwo") {
		n, err := f.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	if s := string(got); !strings.Contains(s, "\r\x1b[Kone\r\x1b[Ktwo") {
		t.Errorf("terminal: %q", s)
	}
	if !cli.Colour(tty) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb" {
		t.Error("no colour on a terminal")
	}
	t.Setenv("NO_COLOR", "1")
	if cli.Colour(tty) {
		t.Error("colour with NO_COLOR set")
	}
}

// TestFirstStatsLine: no stats line says tx 0 kb/s for a stream that is
// sending.
func TestFirstStatsLine(t *testing.T) {
	for _, tc := range []struct {
		st   []media.StreamStats
		want bool
	}{
		{[]media.StreamStats{{Kind: "audio", PacketsSent: 50}, {Kind: "video", PacketsSent: 70}}, false},
		{[]media.StreamStats{{Kind: "audio", PacketsSent: 50, SendKbps: 69}, {Kind: "video", PacketsSent: 70}}, false},
		{[]media.StreamStats{{Kind: "audio", PacketsSent: 50, SendKbps: 69}, {Kind: "video", PacketsSent: 70, SendKbps: 400}}, true},
		{[]media.StreamStats{{Kind: "audio", PacketsSent: 50, SendKbps: 69}, {Kind: "video"}}, true},
		{[]media.StreamStats{{Kind: "audio"}}, false},
	} {
		if got := sending(tc.st); got != tc.want {
			t.Errorf("sending(%+v) = %v, want %v", tc.st, got, tc.want)
		}
	}
}

// keyFeeder presses its keys once the ring has been shown.
type keyFeeder struct {
	bytes.Buffer
	keys chan byte
	feed []byte
}

func (k *keyFeeder) Write(p []byte) (int, error) {
	n, err := k.Buffer.Write(p)
	if strings.Contains(k.String(), "incoming call") {
		for _, b := range k.feed {
			k.keys <- b
		}
		k.feed = nil
	}
	return n, err
}

type fakeRing struct {
	cancelled chan struct{}
	rejected  int
}

func (f *fakeRing) Cancelled() <-chan struct{} { return f.cancelled }
func (f *fakeRing) Reject(code int, _ string) error {
	f.rejected = code
	return nil
}

// TestRingKeys: a answers, d declines with 603, other keys are ignored,
// and a caller who hangs up ends the ring as a missed call.
func TestRingKeys(t *testing.T) {
	for _, tc := range []struct {
		keys     string
		cancel   bool
		answer   bool
		rejected int
		says     string
	}{
		{"a", false, true, 0, "press a to answer, d to decline"},
		{"xA", false, true, 0, "incoming call from bob"},
		{"d", false, false, 603, "declined the call from bob"},
		{"", true, false, 0, "missed call from bob"},
	} {
		keys := make(chan byte, len(tc.keys)+1)
		keys <- 'a' // pressed before the ring: must not answer
		out := &keyFeeder{keys: keys, feed: []byte(tc.keys)}
		e := &env{stdout: out}
		f := &fakeRing{cancelled: make(chan struct{})}
		if tc.cancel {
			close(f.cancelled)
		}
		got := e.ring(t.Context(), f, "bob", keys)
		if got != tc.answer || f.rejected != tc.rejected || !strings.Contains(out.String(), tc.says) {
			t.Errorf("keys %q: answer %v, rejected %d, printed %q; want %v, %d, %q", tc.keys, got, f.rejected, out.String(), tc.answer, tc.rejected, tc.says)
		}
	}
}

// TestKeysOnPTY: on a terminal, single key presses arrive without Enter
// and are not echoed; stop restores the terminal.
func TestKeysOnPTY(t *testing.T) {
	master, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer tty.Close()
	keys, stop, err := cli.Keys(tty)
	if err != nil {
		t.Fatal(err)
	}
	master.Write([]byte("a"))
	select {
	case k := <-keys:
		if k != 'a' {
			t.Errorf("key %q, want a", k)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no key without Enter")
	}
	stop()
	// No echo: the master reads nothing back. Write a marker from the
	// tty side and check it is the first thing the master sees.
	tty.Write([]byte("|"))
	b := make([]byte, 16)
	n, _ := master.Read(b)
	if string(b[:n]) != "|" {
		t.Errorf("the key was echoed: %q", b[:n])
	}
}
