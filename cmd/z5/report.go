package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/z5vrs/z5/internal/callreport"
)

// report reads a stats file written by `z5 call --stats-file` and prints
// its summary, and with --svg draws it for a support ticket.
func (e *env) report(args []string) error {
	fs := newFlagSet("report", "report STATS.csv [--svg OUT.svg]", e.stderr)
	svg := fs.String("svg", "", "draw the call's quality over time into this SVG file")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("report: want one STATS.csv (written by z5 call --stats-file)")
	}
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
