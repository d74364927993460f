// Command z5 is the Z5 softphone's command line: log in (steps 1-3), keep
// the address book, listen for and place video calls (steps 4-5), and check
// that the network allows every rule the provider needs. main only wires;
// the client core is internal/client.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/spf13/cobra"

	"github.com/z5vrs/z5/internal/cli"
	"github.com/z5vrs/z5/internal/client"
)

// version is set at build time with -ldflags "-X main.version=..."; else
// the module version and commit come from the build info.
var version = "dev"

const long = `z5 is the Z5 video phone's command line.

Start with "z5 login --profile provider.json --username NAME" (it asks for
the password), then "z5 listen" to take calls or "z5 call NUMBER" to place
one. "z5 check" tells a network admin which firewall rule is missing.`

func main() {
	// sipgo logs through a package-level logger of its own; its reference
	// counting chatter ("TCP ref went negative") is not for users.
	sipmsg.SetDefaultLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.Report(os.Stderr, "z5", err))
}

type usageError = cli.UsageError

func usagef(format string, args ...any) error { return cli.Usagef(format, args...) }

// exitError carries a specific exit status (z5 check: 3 when blocked).
type exitError = cli.ExitError

type env struct {
	home    string
	json    bool // the global --json
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	version string
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return cli.Execute(ctx, newRoot(stdin, stdout, stderr), args, stdin, stdout, stderr)
}

// newRoot builds the command tree: the same tree serves help, completion
// and the man pages.
func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, version: cli.Version(version)}
	root := cli.NewRoot("z5", "the Z5 video phone", long, e.version)
	pf := root.PersistentFlags()
	pf.StringVar(&e.home, "home", "", "client state dir (default: the user config dir + /z5)")
	pf.BoolVar(&e.json, "json", false, "machine-readable output where a command has it")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if e.home == "" {
			d, err := os.UserConfigDir()
			if err != nil {
				return fmt.Errorf("no --home and no user config dir: %w", err)
			}
			e.home = filepath.Join(d, "z5")
		}
		return nil
	}
	root.AddCommand(e.loginCmd(), e.contactsCmd(), e.listenCmd(), e.callCmd(), e.checkCmd(),
		e.reportCmd(), e.statusCmd(), e.logoutCmd(), e.interpretCmd(), e.locationCmd())
	return root
}

func (e *env) open(onEvent func(client.Event)) (*client.Client, error) {
	return client.Open(client.Options{Home: e.home, OnEvent: onEvent, UserAgent: "Z5/" + version})
}

// answerKeys are the keys a user answers calls with, read from stdin when
// it is a terminal; none (and a stop that does nothing) under
// --auto-answer or --json, or without a terminal. stop gives the terminal
// back.
func (e *env) answerKeys(auto bool) (keys <-chan byte, stop func()) {
	f, ok := e.stdin.(*os.File)
	if !ok || auto || e.json || !cli.IsTerminal(f) {
		return nil, func() {}
	}
	keys, stop, err := cli.Keys(f)
	if err != nil {
		return nil, func() {}
	}
	return keys, stop
}

// openWithSteps opens the client for a command that dials or listens: it
// prints each step of the way in, except under --json, whose output is the
// JSON alone.
func (e *env) openWithSteps() (*client.Client, error) {
	if e.json {
		return e.open(nil)
	}
	return e.open(e.printEvent)
}

func (e *env) printEvent(ev client.Event) {
	fmt.Fprintf(e.stdout, "[step %d] %-28s %s (%s)\n", ev.Step, client.StepNames[ev.Step], ev.Message, ev.Elapsed.Round(100_000))
}

// command is a leaf command taking args positional arguments (lo to hi).
func command(use, short string, lo, hi int) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: cli.RangeArgs(lo, hi)}
}

// slowNotice is how long a step may stay silent before the user is told
// it is still trying.
const slowNotice = 2 * time.Second

// whileSlow prints msg once if the work it brackets takes longer than
// slowNotice; the returned stop ends the bracket (and waits for a print
// under way, so it never lands after what follows). stop is idempotent.
func (e *env) whileSlow(msg string) (stop func()) {
	if e.json {
		return func() {}
	}
	printed := make(chan struct{})
	t := time.AfterFunc(slowNotice, func() {
		defer close(printed)
		fmt.Fprintln(e.stdout, msg)
	})
	var once sync.Once
	return func() {
		// Idempotent: a second Stop reports false too, but then the
		// timer never fired and nothing would close printed.
		once.Do(func() {
			if !t.Stop() {
				<-printed
			}
		})
	}
}
