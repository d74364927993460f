package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// IsTerminal reports whether v is an *os.File open on a terminal.
func IsTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Colour reports whether to colour output to w: only on a terminal, and
// never with NO_COLOR set (https://no-color.org) or TERM=dumb.
func Colour(w io.Writer) bool {
	if _, set := os.LookupEnv("NO_COLOR"); set || os.Getenv("TERM") == "dumb" {
		return false
	}
	return IsTerminal(w)
}

// Paint wraps s in the ANSI colour for a status word when on is true.
func Paint(on bool, status, s string) string {
	if !on {
		return s
	}
	code := ""
	switch status {
	case "ok", "answered", "registered":
		code = "32" // green
	case "blocked", "failed", "error":
		code = "31" // red
	case "degraded", "slow", "needs-login", "skipped":
		code = "33" // yellow
	default:
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// maxPassword bounds a password line read from standard input.
const maxPassword = 4096

// PasswordLine reads the password of --password-stdin: the first line of
// r, at most maxPassword bytes. r stays positioned after that line, so a
// caller can read an answer from the next one.
func PasswordLine(r *bufio.Reader) (string, error) {
	var b []byte
	for {
		c, err := r.ReadByte()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if c == '\n' {
			break
		}
		if len(b) == maxPassword {
			return "", fmt.Errorf("password on standard input longer than %d bytes", maxPassword)
		}
		b = append(b, c)
	}
	pw := strings.TrimRight(string(b), "\r")
	if pw == "" {
		return "", errors.New("empty password on standard input (--password-stdin reads its first line)")
	}
	return pw, nil
}

// Password reads a password: with fromStdin, the first line of in (for
// scripts); else, on a terminal, a "Password:" prompt on out without
// echo; else it is a usage error naming --password-stdin.
func Password(in io.Reader, out io.Writer, fromStdin bool, prompt string) (string, error) {
	if prompt == "" {
		prompt = "Password: "
	}
	var pw string
	switch {
	case fromStdin:
		return PasswordLine(bufio.NewReader(in))
	case IsTerminal(in):
		if restore, err := noEcho(in.(*os.File)); err == nil {
			defer restore()
		}
		fmt.Fprint(out, prompt)
		b, err := term.ReadPassword(int(in.(*os.File).Fd()))
		fmt.Fprintln(out)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		pw = string(b)
		if pw == "" {
			return "", errors.New("empty password")
		}
		return pw, nil
	}
	return "", Usagef("standard input is not a terminal: pass --password-stdin and write the password to standard input (passwords are never taken from the command line)")
}

// LiveLine rewrites one status line in place on a terminal (carriage
// return, clear to end of line) and writes plain lines otherwise.
type LiveLine struct {
	w    io.Writer
	tty  bool
	open bool
}

// NewLiveLine writes to w, in place when w is a terminal.
func NewLiveLine(w io.Writer) *LiveLine { return &LiveLine{w: w, tty: IsTerminal(w)} }

// Set shows s as the current line.
func (l *LiveLine) Set(s string) {
	if !l.tty {
		fmt.Fprintln(l.w, s)
		return
	}
	fmt.Fprint(l.w, "\r\x1b[K"+s)
	l.open = true
}

// Done ends the live line so that what follows starts on a new line.
func (l *LiveLine) Done() {
	if l.open {
		fmt.Fprintln(l.w)
		l.open = false
	}
}
