// Command z5 is the Z5 softphone's command line: log in (steps 1-3), keep
// the address book, listen for and place video calls (steps 4-5), and check
// that the network allows every rule the provider needs. main only wires;
// the client core is internal/client.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/client"
)

var version = "dev"

const usage = `z5 — the Z5 video phone

Usage: z5 [--home DIR] COMMAND [flags]

  login --profile provider.json --username U --password-stdin [--number N]
                          steps 1-3: resolve, log in, choose a number, license, address book
  contacts list|add NAME NUMBER|rm ID|NAME|import FILE.vcf|export FILE.vcf
  listen [--auto-answer] [--record DIR]      step 4: stay registered, take calls
  call NUMBER|NAME [--duration D] [--send CLIP] [--record DIR] [--json]
                          steps 4-5: a video call through the MCS relay
  check [--profile provider.json] [--json]   network readiness: which firewall rule is missing
  report STATS.csv [--svg OUT.svg]           a call's quality (from call --stats-file) as a table and a chart
  status                  who is logged in, license, registration target
  logout                  revoke the session and forget the tokens

Global flags:
  --home DIR   client state (default: the user config dir + /z5)
`

func main() {
	// sipgo logs through a package-level logger of its own; its reference
	// counting chatter ("TCP ref went negative") is not for users.
	sipmsg.SetDefaultLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return
	}
	fmt.Fprintf(os.Stderr, "z5: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		os.Exit(2)
	}
	var ee exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	os.Exit(1)
}

type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitError carries a specific exit status (z5 check: 3 when blocked).
type exitError struct {
	error
	code int
}

type env struct {
	home   string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	gfs := flag.NewFlagSet("z5", flag.ContinueOnError)
	gfs.SetOutput(stderr)
	gfs.Usage = func() { fmt.Fprint(stderr, usage) }
	home := gfs.String("home", "", "client state dir")
	if err := gfs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	args = gfs.Args()
	if *home == "" {
		d, err := os.UserConfigDir()
		if err != nil {
			return fmt.Errorf("no --home and no user config dir: %w", err)
		}
		*home = filepath.Join(d, "z5")
	}
	e := &env{home: *home, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usagef("missing command")
	}
	switch args[0] {
	case "login":
		return e.login(ctx, args[1:])
	case "contacts":
		return e.contacts(ctx, args[1:])
	case "listen":
		return e.listen(ctx, args[1:])
	case "call":
		return e.call(ctx, args[1:])
	case "check":
		return e.check(ctx, args[1:])
	case "report":
		return e.report(args[1:])
	case "status":
		return e.status(args[1:])
	case "logout":
		return e.logout(ctx, args[1:])
	case "version", "--version":
		fmt.Fprintf(stdout, "z5 %s\n", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usagef("unknown command %q", args[0])
}

func (e *env) open(onEvent func(client.Event)) (*client.Client, error) {
	return client.Open(client.Options{Home: e.home, OnEvent: onEvent, UserAgent: "Z5/" + version})
}

func (e *env) printEvent(ev client.Event) {
	fmt.Fprintf(e.stdout, "[step %d] %-28s %s (%s)\n", ev.Step, client.StepNames[ev.Step], ev.Message, ev.Elapsed.Round(100_000))
}

func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: z5 %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses flags that may come before or after the positional
// arguments, and returns the positionals.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
