package main

import (
	"context"
	"encoding/json"
	"io"

	"github.com/spf13/cobra"

	"github.com/z5vrs/z5/internal/provider"
)

func profileCmd() *cobra.Command {
	cmd := command("profile --config FILE | --data DIR", "print the provider profile (provider.json) a client logs in with", 0, 0)
	f := cmd.Flags()
	cfgPath := f.String("config", "", "deployment config (TOML)")
	data := f.String("data", "", "data dir holding the CA and license key (default: the dev stack's)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return cmdProfile(cmd.Context(), *cfgPath, *data, cmd.OutOrStdout())
	}
	return cmd
}

func cmdProfile(ctx context.Context, cfgPath, data string, stdout io.Writer) error {
	cfg, err := loadConfig(cfgPath, false, data, false)
	if err != nil {
		return err
	}
	p, err := provider.ProfileOf(cfg)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}
