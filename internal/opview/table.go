package opview

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Ago is how long before now t was, in whole seconds ("3m12s").
func Ago(now, t time.Time) string {
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	return d.Round(time.Second).String()
}

// WriteRegistrations prints rs as an aligned table, times relative to now.
func WriteRegistrations(w io.Writer, now time.Time, rs []Registration) error {
	if len(rs) == 0 {
		_, err := fmt.Fprintln(w, "no registrations")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NUMBER\tDEVICE\tNODE\tTRANSPORT\tSOURCE\tREGISTERED\tEXPIRES")
	for _, r := range rs {
		dev := fmt.Sprint(r.DeviceID)
		if r.DeviceKind != "" {
			dev += " (" + r.DeviceKind + ")"
		}
		since, expires := "-", "-"
		if r.Since != nil {
			since = "since " + Ago(now, *r.Since)
		}
		if r.Expires != nil {
			expires = "in " + Ago(*r.Expires, now)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Number, dev, r.Node, r.Transport, r.Source, since, expires)
	}
	return tw.Flush()
}

// WriteCalls prints each call as a line of who, where and since when,
// then its streams as an aligned table.
func WriteCalls(w io.Writer, now time.Time, cs []Call) error {
	if len(cs) == 0 {
		_, err := fmt.Fprintln(w, "no active calls")
		return err
	}
	for i, c := range cs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		state := "ringing"
		if c.AnsweredAt != nil {
			state = "answered since " + Ago(now, *c.AnsweredAt)
		}
		started := ""
		if c.StartedAt != nil {
			started = ", started since " + Ago(now, *c.StartedAt)
		}
		fmt.Fprintf(w, "%s -> %s  on %s: %s%s  (call-id %s)\n", c.From, c.To, c.Node, state, started, c.CallID)
		if len(c.Streams) == 0 {
			fmt.Fprintln(w, "  no media yet")
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  FROM\tMEDIA\tPACKETS\tBYTES\tLOST\tJITTER\tENCRYPTED")
		for _, s := range c.Streams {
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%.1f ms\t%s\n", s.Leg, s.Media, s.Packets, s.Bytes, s.Lost, s.JitterMs, yesNo(s.Encrypted))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// WriteUnanswered notes the nodes the view went without.
func WriteUnanswered(w io.Writer, what string, us []Unanswered) {
	for _, u := range us {
		fmt.Fprintf(w, "note: node %s (%s) did not answer: %s; its %s are not shown\n", u.Node, u.Addr, strings.TrimSpace(u.Reason), what)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
