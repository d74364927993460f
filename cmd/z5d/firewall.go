package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/firewall"
)

func firewallCmd() *cobra.Command {
	cmd := command("firewall --config FILE --format "+strings.Join(firewall.Formats, "|"),
		"the customer's outbound firewall rules, generated from the deployment config", 0, 0)
	f := cmd.Flags()
	cfgPath := f.String("config", "", "deployment config (TOML); required")
	format := f.String("format", "seed", "output format: "+strings.Join(firewall.Formats, ", "))
	cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions(firewall.Formats, cobra.ShellCompDirectiveNoFileComp))
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return cmdFirewall(*cfgPath, *format, cmd.OutOrStdout())
	}
	return cmd
}

func cmdFirewall(cfgPath, format string, stdout io.Writer) error {
	if cfgPath == "" {
		return usagef("firewall: --config FILE is required (the rules are derived from the deployment)")
	}
	if !slices.Contains(firewall.Formats, format) {
		return usagef("firewall: --format %q: want one of %s", format, strings.Join(firewall.Formats, ", "))
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	if err := firewall.Render(stdout, cfg, firewall.Rules(cfg), format); err != nil {
		return fmt.Errorf("firewall: %w", err)
	}
	return nil
}
