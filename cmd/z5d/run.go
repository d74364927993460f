package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/provider"
)

func defaultDevDir() string {
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "z5d-dev")
	}
	return filepath.Join(os.TempDir(), "z5d-dev")
}

// loadConfig resolves --config / --dev --data into a deployment config.
func loadConfig(path string, dev bool, data string) (*config.Config, error) {
	switch {
	case path != "" && dev:
		return nil, usagef("--config and --dev are exclusive")
	case path != "":
		c, err := config.Load(path)
		if err != nil {
			return nil, err
		}
		if data != "" {
			c.DataDir = data
		}
		if c.DataDir == "" {
			return nil, fmt.Errorf("%s: data_dir is not set (or pass --data DIR)", path)
		}
		return c, nil
	default:
		if data == "" {
			data = defaultDevDir()
		}
		return config.Dev(data), nil
	}
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", "z5d run --dev [--data DIR] | z5d run --config FILE [--node NAME]", stderr)
	dev := fs.Bool("dev", false, "run the whole stack on loopback with a dev CA and SQLite")
	cfgPath := fs.String("config", "", "deployment config (TOML)")
	data := fs.String("data", "", "data dir (CA, keys, database, provider.json)")
	node := fs.String("node", "", "node of the config to run (default: the nodes whose address is local)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if !*dev && *cfgPath == "" {
		return usagef("run needs --dev or --config FILE")
	}
	cfg, err := loadConfig(*cfgPath, *dev, *data)
	if err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return usagef("--log-level: %v", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	names, err := nodesToRun(cfg, *node)
	if err != nil {
		return err
	}
	if len(names) != 1 {
		return usagef("several nodes are local (%v): choose one with --node", names)
	}
	n, err := provider.New(ctx, cfg, names[0], provider.Options{Log: log})
	if err != nil {
		return err
	}
	defer n.Close()
	if err := n.Listen(); err != nil {
		return err
	}
	pf := filepath.Join(cfg.DataDir, provider.ProfileFile)
	if err := n.Profile().Save(pf); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "z5d %s: node %s serving; provider profile: %s\n", version, names[0], pf)
	for role, a := range n.Addrs() {
		fmt.Fprintf(stdout, "  %-8s %s\n", role, a)
	}
	return n.Serve(ctx)
}

// nodesToRun picks the node: the one named, or those whose address is on
// this host.
func nodesToRun(cfg *config.Config, name string) ([]string, error) {
	if name != "" {
		if _, ok := cfg.Node(name); !ok {
			return nil, usagef("--node %q: no such node in %s", name, cfg.Path)
		}
		return []string{name}, nil
	}
	local := map[string]bool{}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				local[ipn.IP.String()] = true
			}
		}
	}
	var out []string
	for _, n := range cfg.Nodes() {
		if local[n.Address] || (n.Bind != "" && local[n.Bind]) {
			out = append(out, n.Name)
		}
	}
	if len(out) == 0 {
		return nil, usagef("no node of %s has a local address: choose one with --node", cfg.Path)
	}
	return out, nil
}
