package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/z5vrs/z5/internal/backoffice"
	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/provider"
	"github.com/z5vrs/z5/internal/store"
)

const adminUsage = `Usage: z5d admin [--data DIR | --config FILE] [--json] COMMAND ...

  customer add USERNAME [--display NAME] --password-stdin
  customer list
  number add USERNAME NUMBER [--label LABEL]
  number list USERNAME
  device add NUMBER --kind sip [--user SIPUSER] [--name NAME] --password-stdin
  device list NUMBER
  contact add NUMBER NAME CONTACT_NUMBER
  contact list NUMBER
  calls [--number NUMBER] [--limit N]

Passwords are read from standard input (one line), never from the command line.
`

func cmdAdmin(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("admin", "z5d admin [--data DIR | --config FILE] COMMAND ...", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, adminUsage) }
	cfgPath := fs.String("config", "", "deployment config (TOML)")
	data := fs.String("data", "", "dev data dir (default: the dev stack's)")
	asJSON := fs.Bool("json", false, "machine-readable output")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return usagef("admin: missing command")
	}
	cfg, err := loadConfig(*cfgPath, *cfgPath == "", *data)
	if err != nil {
		return err
	}
	st, err := provider.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	a := &admin{cfg: cfg, st: st, stdin: stdin, out: stdout, err: stderr, json: *asJSON}
	return a.dispatch(ctx, rest)
}

type admin struct {
	cfg   *config.Config
	st    store.Store
	stdin io.Reader
	out   io.Writer
	err   io.Writer
	json  bool
}

func (a *admin) dispatch(ctx context.Context, args []string) error {
	cmd := strings.Join(args[:min(2, len(args))], " ")
	if args[0] == "calls" {
		cmd = "calls"
	}
	switch cmd {
	case "customer add":
		fs := newFlagSet("customer add", "z5d admin customer add USERNAME [--display NAME] --password-stdin", a.err)
		display := fs.String("display", "", "display name")
		pwStdin := fs.Bool("password-stdin", false, "read the password from standard input")
		pos, err := parseInterleaved(fs, args[2:], 1)
		if err != nil {
			return err
		}
		pw, err := a.password(*pwStdin)
		if err != nil {
			return err
		}
		c, err := backoffice.AddCustomer(ctx, a.st, pos[0], *display, pw)
		if err != nil {
			return err
		}
		return a.print(c.Username, map[string]any{"id": c.ID, "username": c.Username, "display_name": c.DisplayName})
	case "customer list":
		cs, err := a.st.ListCustomers(ctx)
		if err != nil {
			return err
		}
		if a.json {
			return a.printJSON(cs)
		}
		tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USERNAME\tDISPLAY NAME\tNUMBERS\tLOCKED UNTIL")
		for _, c := range cs {
			ns, _ := a.st.NumbersOf(ctx, c.ID)
			var nums []string
			for _, n := range ns {
				nums = append(nums, n.Number)
			}
			locked := "-"
			if c.LockedUntil.After(time.Now()) {
				locked = c.LockedUntil.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Username, c.DisplayName, strings.Join(nums, ","), locked)
		}
		return tw.Flush()
	case "number add":
		fs := newFlagSet("number add", "z5d admin number add USERNAME NUMBER [--label LABEL]", a.err)
		label := fs.String("label", "", "label shown when choosing a number")
		pos, err := parseInterleaved(fs, args[2:], 2)
		if err != nil {
			return err
		}
		n, err := backoffice.AddNumber(ctx, a.st, pos[0], pos[1], *label)
		if err != nil {
			return err
		}
		return a.print(n.Number, n)
	case "number list":
		pos, err := parseInterleaved(newFlagSet("number list", "z5d admin number list USERNAME", a.err), args[2:], 1)
		if err != nil {
			return err
		}
		c, err := a.st.CustomerByUsername(ctx, pos[0])
		if err != nil {
			return fmt.Errorf("customer %q: %w", pos[0], err)
		}
		ns, err := a.st.NumbersOf(ctx, c.ID)
		if err != nil {
			return err
		}
		if a.json {
			return a.printJSON(ns)
		}
		for _, n := range ns {
			fmt.Fprintf(a.out, "%s\t%s\n", n.Number, n.Label)
		}
		return nil
	case "device add":
		fs := newFlagSet("device add", "z5d admin device add NUMBER --kind sip [--user SIPUSER] --password-stdin", a.err)
		kind := fs.String("kind", "", `device kind: "sip" (a standard SIP endpoint)`)
		user := fs.String("user", "", "SIP username (default: the number)")
		name := fs.String("name", "", "a label for the device")
		pwStdin := fs.Bool("password-stdin", false, "read the SIP password from standard input")
		pos, err := parseInterleaved(fs, args[2:], 1)
		if err != nil {
			return err
		}
		if *kind != store.DeviceSIP {
			return usagef("device add: --kind sip is required (Z5 devices are created by logging in with z5)")
		}
		pw, err := a.password(*pwStdin)
		if err != nil {
			return err
		}
		d, err := backoffice.AddSIPDevice(ctx, a.st, a.cfg.SIP.Realm, pos[0], *user, pw, *name)
		if err != nil {
			return err
		}
		return a.print(fmt.Sprintf("device %d: SIP user %s, realm %s, domain %s", d.ID, d.SIPUser, a.cfg.SIP.Realm, a.cfg.Names.SIPDomain),
			map[string]any{"id": d.ID, "number": d.Number, "kind": d.Kind, "sip_user": d.SIPUser, "realm": a.cfg.SIP.Realm, "domain": a.cfg.Names.SIPDomain})
	case "device list":
		pos, err := parseInterleaved(newFlagSet("device list", "z5d admin device list NUMBER", a.err), args[2:], 1)
		if err != nil {
			return err
		}
		num, err := backoffice.NormalizeNumber(pos[0])
		if err != nil {
			return err
		}
		ds, err := a.st.DevicesOf(ctx, num)
		if err != nil {
			return err
		}
		type row struct {
			ID      int64  `json:"id"`
			Kind    string `json:"kind"`
			SIPUser string `json:"sip_user"`
			Name    string `json:"name"`
		}
		var rows []row
		for _, d := range ds {
			rows = append(rows, row{d.ID, d.Kind, d.SIPUser, d.Name})
		}
		if a.json {
			return a.printJSON(rows)
		}
		for _, r := range rows {
			fmt.Fprintf(a.out, "%d\t%s\t%s\t%s\n", r.ID, r.Kind, r.SIPUser, r.Name)
		}
		return nil
	case "contact add":
		pos, err := parseInterleaved(newFlagSet("contact add", "z5d admin contact add NUMBER NAME CONTACT_NUMBER", a.err), args[2:], 3)
		if err != nil {
			return err
		}
		c, err := backoffice.AddContact(ctx, a.st, pos[0], pos[1], pos[2], a.cfg.MCS.MaxContacts)
		if err != nil {
			return err
		}
		return a.print(fmt.Sprintf("contact %s: %s %s", c.ID, c.Name, c.Number), c)
	case "contact list":
		pos, err := parseInterleaved(newFlagSet("contact list", "z5d admin contact list NUMBER", a.err), args[2:], 1)
		if err != nil {
			return err
		}
		num, err := backoffice.NormalizeNumber(pos[0])
		if err != nil {
			return err
		}
		cs, err := a.st.ListContacts(ctx, num)
		if err != nil {
			return err
		}
		if a.json {
			return a.printJSON(cs)
		}
		for _, c := range cs {
			fmt.Fprintf(a.out, "%s\t%s\t%s\n", c.ID, c.Name, c.Number)
		}
		return nil
	case "calls":
		fs := newFlagSet("calls", "z5d admin calls [--number NUMBER] [--limit N]", a.err)
		number := fs.String("number", "", "only calls from or to this number")
		limit := fs.Int("limit", 50, "most recent N calls")
		if _, err := parseInterleaved(fs, args[1:], 0); err != nil {
			return err
		}
		f := store.CallFilter{Limit: *limit}
		if *number != "" {
			n, err := backoffice.NormalizeNumber(*number)
			if err != nil {
				return err
			}
			f.Number = n
		}
		calls, err := a.st.ListCalls(ctx, f)
		if err != nil {
			return err
		}
		if a.json {
			return a.printJSON(calls)
		}
		tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "STARTED\tFROM\tTO\tANSWERED\tDURATION\tEND\tSTATUS\tCALL-ID")
		for _, c := range calls {
			dur := "-"
			if !c.AnsweredAt.IsZero() && !c.EndedAt.IsZero() {
				dur = c.EndedAt.Sub(c.AnsweredAt).Round(time.Second).String()
			}
			ans := "no"
			if !c.AnsweredAt.IsZero() {
				ans = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", c.StartedAt.Format(time.DateTime), c.From, c.To, ans, dur, c.EndReason, c.Status, c.CallID)
		}
		return tw.Flush()
	}
	fmt.Fprint(a.err, adminUsage)
	return usagef("admin: unknown command %q", cmd)
}

// parseInterleaved parses flags that may come before or after exactly n
// positional arguments.
func parseInterleaved(fs interface {
	Parse([]string) error
	Args() []string
}, args []string, n int) ([]string, error) {
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
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) != n {
		return nil, usagef("want %d argument(s), got %d: %q", n, len(pos), pos)
	}
	return pos, nil
}

func (a *admin) password(fromStdin bool) (string, error) {
	if !fromStdin {
		return "", usagef("pass --password-stdin and write the password to standard input (passwords are never taken from the command line)")
	}
	line, err := bufio.NewReader(io.LimitReader(a.stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("empty password on standard input")
	}
	return pw, nil
}

func (a *admin) print(text string, v any) error {
	if a.json {
		return a.printJSON(v)
	}
	_, err := fmt.Fprintln(a.out, text)
	return err
}

func (a *admin) printJSON(v any) error {
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
