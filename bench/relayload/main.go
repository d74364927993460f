// Command relayload measures media relays side by side: packets per second
// relayed below a loss threshold, and the one-way latency a relay adds.
//
//	relayload serve --ng 127.0.0.1:2224 --bind 127.0.0.1 --ports 20000-29999
//	relayload run --relay mcs=127.0.0.1:2224@PID --relay rtpengine=127.0.0.1:2222@PID --media video
//	relayload ping --ng 127.0.0.1:2222
//
// serve runs the MCS relay (internal/relay) in its own process behind the
// ng control protocol that rtpengine speaks, so the load generator drives
// both relays the same way and neither shares a process with it. run sets
// up N calls through a relay (offer, answer), sends timestamped RTP-shaped
// packets from both legs of each call at the stream's rate, and ramps N;
// with several relays each step runs against each in turn.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // --pprof
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/relay"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "relayload:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: relayload serve|run [flags]")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:])
	case "run":
		return load(args[1:])
	case "ping":
		return ping(args[1:])
	}
	return fmt.Errorf("unknown command %q (serve, run, ping)", args[0])
}

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	ngAddr := fs.String("ng", "127.0.0.1:2224", "ng control address")
	bind := fs.String("bind", "127.0.0.1", "media address")
	ports := fs.String("ports", "20000-29999", "media port range")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this address (empty: off)")
	def := config.Dev("").Relay
	kernel := fs.String("kernel-forwarding", def.KernelForwarding, "auto or off, as the deployment's relay.kernel_forwarding")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pprofAddr != "" {
		ln, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			return fmt.Errorf("pprof listen: %w", err)
		}
		srv := &http.Server{Handler: http.DefaultServeMux, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
	}
	var pr config.PortRange
	if err := pr.UnmarshalText([]byte(*ports)); err != nil {
		return err
	}
	ip, err := netip.ParseAddr(*bind)
	if err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	ap, err := netip.ParseAddrPort(*ngAddr)
	if err != nil {
		return fmt.Errorf("ng: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r, err := relay.New(relay.Config{Bind: ip, Ports: pr, MediaTimeout: time.Minute, ProbeRate: def.ProbeRate,
		MaxStreams: def.MaxStreams, KernelForwarding: *kernel == "auto"}, relay.Deps{Log: log})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "relayload serve: kernel forwarding %s (asked %s)\n", map[bool]string{true: "on", false: "off"}[r.KernelForwarding()], *kernel)
	defer r.Close()
	go r.Serve(ctx)
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return fmt.Errorf("ng listen: %w", err)
	}
	s := &ngServer{r: r, log: log, calls: map[string]*relay.Call{}}
	return s.serve(ctx, conn)
}

// ping waits up to --wait for the relay's ng endpoint to answer.
func ping(args []string) error {
	fs := flag.NewFlagSet("ping", flag.ContinueOnError)
	ngAddr := fs.String("ng", "127.0.0.1:2224", "ng control address")
	ip := fs.String("ip", "127.0.0.1", "local address")
	wait := fs.Duration("wait", 10*time.Second, "how long to keep trying")
	if err := fs.Parse(args); err != nil {
		return err
	}
	local, err := netip.ParseAddr(*ip)
	if err != nil {
		return fmt.Errorf("ip: %w", err)
	}
	deadline := time.Now().Add(*wait)
	for {
		c, err := dialNG(*ngAddr, local)
		if err != nil {
			return err
		}
		_, err = c.do(map[string]any{"command": "ping"})
		c.Close()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// targets collects --relay LABEL=NG_ADDR[@PID] flags.
type targets []*relayTarget

func (t *targets) String() string { return fmt.Sprint(len(*t)) }

func (t *targets) Set(v string) error {
	label, rest, ok := strings.Cut(v, "=")
	if !ok || label == "" {
		return fmt.Errorf("want LABEL=NG_ADDR[@PID] (empty address: direct), got %q", v)
	}
	addr, pidS, hasPID := strings.Cut(rest, "@")
	rt := &relayTarget{label: label, ng: addr}
	if hasPID {
		pid, err := strconv.Atoi(pidS)
		if err != nil {
			return fmt.Errorf("pid %q: %w", pidS, err)
		}
		rt.pid = pid
	}
	*t = append(*t, rt)
	return nil
}

func load(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	cfg := loadConfig{out: os.Stdout}
	var relays targets
	fs.Var(&relays, "relay", "LABEL=NG_ADDR[@PID] of a relay under test (repeat; empty NG_ADDR: legs send directly, the baseline)")
	media := fs.String("media", "video", "video (1200 B, 90 pps per stream) or audio (160 B, 50 pps)")
	steps := fs.String("steps", "7000,14000,28000,42000,56000,70000,84000,100000,120000,140000,170000,200000,240000", "ladder of relayed packets per second (a relay stops at its first failed step)")
	fs.DurationVar(&cfg.dur, "dur", 4*time.Second, "sending time per step")
	fs.DurationVar(&cfg.warm, "warm", 500*time.Millisecond, "warm-up excluded from the figures")
	fs.Float64Var(&cfg.maxLoss, "max-loss", 0.001, "a step passes with loss below this fraction")
	fs.IntVar(&cfg.senders, "senders", 2, "sending goroutines")
	ip := fs.String("ip", "127.0.0.1", "the legs' address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(relays) == 0 {
		return errors.New("run: at least one --relay")
	}
	cfg.relays = relays
	var err error
	if cfg.ip, err = netip.ParseAddr(*ip); err != nil {
		return fmt.Errorf("ip: %w", err)
	}
	k, ok := kinds[*media]
	if !ok {
		return fmt.Errorf("media %q: want video or audio", *media)
	}
	cfg.kind = k
	for _, f := range strings.Split(*steps, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("steps: %q is not a packet rate", f)
		}
		cfg.steps = append(cfg.steps, n)
	}
	if cfg.warm >= cfg.dur {
		return fmt.Errorf("warm-up %s must be shorter than the step %s", cfg.warm, cfg.dur)
	}
	return runLadder(cfg)
}
