// Command z5d is the provider side of Z5: authoritative DNS, ZDial, and the
// MCS (HTTPS API, SIP registrar and proxy, media relay), chosen per node by
// one deployment config. main only wires; the logic lives in internal/.
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
	"syscall"

	sipmsg "github.com/emiago/sipgo/sip"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `z5d — the Z5 provider: DNS, ZDial, MCS (HTTPS, SIP, media relay)

Usage:
  z5d [run --dev] [--data DIR]         the whole stack on loopback (dev CA, SQLite)
  z5d run --config FILE [--node NAME]  production: the roles of NAME (default: every node
                                       whose address is local)
  z5d demo [--data DIR]                dev stack + two clients + a video call, step by step
  z5d admin [--data DIR | --config FILE] ...   customers, numbers, devices, contacts, calls
  z5d firewall --config FILE --format seed|nft|iptables|ip6tables|pf|csv|json|md
  z5d profile --config FILE | --data DIR   print the provider profile (provider.json)
  z5d version

Run "z5d COMMAND --help" for a command's flags.
`

func main() {
	// sipgo logs through a package-level logger of its own; its reference
	// counting chatter ("TCP ref went negative") is not for users.
	sipmsg.SetDefaultLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	ownerOnly()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(os.Stderr, "z5d: %v\n", err)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "z5d: %v\n", err)
		os.Exit(1)
	}
}

// usageError marks a mistake in the command line (exit status 2).
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return cmdRun(ctx, []string{"--dev"}, stdout, stderr)
	}
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:], stdout, stderr)
	case "demo":
		return cmdDemo(ctx, args[1:], stdout, stderr)
	case "admin":
		return cmdAdmin(ctx, args[1:], stdin, stdout, stderr)
	case "firewall":
		return cmdFirewall(args[1:], stdout, stderr)
	case "profile":
		return cmdProfile(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "z5d %s\n", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		if len(args[0]) > 0 && args[0][0] == '-' {
			// "z5d --data DIR" is "z5d run --dev --data DIR".
			return cmdRun(ctx, append([]string{"--dev"}, args...), stdout, stderr)
		}
		fmt.Fprint(stderr, usage)
		return usagef("unknown command %q", args[0])
	}
}

func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	return nil
}
