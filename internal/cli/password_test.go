package cli

import (
	"bufio"
	"strings"
	"testing"
)

// TestPasswordLine: --password-stdin takes the first line, up to 4096
// bytes, and leaves the next line to be read.
func TestPasswordLine(t *testing.T) {
	for _, tc := range []struct {
		name, in, want, next, err string
	}{
		{"one line", "secret\n", "secret", "", ""},
		{"no newline", "secret", "secret", "", ""},
		{"crlf", "secret\r\n2\n", "secret", "2\n", ""},
		{"next line kept", "secret\n2025550102\n", "secret", "2025550102\n", ""},
		{"at the limit", strings.Repeat("x", maxPassword) + "\n", strings.Repeat("x", maxPassword), "", ""},
		{"over the limit", strings.Repeat("x", maxPassword+1) + "\n", "", "", "longer than 4096 bytes"},
		{"no end", strings.Repeat("x", 1<<20), "", "", "longer than 4096 bytes"},
		{"empty", "\n", "", "", "empty password"},
		{"nothing", "", "", "", "empty password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := bufio.NewReader(strings.NewReader(tc.in))
			got, err := PasswordLine(r)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("PasswordLine = %q, %v; want an error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("PasswordLine = %q, %v; want %q", got, err, tc.want)
			}
			if rest, _ := r.ReadString(0); rest != tc.next {
				t.Errorf("left %q, want %q", rest, tc.next)
			}
		})
	}
}

// TestPasswordFromStdinLimit: the admin commands' --password-stdin goes
// through the same line reader.
func TestPasswordFromStdinLimit(t *testing.T) {
	if _, err := Password(strings.NewReader(strings.Repeat("x", maxPassword+1)), nil, true, ""); err == nil {
		t.Fatal("a 4097-byte password was accepted")
	}
	if pw, err := Password(strings.NewReader("pw\n"), nil, true, ""); err != nil || pw != "pw" {
		t.Fatalf("Password = %q, %v", pw, err)
	}
}
