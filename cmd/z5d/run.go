package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

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
// Only create (run --dev) may start from a data dir that does not exist:
// elsewhere a missing or mistyped --data would silently mint a new CA and
// license key that match nothing.
func loadConfig(path string, dev bool, data string, create bool) (*config.Config, error) {
	var cfg *config.Config
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
		cfg = c
	default:
		if data == "" {
			data = defaultDevDir()
		}
		cfg = config.Dev(data)
	}
	if !create {
		if _, err := os.Stat(cfg.DataDir); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no data dir at %s: run `z5d run --dev --data %s` first or pass --config", cfg.DataDir, cfg.DataDir)
		}
		// A dev data dir without the dev database is a mistyped --data
		// (say /tmp); a deployment's admin may provision before its
		// first run, so --config creates the database in an existing dir.
		if db := cfg.Store.Path; path == "" && cfg.Store.Driver == "sqlite" {
			if !filepath.IsAbs(db) {
				db = filepath.Join(cfg.DataDir, db)
			}
			if _, err := os.Stat(db); errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("no Z5 database in %s: run `z5d run --dev --data %s` first or pass --config", cfg.DataDir, cfg.DataDir)
			}
		}
	}
	return cfg, nil
}

func runCmd() *cobra.Command {
	cmd := command("run --dev [--data DIR] | run --config FILE [--node NAME]", "run the provider: the dev stack on loopback, or a deployment's nodes", 0, 0)
	cmd.Long = `Run the provider.

  z5d run --dev [--data DIR]         the whole stack on loopback with a dev CA and
                                     SQLite; writes DIR/provider.json for z5 login
  z5d run --config FILE [--node NAME]  production: the roles of NAME (default:
                                     every node whose address is local)`
	f := cmd.Flags()
	dev := f.Bool("dev", false, "run the whole stack on loopback with a dev CA and SQLite")
	cfgPath := f.String("config", "", "deployment config (TOML)")
	data := f.String("data", "", "data dir (CA, keys, database, provider.json); created by --dev")
	node := f.String("node", "", `nodes of the config to run: NAME[,NAME...] or "all" (default: every node whose address is local)`)
	logLevel := f.String("log-level", "info", "debug, info, warn or error")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return cmdRun(cmd.Context(), *dev, *cfgPath, *data, *node, *logLevel, cmd.OutOrStdout(), cmd.ErrOrStderr())
	}
	return cmd
}

func cmdRun(ctx context.Context, dev bool, cfgPath, data, node, logLevel string, stdout, stderr io.Writer) error {
	if !dev && cfgPath == "" {
		return usagef("run needs --dev or --config FILE")
	}
	cfg, err := loadConfig(cfgPath, dev, data, true)
	if err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
		return usagef("--log-level: %v", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	names, err := nodesToRun(cfg, node)
	if err != nil {
		return err
	}
	if err := provider.PrepareDataDir(cfg); err != nil {
		return err
	}
	provider.TuneRuntime(cfg.Process, log)
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
	if dev {
		stopPeer := serveDevTrunk(ctx, cfg, log, stdout)
		defer stopPeer()
	}
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

// serveDevTrunk runs the dev stack's telephone network at the trunk
// address until ctx ends; stop waits for it. A peer that cannot start
// (the port taken by a test's own peer) leaves the stack running.
func serveDevTrunk(ctx context.Context, cfg *config.Config, log *slog.Logger, stdout io.Writer) (stop func()) {
	peer, err := provider.DevTrunkPeer(cfg, log)
	if err == nil && peer != nil {
		err = peer.Listen()
	}
	if err != nil || peer == nil {
		if err != nil {
			log.Warn("telephone network peer not started: relay calls to hearing parties fail", "error", err)
		}
		return func() {}
	}
	fmt.Fprintf(stdout, "  %-8s %s (the built-in telephone network: answers any number with a tone)\n", "trunk", peer.Addr())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := peer.Serve(ctx); err != nil {
			log.Warn("telephone network peer stopped", "error", err)
		}
	}()
	return func() {
		peer.Close()
		<-done
	}
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
