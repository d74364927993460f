package cli

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("x"), 1},
		{Usagef("bad flag"), 2},
		{fmt.Errorf("wrapped: %w", Usagef("bad")), 2},
		{cmdError{UsageError{errors.New("unknown")}, "z5 contacts"}, 2},
		{ExitError{errors.New("blocked"), 3}, 3},
	} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// TestReportPrintsOnce: the error is printed once, a usage error with a
// pointer to the command's help.
func TestReportPrintsOnce(t *testing.T) {
	var b strings.Builder
	code := Report(&b, "z5", cmdError{UsageError{errors.New(`unknown command "x"`)}, "z5 contacts"})
	if code != 2 || b.String() != "z5: unknown command \"x\"\nRun 'z5 contacts --help' for usage.\n" {
		t.Errorf("Report: %d %q", code, b.String())
	}
}

func TestPaint(t *testing.T) {
	if got := Paint(false, "ok", "ok"); got != "ok" {
		t.Errorf("Paint off = %q", got)
	}
	for status, code := range map[string]string{"ok": "32", "blocked": "31", "degraded": "33"} {
		if got := Paint(true, status, status); got != "\x1b["+code+"m"+status+"\x1b[0m" {
			t.Errorf("Paint(%s) = %q", status, got)
		}
	}
	if got := Paint(true, "other", "x"); got != "x" {
		t.Errorf("Paint(other) = %q", got)
	}
}

func TestVersionHasGoVersion(t *testing.T) {
	if v := Version("dev"); !strings.Contains(v, "go1.") {
		t.Errorf("Version = %q", v)
	}
	if v := Version("v1.2.3"); !strings.HasPrefix(v, "v1.2.3 (") {
		t.Errorf("Version(v1.2.3) = %q", v)
	}
}
