// Command mcsnode runs the MCS's SIP registrar/proxy and media relay for
// one node of a deployment config, wired as `z5d run` wires them (same
// store, relay and sipserver config), with the digest algorithms offered
// chosen on the command line. The benchmark uses it when `z5d run` cannot
// be configured to offer MD5 first: SIPp 3.6 computes MD5 digests only and
// answers the first challenge it gets.
//
//	mcsnode --config z5.toml --node n1 --digest MD5 --metrics 127.0.77.1:29090
//
// /metrics serves the sipserver's and relay's metrics, /readyz answers
// once SIP listens, and /debug/pprof/ has profiles.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/provider"
	"github.com/z5vrs/z5/internal/relay"
	"github.com/z5vrs/z5/internal/sipserver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "mcsnode:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfgPath := flag.String("config", "", "deployment config (TOML)")
	nodeName := flag.String("node", "", "node name")
	digest := flag.String("digest", "MD5", "digest algorithms offered, in order, comma-separated")
	metricsAddr := flag.String("metrics", "", "metrics and readiness address (host:port)")
	memProfileRate := flag.Int("memprofilerate", 0, "bytes per sampled allocation in heap profiles (0: Go's default, 512 KiB)")
	flag.Parse()
	if *memProfileRate > 0 {
		// Finer samples, so that a per-registration figure of a few
		// hundred bytes shows in a heap profile; set before any work.
		runtime.MemProfileRate = *memProfileRate
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	node, ok := cfg.Node(*nodeName)
	if !ok {
		return fmt.Errorf("node %q is not in %s", *nodeName, *cfgPath)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	provider.TuneRuntime(cfg.Process, log)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	st, err := provider.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	rcfg := provider.RelayConfig(cfg, node)
	// The load comes from one address and few accounts: no port quotas.
	rcfg.MaxPortsPerCustomer, rcfg.MaxPortsPerSource = 0, 0
	rl, err := relay.New(rcfg, relay.Deps{Log: log.With("component", "relay"), Registerer: reg})
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	defer rl.Close()
	scfg := provider.SIPConfig(cfg, node)
	scfg.DigestAlgorithms = strings.Split(*digest, ",")
	srv, err := sipserver.New(scfg, sipserver.Deps{Store: st, Relay: rl, Log: log.With("component", "sip"), Registerer: reg})
	if err != nil {
		return fmt.Errorf("sip: %w", err)
	}
	defer srv.Close()
	if err := srv.Listen(netip.AddrPortFrom(node.BindAddr(), uint16(cfg.Ports.SIP)), netip.AddrPort{}); err != nil {
		return fmt.Errorf("sip: listen: %w", err)
	}
	if *metricsAddr != "" {
		l, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ready") })
		// Profiles, to say where the time goes when a figure disappoints.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: time.Minute, IdleTimeout: time.Minute}
		go hs.Serve(l)
		defer hs.Close()
	}
	go rl.Serve(ctx)
	err = srv.Serve(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
