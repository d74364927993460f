package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

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
	node := fs.String("node", "", `nodes of the config to run: NAME[,NAME...] or "all" (default: every node whose address is local)`)
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
	if err := provider.PrepareDataDir(cfg); err != nil {
		return err
	}
	var nodes []*provider.Node
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	for _, name := range names {
		n, err := provider.New(ctx, cfg, name, provider.Options{Log: log})
		if err != nil {
			return fmt.Errorf("node %s: %w", name, err)
		}
		nodes = append(nodes, n)
		if err := n.Listen(); err != nil {
			return fmt.Errorf("node %s: %w", name, err)
		}
	}
	pf := filepath.Join(cfg.DataDir, provider.ProfileFile)
	if err := nodes[0].Profile().Save(pf); err != nil {
		return err
	}
	for i, n := range nodes {
		fmt.Fprintf(stdout, "z5d %s: node %s serving\n", version, names[i])
		addrs := n.Addrs()
		roles := make([]string, 0, len(addrs))
		for role := range addrs {
			roles = append(roles, role)
		}
		sort.Strings(roles)
		for _, role := range roles {
			fmt.Fprintf(stdout, "  %-8s %s\n", role, addrs[role])
		}
	}
	fmt.Fprintf(stdout, "provider profile: %s\n", pf)
	// Every node serves until ctx ends; the first failure stops them all.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(nodes))
	for i, n := range nodes {
		go func() {
			err := n.Serve(ctx)
			if err != nil {
				err = fmt.Errorf("node %s: %w", names[i], err)
			}
			cancel()
			errc <- err
		}()
	}
	var errs []error
	for range nodes {
		if err := <-errc; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// nodesToRun picks the node: the one named, or those whose address is on
// this host.
func nodesToRun(cfg *config.Config, name string) ([]string, error) {
	if name == "all" {
		var all []string
		for _, n := range cfg.Nodes() {
			all = append(all, n.Name)
		}
		return all, nil
	}
	if name != "" {
		names := strings.Split(name, ",")
		for _, n := range names {
			if _, ok := cfg.Node(n); !ok {
				return nil, usagef("--node %q: no such node in %s", n, cfg.Path)
			}
		}
		return names, nil
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
