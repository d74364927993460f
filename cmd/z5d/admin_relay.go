package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/z5vrs/z5/internal/backoffice"
	"github.com/z5vrs/z5/internal/cli"
	"github.com/z5vrs/z5/internal/location"
	"github.com/z5vrs/z5/internal/soa"
	"github.com/z5vrs/z5/internal/store"
)

// leafFunc makes an admin leaf command that opens the store around run.
type leafFunc func(use, short string, n int, run func(ctx context.Context, pos []string) error) *cobra.Command

// addressFlags are --street, --city, --state and --zip of the commands
// that take a registered location.
type addressFlags struct{ street, city, state, zip string }

func (f *addressFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.street, "street", "", "registered location: street address (e.g. \"350 Fifth Avenue\")")
	c.Flags().StringVar(&f.city, "city", "", "registered location: city")
	c.Flags().StringVar(&f.state, "state", "", "registered location: USPS state code (e.g. NY)")
	c.Flags().StringVar(&f.zip, "zip", "", "registered location: ZIP code (12345 or 12345-6789)")
}

// given reports whether any address flag was set.
func (f *addressFlags) given(c *cobra.Command) bool {
	for _, n := range []string{"street", "city", "state", "zip"} {
		if c.Flags().Changed(n) {
			return true
		}
	}
	return false
}

// over returns base with the flags that were set put over it.
func (f *addressFlags) over(c *cobra.Command, base location.Address) location.Address {
	for n, p := range map[string]struct {
		dst *string
		src string
	}{"street": {&base.Street, f.street}, "city": {&base.City, f.city}, "state": {&base.State, f.state}, "zip": {&base.Zip, f.zip}} {
		if c.Flags().Changed(n) {
			*p.dst = p.src
		}
	}
	return base
}

// locationWords says what is wrong with an address in flag terms.
func locationWords(err error) error {
	var fe location.Errors
	if !errors.As(err, &fe) {
		return err
	}
	parts := make([]string, len(fe))
	for i, f := range fe {
		parts[i] = "--" + f.Field + ": " + f.Message
	}
	return fmt.Errorf("invalid registered location: %s", strings.Join(parts, "; "))
}

// locationView is a registered location as admin JSON shows it.
type locationView struct {
	Username  string     `json:"username"`
	Street    string     `json:"street"`
	City      string     `json:"city"`
	State     string     `json:"state"`
	Zip       string     `json:"zip"`
	Country   string     `json:"country"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
	UpdatedBy string     `json:"updated_by,omitempty"`
}

func locationJSON(username string, l store.Location) locationView {
	return locationView{username, l.Street, l.City, l.State, l.Zip, l.Country, timeOrNil(l.UpdatedAt), l.UpdatedBy}
}

// customerLocationCmd is "customer location NAME [--street ...]": show the
// registered location, or set (change) the fields given.
func (a *admin) customerLocationCmd(leaf leafFunc) *cobra.Command {
	var f addressFlags
	var c *cobra.Command
	c = leaf("location USERNAME [--street S --city C --state ST --zip Z]", "show or set a customer's registered location (for 911)", 1,
		func(ctx context.Context, pos []string) error {
			cu, err := a.customer(ctx, pos[0])
			if err != nil {
				return err
			}
			cur, err := a.st.Location(ctx, cu.ID)
			switch {
			case errors.Is(err, store.ErrNotFound):
				if !f.given(c) {
					return fmt.Errorf("customer %s has no registered location: set one with --street, --city, --state and --zip", cu.Username)
				}
			case err != nil:
				return a.words(err, "location of "+cu.Username)
			}
			if !f.given(c) {
				return a.printLocation(cu.Username, cur)
			}
			l, err := backoffice.SetLocation(ctx, a.st, cu.Username, f.over(c, backoffice.Address(cur)), "admin")
			if err != nil {
				return locationWords(a.words(err, "location of "+cu.Username))
			}
			return a.printLocation(cu.Username, l)
		})
	c.Long = `Without flags: the customer's registered location, the civic address sent
to the PSAP with a 911 call. With flags: set it, or change the fields given
(a first location needs all four). A customer's numbers may place calls
other than 911 only once a location is registered. Every change is kept in
an audit trail (who, when, the address before and after).`
	f.add(c)
	return c
}

func (a *admin) printLocation(username string, l store.Location) error {
	return a.print(fmt.Sprintf("%s: %s, %s, %s %s, %s (set %s by %s)", username, l.Street, l.City, l.State, l.Zip, l.Country,
		l.UpdatedAt.Format(time.RFC3339), l.UpdatedBy), locationJSON(username, l))
}

// interpreterView is an interpreter as admin JSON shows it.
type interpreterView struct {
	ID          int64      `json:"id"`
	Username    string     `json:"username"`
	DisplayName string     `json:"display_name"`
	CAID        string     `json:"ca_id"`
	Station     string     `json:"station"`
	CreatedAt   *time.Time `json:"created_at,omitempty"`
}

func interpreterJSON(c store.Customer) interpreterView {
	return interpreterView{c.ID, c.Username, c.DisplayName, c.CAID, store.StationNumber(c.CAID), timeOrNil(c.CreatedAt)}
}

// interpreterCmd is "interpreter add|list|rm".
func (a *admin) interpreterCmd(leaf leafFunc) *cobra.Command {
	group := cli.Group(&cobra.Command{Use: "interpreter", Short: "interpreters (communications assistants) and their CA IDs"})
	var caID, display string
	var pwStdin bool
	add := leaf("add USERNAME --ca-id ID [--display NAME] [--password-stdin]", "create an interpreter with a CA ID (asks for the password)", 1,
		func(ctx context.Context, pos []string) error {
			if caID == "" {
				return usagef("interpreter add: --ca-id is required")
			}
			if _, err := a.st.CustomerByUsername(ctx, strings.ToLower(strings.TrimSpace(pos[0]))); err == nil {
				return fmt.Errorf("account %s already exists", pos[0])
			}
			if !store.CAIDPattern.MatchString(caID) {
				return fmt.Errorf("CA ID %q: use 1-16 letters and digits", caID)
			}
			pw, err := a.password(pwStdin, "Password for "+pos[0]+": ")
			if err != nil {
				return err
			}
			c, err := backoffice.AddInterpreter(ctx, a.st, pos[0], display, caID, pw)
			if err != nil {
				if errors.Is(err, store.ErrExists) {
					return fmt.Errorf("CA ID %s or account %s already exists", caID, pos[0])
				}
				return a.words(err, "interpreter "+pos[0])
			}
			return a.print(fmt.Sprintf("interpreter %s created: CA ID %s, station %s", c.Username, c.CAID, store.StationNumber(c.CAID)),
				interpreterJSON(c))
		})
	add.Long = `Create an interpreter account. The interpreter logs in with z5 login like a
customer and selects the station number ca-<CA ID>, then runs z5 interpret.
The CA ID (1-16 letters and digits, unique) is recorded on every relay call
the interpreter serves.`
	add.Flags().StringVar(&caID, "ca-id", "", "the interpreter's CA ID (1-16 letters and digits, unique)")
	add.Flags().StringVar(&display, "display", "", "display name")
	add.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from standard input's first line (for scripts)")

	list := leaf("list", "list interpreters", 0, func(ctx context.Context, _ []string) error {
		views, err := accounts(ctx, a, store.RoleInterpreter, interpreterJSON)
		if err != nil {
			return err
		}
		sort.Slice(views, func(i, j int) bool { return views[i].Username < views[j].Username })
		if a.json {
			return a.printJSON(views)
		}
		tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USERNAME\tDISPLAY NAME\tCA ID\tSTATION")
		for _, v := range views {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Username, v.DisplayName, v.CAID, v.Station)
		}
		return tw.Flush()
	})
	rm := leaf("rm USERNAME", "remove an interpreter (its call records stay)", 1, func(ctx context.Context, pos []string) error {
		c, err := backoffice.RemoveInterpreter(ctx, a.st, pos[0])
		if err != nil {
			return a.words(err, "interpreter "+pos[0])
		}
		return a.print(fmt.Sprintf("interpreter %s (CA ID %s) removed", c.Username, c.CAID), map[string]any{"username": c.Username, "ca_id": c.CAID, "removed": true})
	})
	rm.Long = `Remove an interpreter account with its station number, devices and
sessions: it can no longer log in, and a station it runs loses its
registration at the next refresh. Its call records stay.`
	group.AddCommand(add, list, rm)
	return group
}

// accounts lists the accounts of one role as views.
func accounts[V any](ctx context.Context, a *admin, role string, view func(store.Customer) V) ([]V, error) {
	cs, err := a.st.ListCustomers(ctx)
	if err != nil {
		return nil, a.words(err, "accounts")
	}
	out := []V{}
	for _, c := range cs {
		if c.EffectiveRole() == role {
			out = append(out, view(c))
		}
	}
	return out, nil
}

// staffView is a staff account as admin JSON shows it.
type staffView struct {
	ID          int64      `json:"id"`
	Username    string     `json:"username"`
	DisplayName string     `json:"display_name"`
	CreatedAt   *time.Time `json:"created_at,omitempty"`
}

func staffJSON(c store.Customer) staffView {
	return staffView{c.ID, c.Username, c.DisplayName, timeOrNil(c.CreatedAt)}
}

// staffCmd is "staff add|list".
func (a *admin) staffCmd(leaf leafFunc) *cobra.Command {
	group := cli.Group(&cobra.Command{Use: "staff", Short: "provider staff accounts (the operator view)"})
	var display string
	var pwStdin bool
	add := leaf("add USERNAME [--display NAME] [--password-stdin]", "create a staff account (asks for the password)", 1,
		func(ctx context.Context, pos []string) error {
			if _, err := a.st.CustomerByUsername(ctx, strings.ToLower(strings.TrimSpace(pos[0]))); err == nil {
				return fmt.Errorf("account %s already exists", pos[0])
			}
			pw, err := a.password(pwStdin, "Password for "+pos[0]+": ")
			if err != nil {
				return err
			}
			c, err := backoffice.AddStaff(ctx, a.st, pos[0], display, pw)
			if err != nil {
				return a.words(err, "account "+pos[0])
			}
			return a.print("staff "+c.Username+" created", staffJSON(c))
		})
	add.Long = `Create a staff account: it logs in through ZDial (role "staff") to use the
operator view, and holds no numbers.`
	add.Flags().StringVar(&display, "display", "", "display name")
	add.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from standard input's first line (for scripts)")
	list := leaf("list", "list staff accounts", 0, func(ctx context.Context, _ []string) error {
		views, err := accounts(ctx, a, store.RoleStaff, staffJSON)
		if err != nil {
			return err
		}
		if a.json {
			return a.printJSON(views)
		}
		for _, v := range views {
			fmt.Fprintf(a.out, "%s\t%s\n", v.Username, v.DisplayName)
		}
		return nil
	})
	group.AddCommand(add, list)
	return group
}

// reportCmd is "report speed-of-answer --month YYYY-MM".
func (a *admin) reportCmd(leaf leafFunc) *cobra.Command {
	group := cli.Group(&cobra.Command{Use: "report", Short: "reports over the call records"})
	var month string
	sa := leaf("speed-of-answer --month YYYY-MM", "a month's speed of answer of relay calls (80% within 120 s)", 0,
		func(ctx context.Context, _ []string) error {
			from, to, err := soa.Month(month)
			if err != nil {
				return usagef("speed-of-answer: --%v", err)
			}
			calls, err := a.st.RelayCalls(ctx, from, to)
			if err != nil {
				return a.words(err, "relay calls")
			}
			r, err := soa.Compute(month, calls)
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(r)
			}
			return writeSOA(a, r)
		})
	sa.Long = `The speed of answer of the relay calls queued in a month (UTC), as the US
rule measures it: of the calls offered (queued), the percentage an
interpreter answered within 120 seconds, which must be at least 80%; the
mean and 95th percentile (nearest rank) wait of the answered calls, from
queued to the interpreter answering; and the calls abandoned in the queue
or given up after the maximum wait, which count as not answered in time.`
	sa.Flags().StringVar(&month, "month", "", "the month, YYYY-MM (UTC)")
	group.AddCommand(sa)
	return group
}

func writeSOA(a *admin, r soa.Report) error {
	meets := "no"
	if r.MeetsStandard {
		meets = "yes"
	}
	dirs := make([]string, 0, len(r.ByDirection))
	for d, n := range r.ByDirection {
		dirs = append(dirs, fmt.Sprintf("%s %d", d, n))
	}
	sort.Strings(dirs)
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "month\t%s (UTC)\n", r.Month)
	fmt.Fprintf(tw, "offered\t%d\t%s\n", r.Offered, strings.Join(dirs, ", "))
	fmt.Fprintf(tw, "answered\t%d\n", r.Answered)
	fmt.Fprintf(tw, "answered within 120 s\t%d\t%.2f%% of offered (standard: 80%%): %s\n", r.AnsweredWithin, r.PercentWithin, meets)
	fmt.Fprintf(tw, "mean wait\t%.2f s\n", r.MeanWait)
	fmt.Fprintf(tw, "p95 wait\t%.2f s\n", r.P95Wait)
	fmt.Fprintf(tw, "abandoned in queue\t%d\n", r.Abandoned)
	fmt.Fprintf(tw, "queue timeouts\t%d\n", r.QueueTimeouts)
	fmt.Fprintf(tw, "re-queued\t%d\tafter a lost interpreter; not offered again\n", r.Requeued)
	return tw.Flush()
}
