package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/z5vrs/z5/internal/cli"
	"github.com/z5vrs/z5/internal/client"
	"github.com/z5vrs/z5/internal/profile"
	"github.com/z5vrs/z5/internal/rue"
)

func (e *env) loginCmd() *cobra.Command {
	cmd := command("login --profile provider.json --username U [--password-stdin] [--number N]",
		"steps 1-3: resolve, log in, choose a number, license, address book", 0, 0)
	cmd.Long = `Log in (steps 1-3): resolve the provider's names, log in to ZDial, choose
one of the account's numbers, fetch the license and the address book.

On a terminal it asks for the password without echoing it; scripts pass
--password-stdin and write it to standard input. The password is never
stored, only the session tokens (mode 0600 under --home).`
	cmd.Example = "  z5 login --profile provider.json --username alice\n  printf '%s\\n' \"$PW\" | z5 login --username alice --password-stdin"
	fs := cmd.Flags()
	prof := fs.String("profile", "", "provider profile (provider.json); optional after the first login")
	user := fs.String("username", "", "ZDial username (required)")
	pwStdin := fs.Bool("password-stdin", false, "read the password from standard input's first line (for scripts)")
	number := fs.String("number", "", "which of the account's numbers to use")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return e.login(cmd.Context(), *prof, *user, *pwStdin, *number)
	}
	return cmd
}

func (e *env) login(ctx context.Context, prof, user string, pwStdin bool, number string) error {
	if user == "" {
		return usagef("login: --username is required")
	}
	req := client.LoginRequest{Username: user, Number: number}
	if prof != "" {
		var err error
		if req.Profile, err = loadProfile(prof); err != nil {
			return err
		}
	}
	in := bufio.NewReader(e.stdin)
	var pw string
	if pwStdin {
		var err error
		if pw, err = cli.PasswordLine(in); err != nil {
			return fmt.Errorf("login: %w", err)
		}
	} else {
		var err error
		if pw, err = cli.Password(e.stdin, e.stderr, false, "Password for "+user+": "); err != nil {
			return fmt.Errorf("login: %w", err)
		}
	}
	req.Password = pw
	c, err := e.open(e.printEvent)
	if err != nil {
		return err
	}
	// Several numbers and none given: ask on the terminal. With
	// --password-stdin the password took standard input's first line;
	// the choice is its next one.
	{
		req.Choose = func(ns []client.Number) (string, error) {
			if !cli.IsTerminal(e.stdin) {
				list := make([]string, len(ns))
				for i, n := range ns {
					list[i] = n.Number
				}
				return "", fmt.Errorf("%w (%s) and standard input is not a terminal: pass --number", client.ErrNumberRequired, strings.Join(list, ", "))
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

func (e *env) statusCmd() *cobra.Command {
	cmd := command("status", "who is logged in, license, registration target", 0, 0)
	cmd.RunE = func(*cobra.Command, []string) error { return e.status() }
	return cmd
}

func (e *env) status() error {
	asJSON := &e.json
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

func (e *env) logoutCmd() *cobra.Command {
	cmd := command("logout", "revoke the session and forget the tokens", 0, 0)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return e.logout(cmd.Context()) }
	return cmd
}

func (e *env) logout(ctx context.Context) error {
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

func (e *env) contactsCmd() *cobra.Command {
	cmd := cli.Group(&cobra.Command{Use: "contacts", Short: "the address book: list, add, rm, import, export"})
	for _, sub := range []struct {
		use, short string
		n          int
	}{
		{"list", "list the contacts (synchronised with the MCS)", 0},
		{"add NAME NUMBER", "add a contact", 2},
		{"rm ID|NAME", "remove a contact", 1},
		{"import FILE.vcf", "import contacts from a vCard file", 1},
		{"export FILE.vcf", "export the contacts as a vCard file (mode 0600)", 1},
	} {
		c := command(sub.use, sub.short, sub.n, sub.n)
		c.RunE = func(c *cobra.Command, pos []string) error { return e.contacts(c.Context(), c.Name(), pos) }
		cmd.AddCommand(c)
	}
	return cmd
}

func (e *env) contacts(ctx context.Context, sub string, pos []string) error {
	asJSON := &e.json
	args := []string{sub}
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
	return usagef("contacts: unknown command %q", args[0])
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
