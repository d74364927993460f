package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/z5vrs/z5/internal/callreport"
)

// report reads a stats file written by `z5 call --stats-file` and prints
// its summary, and with --svg draws it for a support ticket.
func (e *env) reportCmd() *cobra.Command {
	cmd := command("report STATS.csv [--svg OUT.svg]", "a call's quality (from call --stats-file) as a table and a chart", 1, 1)
	cmd.Args = func(_ *cobra.Command, pos []string) error {
		if len(pos) != 1 {
			return usagef("report: want one STATS.csv (written by z5 call --stats-file)")
		}
		return nil
	}
	svg := cmd.Flags().String("svg", "", "draw the call's quality over time into this SVG file")
	cmd.RunE = func(_ *cobra.Command, pos []string) error { return e.report(pos, svg) }
	return cmd
}

func (e *env) report(pos []string, svg *string) error {
	f, err := os.Open(pos[0])
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	rows, err := callreport.Read(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("report %s: %w", pos[0], err)
	}
	fmt.Fprintf(e.stdout, "%s: %d rows\n%s", pos[0], len(rows), callreport.Summary(rows))
	if *svg == "" {
		return nil
	}
	if err := os.WriteFile(*svg, callreport.SVG(rows, filepath.Base(pos[0])), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	fmt.Fprintf(e.stdout, "chart: %s\n", *svg)
	return nil
}
