package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/z5vrs/z5/internal/cli"
	"github.com/z5vrs/z5/internal/client"
	"github.com/z5vrs/z5/internal/netcheck"
	"github.com/z5vrs/z5/internal/profile"
)

// exitBlocked is z5 check's status when a required rule is blocked.
const exitBlocked = 3

// check probes every outbound rule of the provider's list from this
// network and prints, per rule, whether it works and what to add.
func (e *env) checkCmd() *cobra.Command {
	cmd := command("check [--profile provider.json] [--json] [--timeout D]",
		"network readiness: which firewall rule is missing", 0, 0)
	cmd.Long = `Probe every outbound rule of the provider's list from this network and
print, per rule, whether it works and the rule to add when it does not.
Exit status 3 when a required rule is blocked.`
	fs := cmd.Flags()
	prof := fs.String("profile", "", "provider profile (default: the one saved by z5 login)")
	timeout := fs.Duration("timeout", 2*time.Second, "time to wait for each probe's answer")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return e.check(cmd.Context(), *prof, *timeout) }
	return cmd
}

func (e *env) check(ctx context.Context, profPath string, timeoutD time.Duration) error {
	prof, timeout, asJSON, home := &profPath, &timeoutD, &e.json, &e.home
	if *timeout <= 0 || *timeout > time.Minute {
		return usagef("check: --timeout %s: want a duration up to 1m", *timeout)
	}
	c, err := client.Open(client.Options{Home: *home, UserAgent: "Z5/" + version})
	if err != nil {
		return err
	}
	st := c.State()
	p := st.Profile
	source := "saved by z5 login in " + *home
	if *prof != "" {
		if p, err = profile.Load(*prof); err != nil {
			return err
		}
		source = *prof
	}
	if p == nil {
		return usagef("check: no provider profile: pass --profile provider.json, or log in first (z5 login)")
	}
	// The saved login opens the RTP probes, if it belongs to this provider
	// and has not expired.
	token := ""
	if st.MCSToken != "" && st.Profile != nil && st.Profile.Names.SIPDomain == p.Names.SIPDomain &&
		(st.MCSExpires.IsZero() || time.Now().Before(st.MCSExpires)) {
		token = st.MCSToken
	}
	rep, err := netcheck.Run(ctx, netcheck.Options{Profile: p, MCSToken: token, Timeout: *timeout,
		UserAgent: "Z5-check/" + version})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printReport(e.stdout, rep, source, cli.Colour(e.stdout))
	}
	if rep.Blocked {
		n := 0
		for _, r := range rep.BlockedResults() {
			if r.Rule.Required {
				n++
			}
		}
		return exitError{Err: fmt.Errorf("check: %d required rule(s) blocked", n), Code: exitBlocked}
	}
	return nil
}

// printReport writes the report for a network admin: one aligned line per
// rule in the seed's notation, then the rules to add, the SIP ALG and
// call-quality verdicts, and a summary.
func printReport(w io.Writer, rep *netcheck.Report, source string, colour bool) {
	fmt.Fprintf(w, "z5 check: %s, %d rules (profile %s)\n\n", rep.Provider, len(rep.Results), source)
	sw, lw, bw := len("blocked"), 0, 0
	for _, r := range rep.Results {
		sw = max(sw, len(r.Status))
		lw = max(lw, len(r.Line))
		bw = max(bw, len(r.Rule.Label()))
	}
	for _, r := range rep.Results {
		status := cli.Paint(colour, string(r.Status), fmt.Sprintf("%-*s", sw, r.Status))
		fmt.Fprintf(w, "%s  %-*s  %-*s  %s\n", status, lw, r.Line, bw, r.Rule.Label(), outcome(r))
	}
	var adds []netcheck.Result
	for _, r := range rep.Results {
		if r.Add != "" || r.Fix != "" {
			adds = append(adds, r)
		}
	}
	if len(adds) > 0 {
		fmt.Fprintln(w)
	}
	for _, r := range adds {
		switch {
		case r.Add != "":
			fmt.Fprintf(w, "add: %s\n", r.Add)
			if r.AddNft != "" {
				fmt.Fprintf(w, "     %s\n", r.AddNft)
			}
		case r.Status == netcheck.StatusBlocked:
			fmt.Fprintf(w, "fix: %s\n", r.Fix)
		}
	}
	fmt.Fprintln(w)
	switch rep.ALG.Status {
	case netcheck.ALGDetected:
		fmt.Fprintf(w, "SIP ALG: detected: %s\n", rep.ALG.Fix)
		for _, s := range rep.ALG.Rewritten {
			fmt.Fprintf(w, "         %s\n", s)
		}
	default:
		fmt.Fprintf(w, "SIP ALG: %s\n", rep.ALG.Detail)
	}
	if len(rep.Quality) == 0 {
		why := "see the RTP rules"
		for _, r := range rep.Results {
			if r.Status == netcheck.StatusNeedsLogin {
				why = "the RTP probes need a login: z5 login"
			}
		}
		fmt.Fprintf(w, "quality: not measured (%s)\n", why)
	}
	for _, q := range rep.Quality {
		fmt.Fprintf(w, "quality: %s: R %.1f, MOS %.2f (%s), E-model estimate from the RTP probes\n", q.Name, q.R, q.MOS, q.Rating)
	}
	fmt.Fprintf(w, "summary: %s\n", summary(rep))
}

// outcome is the last column: the time for a plain success, else why.
func outcome(r netcheck.Result) string {
	if r.Status == netcheck.StatusOK && r.RTP == nil {
		return r.Elapsed.String()
	}
	return r.Detail
}

func summary(rep *netcheck.Report) string {
	var parts []string
	for _, s := range []netcheck.Status{netcheck.StatusOK, netcheck.StatusSlow, netcheck.StatusDegraded,
		netcheck.StatusNeedsLogin, netcheck.StatusSkipped, netcheck.StatusBlocked} {
		if n := rep.Counts[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	s := fmt.Sprintf("%d rules: %s (%s)", len(rep.Results), strings.Join(parts, ", "), rep.Elapsed)
	untested := rep.Counts[netcheck.StatusSkipped] + rep.Counts[netcheck.StatusNeedsLogin]
	switch {
	case rep.Blocked:
		s += "; the network blocks required rules: add the rules above"
	case untested > 0:
		s += fmt.Sprintf("; nothing is blocked, but %d rule(s) could not be tested: see above", untested)
	case rep.ALG.Status == netcheck.ALGDetected:
		s += "; every rule is open, but disable the SIP ALG"
	case rep.Counts[netcheck.StatusDegraded] > 0:
		s += "; every rule is open, but the network is degraded: see above"
	default:
		s += "; the network is ready for Z5"
	}
	return s
}
