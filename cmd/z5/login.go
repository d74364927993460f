package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/z5vrs/z5/internal/client"
	"github.com/z5vrs/z5/internal/profile"
	"github.com/z5vrs/z5/internal/rue"
)

func (e *env) login(ctx context.Context, args []string) error {
	fs := newFlagSet("login", "login --profile provider.json --username U --password-stdin [--number N]", e.stderr)
	prof := fs.String("profile", "", "provider profile (provider.json); optional after the first login")
	user := fs.String("username", "", "ZDial username")
	pwStdin := fs.Bool("password-stdin", false, "read the password from standard input")
	number := fs.String("number", "", "which of the account's numbers to use")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	if *user == "" {
		return usagef("login: --username is required")
	}
	if !*pwStdin {
		return usagef("login: pass --password-stdin and write the password to standard input (never on the command line)")
	}
	in := bufio.NewReader(e.stdin)
	line, err := in.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return errors.New("login: empty password on standard input")
	}
	c, err := e.open(e.printEvent)
	if err != nil {
		return err
	}
	req := client.LoginRequest{Username: *user, Password: pw, Number: *number}
	if *prof != "" {
		if req.Profile, err = loadProfile(*prof); err != nil {
			return err
		}
	}
	// Several numbers and none given: ask on the terminal. The password
	// took standard input's first line; the choice is its next one.
	{
		req.Choose = func(ns []client.Number) (string, error) {
			if !isTerminal(os.Stdin) {
				list := make([]string, len(ns))
				for i, n := range ns {
					list[i] = n.Number
				}
				return "", fmt.Errorf("%w (%s) and standard input is not a terminal", client.ErrNumberRequired, strings.Join(list, ", "))
			}
			fmt.Fprintln(e.stdout, "This account has several numbers:")
			for i, n := range ns {
				fmt.Fprintf(e.stdout, "  %d) %s %s\n", i+1, n.Number, n.Label)
			}
			fmt.Fprint(e.stdout, "Use which one? ")
			ans, _ := in.ReadString('\n')
			ans = strings.TrimSpace(ans)
			if i, err := strconv.Atoi(ans); err == nil && i >= 1 && i <= len(ns) {
				return ns[i-1].Number, nil
			}
			for _, n := range ns {
				if n.Number == ans {
					return ans, nil
				}
			}
			return "", fmt.Errorf("%q is not one of the choices", ans)
		}
	}
	if err := c.Login(ctx, req); err != nil {
		return err
	}
	st := c.State()
	fmt.Fprintf(e.stdout, "logged in as %s, number %s; license valid until %s; %d contact(s)\n",
		st.Username, st.Number, st.LicenseExpires.Format(time.RFC3339), len(st.Contacts))
	return nil
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (e *env) status(args []string) error {
	fs := newFlagSet("status", "status [--json]", e.stderr)
	asJSON := fs.Bool("json", false, "machine-readable output")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	c, err := e.open(nil)
	if err != nil {
		return err
	}
	st := c.State()
	out := map[string]any{
		"logged_in": st.MCSToken != "", "username": st.Username, "number": st.Number, "device_id": st.DeviceID,
		"license_expires": st.LicenseExpires, "contacts": len(st.Contacts), "home": c.Home(),
	}
	if st.Profile != nil {
		out["provider"], out["mcs"] = st.Profile.Provider, st.SIP.Hosts
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if st.MCSToken == "" {
		fmt.Fprintf(e.stdout, "not logged in (home %s)\n", c.Home())
		return nil
	}
	fmt.Fprintf(e.stdout, "logged in as %s, number %s (device %d)\nlicense valid until %s\nMCS: %v\ncontacts: %d\n",
		st.Username, st.Number, st.DeviceID, st.LicenseExpires.Format(time.RFC3339), st.SIP.Hosts, len(st.Contacts))
	return nil
}

func (e *env) logout(ctx context.Context, args []string) error {
	if _, err := parseArgs(newFlagSet("logout", "logout", e.stderr), args); err != nil {
		return err
	}
	c, err := e.open(nil)
	if err != nil {
		return err
	}
	if err := c.Logout(ctx); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "logged out")
	return nil
}

func (e *env) contacts(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("contacts: want list, add NAME NUMBER, rm ID|NAME, import FILE.vcf or export FILE.vcf")
	}
	fs := newFlagSet("contacts "+args[0], "contacts list|add|rm|import|export ...", e.stderr)
	asJSON := fs.Bool("json", false, "machine-readable output")
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		return err
	}
	c, err := e.open(nil)
	if err != nil {
		return err
	}
	want := func(n int) error {
		if len(pos) != n {
			return usagef("contacts %s: want %d argument(s), got %d", args[0], n, len(pos))
		}
		return nil
	}
	switch args[0] {
	case "list":
		if err := want(0); err != nil {
			return err
		}
		cs, err := c.SyncContacts(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(e.stdout).Encode(cs)
		}
		for _, ct := range cs {
			fmt.Fprintf(e.stdout, "%s\t%s\t%s\n", ct.ID, ct.Name, ct.Number)
		}
		return nil
	case "add":
		if err := want(2); err != nil {
			return err
		}
		ct, err := c.AddContact(ctx, pos[0], pos[1])
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "added %s (%s) as %s\n", ct.Name, ct.Number, ct.ID)
		return nil
	case "rm":
		if err := want(1); err != nil {
			return err
		}
		if _, err := c.SyncContacts(ctx); err != nil {
			return err
		}
		if err := c.RemoveContact(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "removed %s\n", pos[0])
		return nil
	case "import":
		if err := want(1); err != nil {
			return err
		}
		data, err := os.ReadFile(pos[0])
		if err != nil {
			return err
		}
		cr, up, err := c.ImportVCard(ctx, data)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "imported %s: %d created, %d updated\n", pos[0], cr, up)
		return nil
	case "export":
		if err := want(1); err != nil {
			return err
		}
		data, err := c.ExportVCard(ctx)
		if err != nil {
			return err
		}
		if err := os.WriteFile(pos[0], data, 0o600); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "exported %d bytes to %s\n", len(data), pos[0])
		return nil
	}
	return usagef("contacts: unknown subcommand %q", args[0])
}

// loadProfile reads a Z5 provider profile, or an RFC 9248 provider
// configuration that carries one (the "z5" extension).
func loadProfile(path string) (*profile.Profile, error) {
	p, perr := profile.Load(path)
	if perr == nil {
		return p, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, perr
	}
	rc, rerr := rue.Parse(b)
	if rerr != nil {
		return nil, fmt.Errorf("%s is neither a Z5 provider profile (%v) nor an RFC 9248 provider configuration (%v)", path, perr, rerr)
	}
	if rc.Z5 == nil {
		return nil, fmt.Errorf("%s: an RFC 9248 provider configuration without the z5 extension: a Z5 client also needs the provider's nameservers, CA and license keys", path)
	}
	if err := rc.Z5.Validate(); err != nil {
		return nil, fmt.Errorf("%s: z5 extension: %w", path, err)
	}
	return rc.Z5, nil
}
