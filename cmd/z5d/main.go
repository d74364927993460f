// Command z5d is the provider side of Z5: authoritative DNS, ZDial, and the
// MCS (HTTPS API, SIP registrar and proxy, media relay), chosen per node by
// one deployment config. main only wires; the logic lives in internal/.
package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/spf13/cobra"

	"github.com/z5vrs/z5/internal/cli"
)

// version is set at build time with -ldflags "-X main.version=..."; else
// the module version and commit come from the build info.
var version = "dev"

const long = `z5d is the Z5 provider: DNS, ZDial, MCS (HTTPS, SIP, media relay).

  z5d demo                      the whole system on loopback, two clients, a video call
  z5d run --dev --data DIR      the whole stack on loopback (dev CA, SQLite) for trying by hand
  z5d run --config FILE         production: the roles of this host's nodes
  z5d admin --data DIR ...      customers, numbers, devices, contacts, calls`

func main() {
	// sipgo logs through a package-level logger of its own; its reference
	// counting chatter ("TCP ref went negative") is not for users.
	sipmsg.SetDefaultLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	ownerOnly()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.Report(os.Stderr, "z5d", err))
}

// usageError marks a mistake in the command line (exit status 2).
type usageError = cli.UsageError

func usagef(format string, args ...any) error { return cli.Usagef(format, args...) }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return cli.Execute(ctx, newRoot(stdin, stdout, stderr), args, stdin, stdout, stderr)
}

// newRoot builds the command tree; the same tree serves help, completion
// and the man pages. Bare z5d prints help (exit 2): starting five
// listeners is never a default.
func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := cli.NewRoot("z5d", "the Z5 provider: DNS, ZDial, MCS (HTTPS, SIP, media relay)", long, cli.Version(version))
	// --json is global, as in z5: accepted before or after any subcommand.
	asJSON := root.PersistentFlags().Bool("json", false, "machine-readable output where a command has it (snake_case keys, no secrets)")
	root.AddCommand(runCmd(), demoCmd(), adminCmd(asJSON), firewallCmd(), profileCmd())
	return root
}

// command is a leaf command taking lo to hi positional arguments.
func command(use, short string, lo, hi int) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: cli.RangeArgs(lo, hi)}
}
