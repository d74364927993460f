package main

import (
	"context"
	"encoding/json"
	"io"

	"github.com/z5vrs/z5/internal/provider"
)

func cmdProfile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("profile", "z5d profile --config FILE | --data DIR", stderr)
	cfgPath := fs.String("config", "", "deployment config (TOML)")
	data := fs.String("data", "", "data dir holding the CA and license key (dev default)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath, *cfgPath == "", *data)
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
