package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/firewall"
)

func cmdFirewall(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("firewall", "z5d firewall --config FILE --format "+strings.Join(firewall.Formats, "|"), stderr)
	cfgPath := fs.String("config", "", "deployment config (TOML); required")
	format := fs.String("format", "seed", "output format: "+strings.Join(firewall.Formats, ", "))
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return usagef("firewall: --config FILE is required (the rules are derived from the deployment)")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if err := firewall.Render(stdout, cfg, firewall.Rules(cfg), *format); err != nil {
		return fmt.Errorf("firewall: %w", err)
	}
	return nil
}
