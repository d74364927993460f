// Package clitest is what the tests of the z5 and z5d binaries share: a
// test binary that stands in for the command in a child process (on a
// pseudo-terminal when a test needs one), and the checks every cobra
// command tree must pass. Only tests import it.
package clitest

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/spf13/cobra"
)

// Main is a TestMain: with PREFIX_TEST_MAIN=1 in its environment the test
// binary runs main as the command name, with the arguments in
// PREFIX_TEST_ARGS (split at spaces); otherwise it runs the tests.
func Main(m *testing.M, prefix, name string, main func()) {
	if os.Getenv(prefix+"_TEST_MAIN") == "1" {
		os.Args = append([]string{name}, strings.Fields(os.Getenv(prefix+"_TEST_ARGS"))...)
		main()
	}
	os.Exit(m.Run())
}

// OnTTY runs the command Main stands for (under prefix) with args on a
// pseudo-terminal, types input once the terminal shows want, and returns
// everything the terminal showed.
func OnTTY(t *testing.T, prefix, args, want, input string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), prefix+"_TEST_MAIN=1", prefix+"_TEST_ARGS="+args)
	f, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	buf := make([]byte, 4096)
	deadline := time.Now().Add(20 * time.Second)
	typed := false
	for time.Now().Before(deadline) {
		n, err := f.Read(buf)
		out.Write(buf[:n])
		if !typed && strings.Contains(out.String(), want) {
			f.Write([]byte(input))
			typed = true
		}
		if err != nil {
			break // EIO: the child exited
		}
	}
	cmd.Wait()
	return out.String()
}

// CheckTree runs (through run, which returns stdout) --help on every
// command of root, at least min of them: each answers, shows flags only in
// --flag style and no empty Flags: section. Shell completion must come
// from the same tree.
func CheckTree(t *testing.T, root *cobra.Command, min int, run func(args ...string) (string, error)) {
	t.Helper()
	name := root.Name()
	n := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		path := strings.Fields(c.CommandPath())[1:]
		out, err := run(append(path, "--help")...)
		if err != nil {
			t.Errorf("%s %v --help: %v", name, path, err)
		}
		if strings.Contains(out, "Flags:\n\n") {
			t.Errorf("%s %v --help shows an empty Flags:", name, path)
		}
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "-") && !strings.HasPrefix(f[0], "--") && !strings.HasSuffix(f[0], ",") {
				t.Errorf("%s %v --help shows a single-dash flag: %q", name, path, line)
			}
		}
		n++
	}
	walk(root)
	if n < min {
		t.Errorf("only %d commands walked, want at least %d", n, min)
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		out, err := run("completion", sh)
		if err != nil || !strings.Contains(out, name) {
			t.Errorf("completion %s: %v, %d bytes", sh, err, len(out))
		}
	}
}
