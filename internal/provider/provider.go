// Package provider turns a deployment into running roles on one node — not
// the deployment file (internal/config), the client's profile document
// (internal/profile) or the staff's back office (internal/backoffice). A
// Node holds the roles the deployment config gives it (dns, zdial, mcs =
// HTTPS API + SIP + relay), their shared store, CA and license key, and the
// metrics/health endpoint; each role's Config is built here from the
// deployment (roles.go), so the roles only check what they are given.
// `z5d run` and `z5d demo` both run a Node; neither holds any logic of its
// own.
package provider

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/dnsserver"
	"github.com/z5vrs/z5/internal/license"
	"github.com/z5vrs/z5/internal/mcsapi"
	"github.com/z5vrs/z5/internal/membership"
	"github.com/z5vrs/z5/internal/opview"
	"github.com/z5vrs/z5/internal/pki"
	"github.com/z5vrs/z5/internal/profile"
	"github.com/z5vrs/z5/internal/relay"
	"github.com/z5vrs/z5/internal/sipserver"
	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/webphone"
	"github.com/z5vrs/z5/internal/zdial"
)

// ProfileFile is the provider profile written into the data dir.
const ProfileFile = "provider.json"

// Options tune a node beyond the deployment config.
type Options struct {
	// PortOverride, when set, replaces every listening port with 0 so the
	// kernel picks free ones (tests); Addrs reports what was bound.
	EphemeralPorts bool
	Log            *slog.Logger
}

// Node is one running process of the deployment.
type Node struct {
	cfg   *config.Config
	node  config.Node
	log   *slog.Logger
	reg   *prometheus.Registry
	store store.Store
	ca    *pki.CA
	key   ed25519.PrivateKey
	opts  Options

	members  *membership.Membership
	dns      *dnsserver.Server
	zdialSrv *httpsServer
	mcsSrv   *httpsServer
	sip      *sipserver.Server
	relay    *relay.Relay
	web      *webphone.Gateway // the web phone on the MCS port; nil when off
	metrics  *http.Server
	metricsL net.Listener

	closeOnce sync.Once
	closeErr  error
}

// New prepares node name of cfg: opens the store, loads or creates the CA
// and license key in cfg.DataDir, and builds every role's server. Nothing
// listens until Listen.
func New(ctx context.Context, cfg *config.Config, name string, opts Options) (*Node, error) {
	node, ok := cfg.Node(name)
	if !ok {
		return nil, fmt.Errorf("node %q is not in %s", name, cfg.Path)
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	n := &Node{cfg: cfg, node: node, opts: opts, log: opts.Log.With("node", name), reg: prometheus.NewRegistry()}
	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	var err error
	if n.ca, err = pki.LoadOrCreateCA(cfg.DataDir, cfg.Provider.Name); err != nil {
		return nil, err
	}
	if n.key, err = license.LoadOrCreateKey(filepath.Join(cfg.DataDir, "license.key")); err != nil {
		return nil, err
	}
	if n.store, err = OpenStore(ctx, cfg); err != nil {
		return nil, err
	}
	if err := n.build(); err != nil {
		n.store.Close()
		return nil, err
	}
	return n, nil
}

func (n *Node) build() error {
	cfg := n.cfg
	var err error
	if n.members, err = membership.New(MembershipConfig(cfg, n.node), membership.Deps{Store: n.store, Log: n.log.With("component", "membership")}); err != nil {
		return err
	}
	if n.node.Has(config.RoleDNS) {
		s, err := dnsserver.New(cfg, dnsserver.Deps{Log: n.log.With("component", "dns"), Health: n.members, Registerer: n.reg})
		if err != nil {
			return fmt.Errorf("dns: %w", err)
		}
		n.dns = s
	}
	if n.node.Has(config.RoleZDial) {
		h, err := zdial.New(ZDialConfig(cfg), zdial.Deps{Store: n.store, Log: n.log.With("component", "zdial"), Registerer: n.reg})
		if err != nil {
			return fmt.Errorf("zdial: %w", err)
		}
		cert, err := n.ca.Issue([]string{cfg.Names.ZDial}, []netip.Addr{n.node.Addr()})
		if err != nil {
			return err
		}
		n.zdialSrv = newHTTPS("zdial", h, cert, n.log)
	}
	if n.node.Has(config.RoleMCS) {
		n.relay, err = relay.New(RelayConfig(cfg, n.node), relay.Deps{Log: n.log.With("component", "relay"), Registerer: n.reg})
		if err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		acfg := MCSAPIConfig(cfg)
		acfg.RUE = NewRUE(n.Profile())
		h, err := mcsapi.New(acfg, mcsapi.Deps{Store: n.store, LicenseKey: n.key,
			Log: n.log.With("component", "mcsapi"), Registerer: n.reg, Probe: n.relay,
			// An interpreter who becomes ready here is offered a call this
			// node holds at once; other nodes see it at their next pass.
			AgentChanged: func() {
				if n.sip != nil {
					n.sip.WakeACD()
				}
			}})
		if err != nil {
			return fmt.Errorf("mcs api: %w", err)
		}
		names := append([]string{cfg.Names.LBMCS, cfg.Names.SIPDomain}, n.node.Hosts...)
		cert, err := n.ca.Issue(names, []netip.Addr{n.node.Addr()})
		if err != nil {
			return err
		}
		var mcsHandler http.Handler = h
		if !cfg.WebPhone.Disabled {
			if n.web, err = n.newWebPhone(h); err != nil {
				return err
			}
			mcsHandler = n.web
		}
		n.mcsSrv = newHTTPS("mcs", mcsHandler, cert, n.log)
		scfg := SIPConfig(cfg, n.node)
		if cfg.Ports.SIPTLS != 0 {
			sipCert, err := sipCertificate(cfg, cert)
			if err != nil {
				return err
			}
			scfg.TLS = pki.ServerTLS(sipCert)
		}
		n.sip, err = sipserver.New(scfg, sipserver.Deps{
			Store: n.store, Relay: n.relay, LicenseKeys: []ed25519.PublicKey{n.key.Public().(ed25519.PublicKey)},
			Log: n.log.With("component", "sip"), Registerer: n.reg,
			// Calls are forwarded only to MCS nodes membership counts as
			// alive.
			Health: n.members,
		})
		if err != nil {
			return fmt.Errorf("sip: %w", err)
		}
	}
	return nil
}

// OpenStore opens the storage the config selects.
func OpenStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	switch cfg.Store.Driver {
	case "sqlite":
		p := cfg.Store.Path
		if !filepath.IsAbs(p) {
			p = filepath.Join(cfg.DataDir, p)
		}
		return openSQLite(ctx, p)
	case "postgres":
		return openPostgres(ctx, cfg.Store.DSN)
	default:
		return nil, fmt.Errorf("store driver %q is not supported by this build", cfg.Store.Driver)
	}
}

func (n *Node) port(p int) uint16 {
	if n.opts.EphemeralPorts {
		return 0
	}
	return uint16(p)
}

// Listen binds every role's sockets.
func (n *Node) Listen() error {
	bind := n.node.BindAddr()
	ports := n.cfg.Ports
	if n.dns != nil {
		if err := n.dns.Listen(netip.AddrPortFrom(bind, n.port(ports.DNS))); err != nil {
			return fmt.Errorf("dns: listen: %w", err)
		}
	}
	if n.zdialSrv != nil {
		if err := n.zdialSrv.listen(netip.AddrPortFrom(bind, n.port(ports.ZDialHTTPS))); err != nil {
			return err
		}
	}
	if n.mcsSrv != nil {
		if err := n.mcsSrv.listen(netip.AddrPortFrom(bind, n.port(ports.MCSHTTPS))); err != nil {
			return err
		}
		var tlsAddr netip.AddrPort
		if ports.SIPTLS != 0 {
			tlsAddr = netip.AddrPortFrom(bind, n.port(ports.SIPTLS))
		}
		if err := n.sip.Listen(netip.AddrPortFrom(bind, n.port(ports.SIP)), tlsAddr); err != nil {
			return fmt.Errorf("sip: listen: %w", err)
		}
	}
	l, err := net.Listen("tcp", netip.AddrPortFrom(bind, n.port(ports.Metrics)).String())
	if err != nil {
		return fmt.Errorf("metrics: listen: %w", err)
	}
	n.metricsL = l
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", n.ready)
	if n.sip != nil {
		// The operator's live view (z5d admin registrations, calls
		// --live): read-only, on the operations listener only.
		opview.Handle(mux, n.node.Name, n.sip)
	}
	n.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10}
	return nil
}

func (n *Node) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := n.store.Nodes(ctx); err != nil {
		http.Error(w, "store: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	if !n.members.Ready() {
		http.Error(w, "membership: node table not read yet", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// Addrs are the bound addresses by role name ("dns", "zdial", "mcs",
// "sip", "sip_tls" when SIP over TLS is on, "metrics").
func (n *Node) Addrs() map[string]netip.AddrPort {
	m := map[string]netip.AddrPort{}
	if n.dns != nil {
		m["dns"] = n.dns.Addr()
	}
	if n.zdialSrv != nil {
		m["zdial"] = n.zdialSrv.addr()
	}
	if n.mcsSrv != nil {
		m["mcs"] = n.mcsSrv.addr()
		m["sip"] = n.sip.Addr()
		if a := n.sip.TLSAddr(); a.IsValid() {
			m["sip_tls"] = a
		}
	}
	if n.metricsL != nil {
		m["metrics"] = netip.MustParseAddrPort(n.metricsL.Addr().String())
	}
	return m
}

// Store is the node's store (admin, demo provisioning).
func (n *Node) Store() store.Store { return n.store }

// Profile is the provider profile clients of this deployment use.
func (n *Node) Profile() *profile.Profile {
	return NewProfile(n.cfg, n.ca.CertPEM(), n.key.Public().(ed25519.PublicKey))
}

// Serve runs every role until ctx ends or one fails.
func (n *Node) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				errc <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	if n.dns != nil {
		run("dns", n.dns.Serve)
	}
	run("membership", n.members.Serve)
	if n.zdialSrv != nil {
		run("zdial", n.zdialSrv.serve)
	}
	if n.mcsSrv != nil {
		run("mcs", n.mcsSrv.serve)
		run("relay", n.relay.Serve)
		run("sip", n.sip.Serve)
	}
	run("metrics", func(ctx context.Context) error {
		go func() { <-ctx.Done(); n.metrics.Close() }()
		if err := n.metrics.Serve(n.metricsL); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	n.log.Info("node serving", "roles", n.node.Roles, "addrs", fmt.Sprint(n.Addrs()))
	<-ctx.Done()
	wg.Wait()
	close(errc)
	return <-errc // nil when every role stopped cleanly
}

// Close releases everything; safe to call more than once.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		if n.web != nil {
			errs = append(errs, n.web.Close()) // its tabs un-register first
		}
		if n.sip != nil {
			errs = append(errs, n.sip.Close())
		}
		if n.relay != nil {
			errs = append(errs, n.relay.Close())
		}
		for _, h := range []*httpsServer{n.zdialSrv, n.mcsSrv} {
			if h != nil {
				errs = append(errs, h.close())
			}
		}
		if n.dns != nil {
			errs = append(errs, n.dns.Close())
		}
		if n.metrics != nil {
			errs = append(errs, n.metrics.Close())
		} else if n.metricsL != nil {
			n.metricsL.Close()
		}
		errs = append(errs, n.store.Close())
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// httpsServer is one HTTPS role with every timeout set explicitly.
type httpsServer struct {
	name string
	srv  *http.Server
	ln   net.Listener
}

func newHTTPS(name string, h http.Handler, cert tls.Certificate, log *slog.Logger) *httpsServer {
	return &httpsServer{name: name, srv: &http.Server{
		Handler:           h,
		TLSConfig:         pki.ServerTLS(cert),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.With("component", name).Handler(), slog.LevelDebug),
	}}
}

func (h *httpsServer) listen(ap netip.AddrPort) error {
	l, err := net.Listen("tcp", ap.String())
	if err != nil {
		return fmt.Errorf("%s: listen: %w", h.name, err)
	}
	h.ln = tls.NewListener(l, h.srv.TLSConfig)
	return nil
}

func (h *httpsServer) addr() netip.AddrPort { return netip.MustParseAddrPort(h.ln.Addr().String()) }

func (h *httpsServer) serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.srv.Shutdown(sctx)
	}()
	if err := h.srv.Serve(h.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (h *httpsServer) close() error {
	if err := h.srv.Close(); err != nil {
		return err
	}
	if h.ln != nil {
		h.ln.Close()
	}
	return nil
}

// ProfileOf builds the provider profile of a deployment from its data dir
// (CA and license key), creating them when they do not exist yet.
func ProfileOf(cfg *config.Config) (*profile.Profile, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	ca, err := pki.LoadOrCreateCA(cfg.DataDir, cfg.Provider.Name)
	if err != nil {
		return nil, err
	}
	key, err := license.LoadOrCreateKey(filepath.Join(cfg.DataDir, "license.key"))
	if err != nil {
		return nil, err
	}
	return NewProfile(cfg, ca.CertPEM(), key.Public().(ed25519.PublicKey)), nil
}

// sipCertificate is the certificate SIP over TLS serves: the operator's
// [sip] tls_cert and tls_key when set (relative paths are in the data
// dir, like the database), else the MCS certificate from the deployment
// CA, which clients verify against the profile.
func sipCertificate(cfg *config.Config, fromCA tls.Certificate) (tls.Certificate, error) {
	if cfg.SIP.TLSCert == "" {
		return fromCA, nil
	}
	in := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(cfg.DataDir, p)
	}
	cert, err := tls.LoadX509KeyPair(in(cfg.SIP.TLSCert), in(cfg.SIP.TLSKey))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("sip.tls_cert/sip.tls_key: %w", err)
	}
	return cert, nil
}
