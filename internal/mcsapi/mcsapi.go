// Package mcsapi is the MCS HTTPS API, step 3 of the Z5 client: with the
// bearer token ZDial issued at number selection, a client fetches a signed
// license for its SIP stack and reads and edits the phone's address book,
// as JSON (ETag / If-Match, so no update is ever lost), as vCard 4.0 or
// xCard, or over CardDAV (internal/carddav, mounted here on the same
// book). It also serves the RFC 9248 provider configuration (internal/rue).
//
// The Service is an http.Handler; the caller owns the listener and TLS
// (HTTPServer returns an *http.Server with every timeout set). The wire
// format is documented in docs/api-mcs.md.
package mcsapi

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/apimetrics"
	"github.com/z5vrs/z5/internal/apiserver"
	"github.com/z5vrs/z5/internal/carddav"
	"github.com/z5vrs/z5/internal/clip"
	"github.com/z5vrs/z5/internal/floodguard"
	"github.com/z5vrs/z5/internal/rue"
	"github.com/z5vrs/z5/internal/store"
)

// Config is what licenses grant and how large a book and a request may be.
type Config struct {
	LicenseTTL  time.Duration
	Features    []string // granted in every license
	Issuer      string   // the licenses' "iss"
	MaxContacts int      // per number
	MaxBody     int64    // bytes of any request body
	// RUE is the RFC 9248 provider configuration served at rue.PathConfig
	// (rue.go); nil: not served. The provider builds it from the profile
	// (provider.NewRUE), which needs the CA and license key.
	RUE *rue.Config
	// Provider names the deployment in the RFC 9248 provider list.
	Provider string
	// RateLimit is the requests per second one address (an IPv6 /64) may
	// make, in bursts of RateBurst; beyond it: 429 with Retry-After. 0 or
	// less: no limit.
	RateLimit float64
	RateBurst int
	// MaxTrackedSources bounds the addresses whose buckets are kept (the
	// least recently active are forgotten).
	MaxTrackedSources int
}

// Store is what the MCS API needs of the provider's store: the address
// books (which CardDAV shares), sessions, and what a license names.
type Store interface {
	carddav.Store
	Customer(ctx context.Context, id int64) (store.Customer, error)
	Number(ctx context.Context, number string) (store.Number, error)
	RecordLicense(ctx context.Context, l store.License) error
}

// Deps are the collaborators of a Service.
type Deps struct {
	Store      Store
	LicenseKey ed25519.PrivateKey
	Log        *slog.Logger          // nil: discard
	Now        func() time.Time      // nil: time.Now
	Registerer prometheus.Registerer // nil: metrics are kept but not exported
	Probe      Prober                // the node's media relay; nil: probes answer 503
	// AgentChanged is told when an interpreter's state changes here, so
	// this node's queue dispatcher runs at once (nil: at its next tick).
	AgentChanged func()
}

// Service serves the MCS API. It is safe for concurrent use.
type Service struct {
	cfg     Config
	store   Store
	key     ed25519.PrivateKey
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics
	mux     *http.ServeMux
	dav     *carddav.Handler // CardDAV over the same books (dav.go)

	prober       Prober       // nil: no relay on this node
	agentChanged func()       // never nil
	probeLimit   probeLimiter // probe sessions per MCS session (probe.go)
	reqLimit     *floodguard.Limiter
}

// New validates cfg and deps and builds the Service.
func New(cfg Config, deps Deps) (*Service, error) {
	var c apiserver.Checks
	check := c.Check
	check(deps.Store == nil, "deps.Store is required")
	check(len(deps.LicenseKey) != ed25519.PrivateKeySize, "deps.LicenseKey: want an Ed25519 private key (%d bytes), got %d bytes", ed25519.PrivateKeySize, len(deps.LicenseKey))
	check(cfg.LicenseTTL < time.Minute, "LicenseTTL %s: must be at least 1m", cfg.LicenseTTL)
	check(cfg.Issuer == "", "Issuer is required")
	check(cfg.MaxContacts < 1, "MaxContacts %d: must be at least 1", cfg.MaxContacts)
	check(cfg.MaxBody < 1024, "MaxBody %d: must be at least 1024 bytes", cfg.MaxBody)
	check(cfg.MaxTrackedSources < 1, "MaxTrackedSources %d: must be at least 1", cfg.MaxTrackedSources)
	if err := c.Err("mcsapi config"); err != nil {
		return nil, err
	}
	cfg.Features = slices.Clone(cfg.Features)
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg:          cfg,
		store:        deps.Store,
		key:          deps.LicenseKey,
		log:          deps.Log,
		now:          deps.Now,
		metrics:      m,
		mux:          http.NewServeMux(),
		prober:       deps.Probe,
		agentChanged: deps.AgentChanged,
		reqLimit:     floodguard.NewLimiter(cfg.RateLimit, cfg.RateBurst, cfg.MaxTrackedSources),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.agentChanged == nil {
		s.agentChanged = func() {}
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.initDAV(); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

// Paths of the API.
const (
	PathLicense     = "/api/v1/license"
	PathContacts    = "/api/v1/contacts"
	PathContactsVCF = "/api/v1/contacts.vcf"
	PathHealth      = "/healthz"
)

func (s *Service) routes() {
	type route struct {
		pattern string
		methods map[string]handler
	}
	for _, rt := range []route{
		{PathLicense, map[string]handler{http.MethodPost: s.auth(s.handleLicense)}},
		{PathContacts, map[string]handler{
			http.MethodGet:  s.auth(s.handleListContacts),
			http.MethodPost: s.auth(s.handleCreateContact),
		}},
		{PathContacts + "/{id}", map[string]handler{
			http.MethodGet:    s.auth(s.handleGetContact),
			http.MethodPut:    s.auth(s.handlePutContact),
			http.MethodDelete: s.auth(s.handleDeleteContact),
		}},
		{PathContactsVCF, map[string]handler{
			http.MethodGet:  s.auth(s.handleExport(vcardFile)),
			http.MethodPost: s.auth(s.handleImport(vcardFile)),
		}},
		{PathContactsXML, map[string]handler{
			http.MethodGet:  s.auth(s.handleExport(xcardFile)),
			http.MethodPost: s.auth(s.handleImport(xcardFile)),
		}},
		{rue.PathConfig, map[string]handler{http.MethodGet: s.handleRUEConfig}},
		{rue.PathProviders, map[string]handler{http.MethodGet: s.handleRUEProviders}},
		{PathHealth, map[string]handler{http.MethodGet: s.handleHealth}},
		{PathProbe, map[string]handler{http.MethodPost: s.auth(s.handleProbe)}},
		{PathLocation, map[string]handler{http.MethodGet: s.auth(s.handleGetLocation), http.MethodPut: s.auth(s.handlePutLocation)}},
		{PathACDState, map[string]handler{http.MethodGet: s.auth(s.handleGetACDState), http.MethodPut: s.auth(s.handlePutACDState)}},
	} {
		var allow []string
		for method, h := range rt.methods {
			s.mux.Handle(method+" "+rt.pattern, s.wrap(h))
			allow = append(allow, method)
			if method == http.MethodGet {
				allow = append(allow, http.MethodHead)
			}
		}
		slices.Sort(allow)
		// Any other method on a known path: 405 in our JSON shape rather
		// than ServeMux's plain text.
		s.mux.Handle(rt.pattern, s.wrap(func(w http.ResponseWriter, r *http.Request) error {
			return errMethod(r.Method, allow)
		}))
	}
	s.davRoutes()
	s.mux.Handle("/", s.wrap(func(w http.ResponseWriter, r *http.Request) error {
		return &apiError{status: http.StatusNotFound, code: "not_found",
			msg: fmt.Sprintf("no such endpoint %s; see docs/api-mcs.md for the routes", clip.String(r.URL.Path, 64))}
	}))
}

// HTTPServer returns an *http.Server for s with every timeout set, so a
// slow or stalled client cannot hold a connection or goroutine forever.
// The read timeout leaves room for a full-size vCard upload on a slow line.
func (s *Service) HTTPServer(tlsConf *tls.Config) *http.Server {
	return apiserver.HTTPServer(s, tlsConf, s.log, 60*time.Second, 60*time.Second)
}

// ServeHTTP sets the headers every response carries and routes.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	apiserver.SetHeaders(h)
	if wait, ok := s.reqLimit.Allow(remoteIP(r)); !ok {
		s.metrics.Observe("rate_limited", http.StatusTooManyRequests, 0)
		h.Set("Retry-After", strconv.Itoa(floodguard.RetrySeconds(wait)))
		s.writeError(w, r, &apiError{status: http.StatusTooManyRequests, code: "rate_limited",
			msg: fmt.Sprintf("too many requests from your address; wait %d s and try again", floodguard.RetrySeconds(wait))})
		return
	}
	s.mux.ServeHTTP(w, r)
}

// remoteIP is the client's address: the HTTPS listener is the client's
// peer (no proxy in front of it).
func remoteIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// handler is a route's work; a returned error becomes the JSON error body.
type handler func(http.ResponseWriter, *http.Request) error

// wrap turns a handler into an http.Handler with error bodies, panic
// recovery, metrics and a debug access log.
func (s *Service) wrap(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now() // real time: durations must not follow a test clock
		sw := &apimetrics.StatusWriter{ResponseWriter: w}
		route := r.Pattern
		if route == "" || route == "/" {
			route = "other"
		}
		defer func() {
			apiserver.Recovered(recover(), s.log, "mcs", route, sw, func() { s.writeError(sw, r, errInternal) })
			d := time.Since(start)
			s.metrics.Observe(route, sw.Status, d)
			if s.log.Enabled(r.Context(), slog.LevelDebug) {
				s.log.Debug("mcs request", "method", r.Method, "route", route, "status", sw.Status,
					"duration", d, "remote_addr", r.RemoteAddr)
			}
		}()
		if err := h(sw, r); err != nil {
			s.writeError(sw, r, err)
		}
	})
}

func (s *Service) handleHealth(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
}
