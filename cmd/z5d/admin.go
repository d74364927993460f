package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/z5vrs/z5/internal/backoffice"
	"github.com/z5vrs/z5/internal/cli"
	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/location"
	"github.com/z5vrs/z5/internal/opview"
	"github.com/z5vrs/z5/internal/password"
	"github.com/z5vrs/z5/internal/provider"
	"github.com/z5vrs/z5/internal/store"
)

type admin struct {
	cfgPath, data string
	asJSON        *bool // the global --json
	json          bool

	cfg   *config.Config
	st    store.Store
	stdin io.Reader
	out   io.Writer
	err   io.Writer
}

// adminCmd is the staff's command line. --data, --config and the global
// --json are accepted before or after the subcommand.
func adminCmd(asJSON *bool) *cobra.Command {
	a := &admin{asJSON: asJSON}
	cmd := cli.Group(&cobra.Command{Use: "admin", Short: "customers, interpreters, staff, numbers, devices, contacts, calls, reports; live registrations and calls",
		Long: `Manage the provider's customers (and their registered locations),
interpreters, staff, numbers, devices and contacts, and read the call log
and its reports, in the data dir of "z5d run --dev --data DIR" or the store of
a deployment (--config FILE).

registrations and calls --live read the running MCS nodes instead (their
operations listener, ports.metrics), like kamcmd ul.dump and dlg.list.

Passwords are asked for on a terminal (without echo) or read from standard
input's first line with --password-stdin; never from the command line.`})
	pf := cmd.PersistentFlags()
	pf.StringVar(&a.cfgPath, "config", "", "deployment config (TOML)")
	pf.StringVar(&a.data, "data", "", "data dir (default: the dev stack's)")

	leaf := func(use, short string, n int, run func(ctx context.Context, pos []string) error) *cobra.Command {
		c := command(use, short, n, n)
		c.RunE = func(c *cobra.Command, pos []string) error {
			a.stdin, a.out, a.err, a.json = c.InOrStdin(), c.OutOrStdout(), c.ErrOrStderr(), *a.asJSON
			if err := a.open(c.Context()); err != nil {
				return err
			}
			defer a.st.Close()
			return run(c.Context(), pos)
		}
		return c
	}

	customer := cli.Group(&cobra.Command{Use: "customer", Short: "customers (ZDial accounts)"})
	var display string
	var pwStdin bool
	var addr addressFlags
	var add *cobra.Command
	add = leaf("add USERNAME [--display NAME] [--password-stdin] [--street S --city C --state ST --zip Z]", "create a customer (asks for the password)", 1,
		func(ctx context.Context, pos []string) error {
			var loc *location.Address
			if addr.given(add) {
				v, err := location.Validate(addr.over(add, location.Address{}))
				if err != nil {
					return locationWords(err)
				}
				loc = &v
			}
			return a.customerAdd(ctx, pos[0], display, pwStdin, loc)
		})
	add.Flags().StringVar(&display, "display", "", "display name")
	add.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from standard input's first line (for scripts)")
	addr.add(add)
	pw := leaf("password USERNAME [--password-stdin]", "set a customer's password (and unlock the account)", 1,
		func(ctx context.Context, pos []string) error { return a.customerPassword(ctx, pos[0], pwStdin) })
	pw.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from standard input's first line (for scripts)")
	customer.AddCommand(add, pw,
		leaf("list", "list customers", 0, a.customerList),
		leaf("unlock USERNAME", "clear a customer's failed logins and lockout", 1, a.customerUnlock),
		a.customerLocationCmd(leaf))

	number := cli.Group(&cobra.Command{Use: "number", Short: "phone numbers of customers"})
	var label string
	nadd := leaf("add USERNAME NUMBER [--label LABEL]", "give a customer a number", 2, func(ctx context.Context, pos []string) error {
		n, err := backoffice.AddNumber(ctx, a.st, pos[0], pos[1], label)
		if err != nil {
			return a.words(err, "number "+pos[1])
		}
		return a.print(n.Number, numberJSON(n))
	})
	nadd.Flags().StringVar(&label, "label", "", "label shown when choosing a number")
	number.AddCommand(nadd, leaf("list USERNAME", "list a customer's numbers", 1, a.numberList))

	device := cli.Group(&cobra.Command{Use: "device", Short: "devices (standard SIP endpoints) of a number"})
	var kind, user, name string
	dadd := leaf("add NUMBER --kind sip [--user SIPUSER] [--name NAME] [--password-stdin]", "add a SIP device to a number (asks for its SIP password)", 1,
		func(ctx context.Context, pos []string) error {
			return a.deviceAdd(ctx, pos[0], kind, user, name, pwStdin)
		})
	dadd.Flags().StringVar(&kind, "kind", "", `device kind: "sip" (a standard SIP endpoint)`)
	dadd.Flags().StringVar(&user, "user", "", "SIP username (default: the number)")
	dadd.Flags().StringVar(&name, "name", "", "a label for the device")
	dadd.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the SIP password from standard input's first line (for scripts)")
	device.AddCommand(dadd, leaf("list NUMBER", "list a number's devices", 1, a.deviceList))

	contact := cli.Group(&cobra.Command{Use: "contact", Short: "the address book of a number"})
	contact.AddCommand(leaf("add NUMBER NAME CONTACT_NUMBER", "add a contact to a number's address book", 3, a.contactAdd),
		leaf("list NUMBER", "list a number's contacts", 1, a.contactList))

	var cnum string
	var limit int
	calls := leaf("calls [--number NUMBER] [--limit N]", "the call log, most recent first", 0,
		func(ctx context.Context, _ []string) error { return a.calls(ctx, cnum, limit) })
	calls.Flags().StringVar(&cnum, "number", "", "only calls from or to this number")
	calls.Flags().IntVar(&limit, "limit", 50, "most recent N calls")
	var liveCalls bool
	calls.Flags().BoolVar(&liveCalls, "live", false, "the calls active now, read from the running MCS nodes (packets, loss, jitter per stream)")
	calls.Use = "calls [--number NUMBER] [--limit N] | calls --live"
	calls.Long = `The call log from the store, most recent first; or, with --live, the calls
active now as the running MCS nodes see them: parties, node, start and
answer, and per stream the packets, bytes, loss and jitter the relay
measured, and whether it is encrypted end to end.

--live asks every MCS node of the deployment at its operations listener
(ports.metrics); a node that does not answer within 2 s is noted and
skipped.`
	fromStore := calls.RunE
	calls.RunE = func(c *cobra.Command, pos []string) error {
		if !liveCalls {
			return fromStore(c, pos)
		}
		if c.Flags().Changed("number") || c.Flags().Changed("limit") {
			return usagef("calls --live shows every active call: --number and --limit apply to the call log")
		}
		return a.live(c, opview.CallsPath, "calls")
	}

	regs := command("registrations", "the devices registered now, read from the running MCS nodes", 0, 0)
	regs.Long = `The devices registered now, as the running MCS nodes hold them (what
kamcmd ul.dump shows a Kamailio operator): number, device, node,
transport, source address, since when and until when.

Every MCS node of the deployment is asked at its operations listener
(ports.metrics, on the operator's network); a node that does not answer
within 2 s is noted and skipped. Nothing secret is shown.`
	regs.RunE = func(c *cobra.Command, _ []string) error {
		return a.live(c, opview.RegistrationsPath, "registrations")
	}

	cmd.AddCommand(customer, number, device, contact, calls, regs, a.interpreterCmd(leaf), a.staffCmd(leaf), a.reportCmd(leaf))
	return cmd
}

// live prints what the running MCS nodes hold now (registrations or
// active calls): a table, or with --json an object with the rows and the
// nodes that did not answer. Nodes that do not answer are noted, not an
// error, unless none does.
func (a *admin) live(c *cobra.Command, path, what string) error {
	a.out, a.err, a.json = c.OutOrStdout(), c.ErrOrStderr(), *a.asJSON
	cfg, err := loadConfig(a.cfgPath, false, a.data, true)
	if err != nil {
		return err
	}
	targets := opview.Targets(cfg)
	if len(targets) == 0 {
		return errors.New("the deployment has no MCS node")
	}
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	now := time.Now()
	var rows any
	var silent []opview.Unanswered
	var table func() error
	switch path {
	case opview.CallsPath:
		var cs []opview.Call
		cs, silent = opview.Gather[opview.Call](c.Context(), hc, targets, path)
		rows, table = nonNil(cs), func() error { return opview.WriteCalls(a.out, now, cs) }
	default:
		var rs []opview.Registration
		rs, silent = opview.Gather[opview.Registration](c.Context(), hc, targets, path)
		rows, table = nonNil(rs), func() error { return opview.WriteRegistrations(a.out, now, rs) }
	}
	if len(silent) == len(targets) {
		opview.WriteUnanswered(a.err, what, silent)
		return fmt.Errorf("no MCS node answered (%d asked): is z5d running, and is its operations port (ports.metrics = %d) reachable from here?", len(targets), cfg.Ports.Metrics)
	}
	if a.json {
		return a.printJSON(map[string]any{what: rows, "unanswered": nonNil(silent)})
	}
	opview.WriteUnanswered(a.err, what, silent)
	return table()
}

// nonNil makes an empty list print as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (a *admin) open(ctx context.Context) error {
	cfg, err := loadConfig(a.cfgPath, false, a.data, false)
	if err != nil {
		return err
	}
	st, err := provider.OpenStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("open the store of %s: %w", cfg.DataDir, err)
	}
	a.cfg, a.st = cfg, st
	return nil
}

// password asks on a terminal or reads standard input (--password-stdin).
func (a *admin) password(fromStdin bool, prompt string) (string, error) {
	return cli.Password(a.stdin, a.err, fromStdin, prompt)
}

// words says a store error in the admin's words: what is wrong with
// which thing, not the database's internals.
func (a *admin) words(err error, what string) error {
	switch {
	case errors.Is(err, store.ErrExists) || strings.Contains(err.Error(), "UNIQUE constraint failed"):
		return fmt.Errorf("%s already exists", what)
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%s does not exist", what)
	case errors.Is(err, backoffice.ErrInvalid):
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (a *admin) customer(ctx context.Context, username string) (store.Customer, error) {
	c, err := a.st.CustomerByUsername(ctx, strings.ToLower(strings.TrimSpace(username)))
	if err != nil {
		return c, a.words(err, "customer "+username)
	}
	return c, nil
}

// customerAdd creates a customer and, when loc is set (already
// validated), its registered location.
func (a *admin) customerAdd(ctx context.Context, username, display string, fromStdin bool, loc *location.Address) error {
	if _, err := a.st.CustomerByUsername(ctx, strings.ToLower(strings.TrimSpace(username))); err == nil {
		return fmt.Errorf("customer %s already exists", username)
	}
	pw, err := a.password(fromStdin, "Password for "+username+": ")
	if err != nil {
		return err
	}
	c, err := backoffice.AddCustomer(ctx, a.st, username, display, pw)
	if err != nil {
		return a.words(err, "customer "+username)
	}
	if loc == nil {
		return a.print("customer "+c.Username+" created (no registered location yet: its numbers can call only 911 until one is set with z5d admin customer location)", customerJSON(c, nil))
	}
	l, err := backoffice.SetLocationOf(ctx, a.st, c.ID, *loc, "admin")
	if err != nil {
		return a.words(err, "location of "+c.Username)
	}
	return a.print(fmt.Sprintf("customer %s created, registered location %s", c.Username, backoffice.Address(l).OneLine()), customerJSON(c, nil))
}

func (a *admin) customerPassword(ctx context.Context, username string, fromStdin bool) error {
	c, err := a.customer(ctx, username)
	if err != nil {
		return err
	}
	pw, err := a.password(fromStdin, "New password for "+c.Username+": ")
	if err != nil {
		return err
	}
	hash, err := password.Hash(pw)
	if err != nil {
		return fmt.Errorf("password: %w", err)
	}
	if err := a.st.SetPasswordHash(ctx, c.ID, hash); err != nil {
		return a.words(err, "customer "+username)
	}
	if err := a.st.ResetLoginFailures(ctx, c.ID); err != nil {
		return a.words(err, "customer "+username)
	}
	return a.print("password of "+c.Username+" set; the account is unlocked", map[string]any{"username": c.Username, "password_set": true, "unlocked": true})
}

func (a *admin) customerUnlock(ctx context.Context, pos []string) error {
	c, err := a.customer(ctx, pos[0])
	if err != nil {
		return err
	}
	if err := a.st.ResetLoginFailures(ctx, c.ID); err != nil {
		return a.words(err, "customer "+pos[0])
	}
	return a.print(c.Username+" unlocked: failed logins cleared", map[string]any{"username": c.Username, "unlocked": true})
}

// customerView is a customer as admin JSON shows it: never the password
// hash; times only when set.
type customerView struct {
	ID          int64      `json:"id"`
	Username    string     `json:"username"`
	DisplayName string     `json:"display_name"`
	Numbers     []string   `json:"numbers,omitempty"`
	Failures    int        `json:"failed_logins"`
	LockedUntil *time.Time `json:"locked_until,omitempty"`
	CreatedAt   *time.Time `json:"created_at,omitempty"`
}

func customerJSON(c store.Customer, numbers []string) customerView {
	v := customerView{ID: c.ID, Username: c.Username, DisplayName: c.DisplayName, Numbers: numbers, Failures: c.Failures,
		LockedUntil: timeOrNil(c.LockedUntil), CreatedAt: timeOrNil(c.CreatedAt)}
	if v.LockedUntil != nil && !v.LockedUntil.After(time.Now()) {
		v.LockedUntil = nil // a lock in the past is no lock
	}
	return v
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (a *admin) customerList(ctx context.Context, _ []string) error {
	cs, err := a.st.ListCustomers(ctx)
	if err != nil {
		return a.words(err, "customers")
	}
	views := make([]customerView, 0, len(cs))
	for _, c := range cs {
		if c.EffectiveRole() != store.RoleCustomer {
			continue // interpreter list, staff list
		}
		ns, err := a.st.NumbersOf(ctx, c.ID)
		if err != nil {
			return a.words(err, "numbers of "+c.Username)
		}
		var nums []string
		for _, n := range ns {
			nums = append(nums, n.Number)
		}
		views = append(views, customerJSON(c, nums))
	}
	if a.json {
		return a.printJSON(views)
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tDISPLAY NAME\tNUMBERS\tLOCKED UNTIL")
	for _, v := range views {
		locked := "-"
		if v.LockedUntil != nil {
			locked = v.LockedUntil.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Username, v.DisplayName, strings.Join(v.Numbers, ","), locked)
	}
	return tw.Flush()
}

type numberView struct {
	Number    string     `json:"number"`
	Label     string     `json:"label,omitempty"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
}

func numberJSON(n store.Number) numberView {
	return numberView{Number: n.Number, Label: n.Label, CreatedAt: timeOrNil(n.CreatedAt)}
}

func (a *admin) numberList(ctx context.Context, pos []string) error {
	c, err := a.customer(ctx, pos[0])
	if err != nil {
		return err
	}
	ns, err := a.st.NumbersOf(ctx, c.ID)
	if err != nil {
		return a.words(err, "numbers of "+pos[0])
	}
	if a.json {
		views := make([]numberView, 0, len(ns))
		for _, n := range ns {
			views = append(views, numberJSON(n))
		}
		return a.printJSON(views)
	}
	for _, n := range ns {
		fmt.Fprintf(a.out, "%s\t%s\n", n.Number, n.Label)
	}
	return nil
}

func (a *admin) deviceAdd(ctx context.Context, number, kind, user, name string, fromStdin bool) error {
	if kind != store.DeviceSIP {
		return usagef("device add: --kind sip is required (Z5 devices are created by logging in with z5)")
	}
	pw, err := a.password(fromStdin, "SIP password for the device: ")
	if err != nil {
		return err
	}
	d, err := backoffice.AddSIPDevice(ctx, a.st, a.cfg.SIP.Realm, number, user, pw, name)
	if err != nil {
		what := "SIP user " + user
		if user == "" {
			what = "a device for " + number
		}
		return a.words(err, what)
	}
	return a.print(fmt.Sprintf("device %d of %s: SIP user %s, realm %s, domain %s", d.ID, d.Number, d.SIPUser, a.cfg.SIP.Realm, a.cfg.Names.SIPDomain),
		map[string]any{"id": d.ID, "number": d.Number, "kind": d.Kind, "sip_user": d.SIPUser, "realm": a.cfg.SIP.Realm, "domain": a.cfg.Names.SIPDomain})
}

func (a *admin) deviceList(ctx context.Context, pos []string) error {
	num, err := backoffice.NormalizeNumber(pos[0])
	if err != nil {
		return err
	}
	ds, err := a.st.DevicesOf(ctx, num)
	if err != nil {
		return a.words(err, "devices of "+num)
	}
	type row struct {
		ID        int64      `json:"id"`
		Kind      string     `json:"kind"`
		SIPUser   string     `json:"sip_user"`
		Name      string     `json:"name,omitempty"`
		CreatedAt *time.Time `json:"created_at,omitempty"`
	}
	rows := []row{}
	for _, d := range ds {
		rows = append(rows, row{d.ID, d.Kind, d.SIPUser, d.Name, timeOrNil(d.CreatedAt)})
	}
	if a.json {
		return a.printJSON(rows)
	}
	for _, r := range rows {
		fmt.Fprintf(a.out, "%d\t%s\t%s\t%s\n", r.ID, r.Kind, r.SIPUser, r.Name)
	}
	return nil
}

type contactView struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Number    string     `json:"number"`
	Email     string     `json:"email,omitempty"`
	Favorite  bool       `json:"favorite,omitempty"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
}

func (a *admin) contactAdd(ctx context.Context, pos []string) error {
	c, err := backoffice.AddContact(ctx, a.st, pos[0], pos[1], pos[2], a.cfg.MCS.MaxContacts)
	if err != nil {
		return a.words(err, "contact "+pos[1])
	}
	return a.print(fmt.Sprintf("contact %s: %s %s", c.ID, c.Name, c.Number),
		contactView{c.ID, c.Name, c.Number, c.Email, c.Favorite, timeOrNil(c.UpdatedAt)})
}

func (a *admin) contactList(ctx context.Context, pos []string) error {
	num, err := backoffice.NormalizeNumber(pos[0])
	if err != nil {
		return err
	}
	cs, err := a.st.ListContacts(ctx, num)
	if err != nil {
		return a.words(err, "contacts of "+num)
	}
	if a.json {
		views := make([]contactView, 0, len(cs))
		for _, c := range cs {
			views = append(views, contactView{c.ID, c.Name, c.Number, c.Email, c.Favorite, timeOrNil(c.UpdatedAt)})
		}
		return a.printJSON(views)
	}
	for _, c := range cs {
		fmt.Fprintf(a.out, "%s\t%s\t%s\n", c.ID, c.Name, c.Number)
	}
	return nil
}

type streamView struct {
	Leg      string  `json:"leg"`
	Media    string  `json:"media"`
	Packets  uint64  `json:"packets"`
	Bytes    uint64  `json:"bytes"`
	Lost     int64   `json:"lost"`
	JitterMs float64 `json:"jitter_ms"`
	// Dropped: packets from addresses other than the call's endpoints,
	// which the relay never forwards.
	DroppedStrangers uint64 `json:"dropped_from_strangers"`
	RTCP             uint64 `json:"rtcp_packets"`
	// Encrypted: SRTP end to end; the relay carried what it cannot read.
	Encrypted bool `json:"encrypted"`
}

type callView struct {
	CallID     string       `json:"call_id"`
	From       string       `json:"from"`
	To         string       `json:"to"`
	Node       string       `json:"node,omitempty"`
	StartedAt  *time.Time   `json:"started_at,omitempty"`
	AnsweredAt *time.Time   `json:"answered_at,omitempty"`
	EndedAt    *time.Time   `json:"ended_at,omitempty"`
	EndReason  string       `json:"end_reason,omitempty"`
	Status     int          `json:"status,omitempty"`
	Streams    []streamView `json:"streams,omitempty"`

	// Relay calls only.
	Direction         string     `json:"direction,omitempty"`
	CAID              string     `json:"ca_id,omitempty"`
	Dialed            string     `json:"dialed,omitempty"`
	UserNumber        string     `json:"user_number,omitempty"`
	UserIP            string     `json:"user_ip,omitempty"`
	QueuedAt          *time.Time `json:"queued_at,omitempty"`
	OfferedAt         *time.Time `json:"offered_at,omitempty"`
	SessionStart      *time.Time `json:"session_start,omitempty"`
	SessionEnd        *time.Time `json:"session_end,omitempty"`
	ConversationStart *time.Time `json:"conversation_start,omitempty"`
	ConversationEnd   *time.Time `json:"conversation_end,omitempty"`
	// RequeueOf is the relay call this one continues after its
	// interpreter's connection was lost.
	RequeueOf string `json:"requeue_of,omitempty"`
	// QueueWaitSeconds is QueuedAt to SessionStart (the interpreter
	// answered), for answered relay calls.
	QueueWaitSeconds *float64 `json:"queue_wait_seconds,omitempty"`
}

// relaySummary is a relay call's direction, interpreter and queue wait
// for the call log table ("-" for a point-to-point call).
func relaySummary(c store.Call) string {
	if c.Direction == "" {
		return "-"
	}
	s := c.Direction
	if c.CAID != "" {
		s += " CA " + c.CAID
	}
	if !c.QueuedAt.IsZero() && !c.SessionStart.IsZero() {
		s += " wait " + max(c.SessionStart.Sub(c.QueuedAt), 0).Round(time.Second).String()
	}
	return s
}

// relayFields fills v's relay call fields from c.
func relayFields(v *callView, c store.Call) {
	v.Direction, v.CAID, v.Dialed, v.UserNumber, v.UserIP = c.Direction, c.CAID, c.Dialed, c.UserNumber, c.UserIP
	v.RequeueOf = c.RequeueOf
	v.QueuedAt, v.OfferedAt = timeOrNil(c.QueuedAt), timeOrNil(c.OfferedAt)
	v.SessionStart, v.SessionEnd = timeOrNil(c.SessionStart), timeOrNil(c.SessionEnd)
	v.ConversationStart, v.ConversationEnd = timeOrNil(c.ConversationStart), timeOrNil(c.ConversationEnd)
	if !c.QueuedAt.IsZero() && !c.SessionStart.IsZero() {
		w := max(c.SessionStart.Sub(c.QueuedAt), 0).Seconds()
		v.QueueWaitSeconds = &w
	}
}

func (a *admin) calls(ctx context.Context, number string, limit int) error {
	f := store.CallFilter{Limit: limit}
	if number != "" {
		n, err := backoffice.NormalizeNumber(number)
		if err != nil {
			return err
		}
		f.Number = n
	}
	calls, err := a.st.ListCalls(ctx, f)
	if err != nil {
		return a.words(err, "call log")
	}
	if a.json {
		views := make([]callView, 0, len(calls))
		for _, c := range calls {
			v := callView{CallID: c.CallID, From: c.From, To: c.To, Node: c.Node, StartedAt: timeOrNil(c.StartedAt),
				AnsweredAt: timeOrNil(c.AnsweredAt), EndedAt: timeOrNil(c.EndedAt), EndReason: c.EndReason, Status: c.Status}
			for _, s := range c.MediaStats {
				v.Streams = append(v.Streams, streamView{s.Leg, s.Media, s.Packets, s.Bytes, s.Lost, s.JitterMS, s.Dropped, s.RTCPCount, s.Encrypted})
			}
			relayFields(&v, c)
			views = append(views, v)
		}
		return a.printJSON(views)
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STARTED\tFROM\tTO\tANSWERED\tDURATION\tEND\tSTATUS\tCALL-ID\tRELAY")
	for _, c := range calls {
		dur := "-"
		if !c.AnsweredAt.IsZero() && !c.EndedAt.IsZero() {
			dur = c.EndedAt.Sub(c.AnsweredAt).Round(time.Second).String()
		}
		ans := "no"
		if !c.AnsweredAt.IsZero() {
			ans = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", c.StartedAt.Format(time.DateTime), c.From, c.To, ans, dur, c.EndReason, c.Status, c.CallID, relaySummary(c))
	}
	return tw.Flush()
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
