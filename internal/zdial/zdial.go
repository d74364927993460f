// Package zdial is step 2 of the Z5 client: the HTTPS JSON service where a
// customer logs in with username and password, sees the phone numbers of
// their profile and chooses the one this installation will use. Choosing a
// number yields everything steps 3-5 need: the MCS names, fresh SIP digest
// credentials for this device, and a bearer token for the MCS API.
//
// The Service is an http.Handler; the caller owns the listener and TLS
// (HTTPServer returns an *http.Server with every timeout set). The wire
// format is documented in docs/api-zdial.md.
package zdial

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/apimetrics"
	"github.com/z5vrs/z5/internal/apiserver"
	"github.com/z5vrs/z5/internal/clip"
	"github.com/z5vrs/z5/internal/password"
	"github.com/z5vrs/z5/internal/store"
)

// Config is what ZDial hands out and how it guards logins.
type Config struct {
	SIPDomain string   // SIP domain the client registers in (mcs.csdvrs.com)
	LBMCS     string   // lb.mcs name: healthy MCS nodes
	MCSHosts  []string // mcs1.mcs..., mcs2.mcs...: failover order
	SIPPort   int
	Realm     string // digest realm

	SessionTTL time.Duration // login token lifetime
	// MaxFailures failed logins for one username from one source (an
	// IPv4 address or IPv6 /64) lock that pair for Lockout: a guesser is
	// stopped without locking the account's owner out from elsewhere.
	MaxFailures int
	// AccountMaxFailures failed logins for one account from all sources
	// together lock the account for Lockout (guessing from many sources).
	AccountMaxFailures int
	// SourceMaxFailures failed logins from one source, draining over
	// Lockout, stop further logins from it (guessing across many
	// usernames). Only failures count, so an office behind one NAT
	// address can log everyone in.
	SourceMaxFailures int
	Lockout           time.Duration
	// PerIPRate login attempts per minute from one source, in bursts of
	// PerIPBurst, right or wrong: bounds the argon2 work one source can
	// cause.
	PerIPRate  int
	PerIPBurst int
	// MCSTokenTTL is the MCS API token lifetime; never beyond the login
	// session it was made from.
	MCSTokenTTL time.Duration
	// RateLimit is the requests per second one source may make to any
	// endpoint, in bursts of RateBurst; beyond it: 429 with Retry-After.
	// 0 or less: no limit.
	RateLimit float64
	RateBurst int
}

// Store is what ZDial needs of the provider's store: accounts, numbers,
// devices and login sessions.
type Store interface {
	CustomerByUsername(ctx context.Context, username string) (store.Customer, error)
	Customer(ctx context.Context, id int64) (store.Customer, error)
	SetPasswordHash(ctx context.Context, customerID int64, hash string) error
	RecordLoginFailure(ctx context.Context, customerID int64, now time.Time, maxFailures int, lockout time.Duration) (store.Customer, error)
	ResetLoginFailures(ctx context.Context, customerID int64) error
	NumbersOf(ctx context.Context, customerID int64) ([]store.Number, error)
	DevicesOf(ctx context.Context, number string) ([]store.Device, error)
	CreateDevice(ctx context.Context, d store.Device) (store.Device, error)
	UpdateDeviceCredentials(ctx context.Context, id int64, cred store.Credentials) error
	CreateSession(ctx context.Context, s store.Session) error
	Session(ctx context.Context, tokenHash []byte) (store.Session, error)
	RevokeSession(ctx context.Context, tokenHash []byte, now time.Time) error
}

// Deps are the collaborators of a Service.
type Deps struct {
	Store      Store
	Log        *slog.Logger          // nil: discard
	Now        func() time.Time      // nil: time.Now
	Registerer prometheus.Registerer // nil: metrics are kept but not exported
	// PasswordParams are the argon2id parameters new hashes get (the
	// rehash after a login, the dummy hash); zero: password.Default().
	PasswordParams password.Params
}

// Limits of the HTTP surface.
const (
	maxBody        = 64 << 10 // bytes of any request body
	maxUsername    = 256      // bytes
	maxDeviceName  = 64       // characters
	maxInstanceID  = 256      // bytes
	maxDevices     = 100      // Z5 devices per number, so a client cannot create them without bound
	maxTrackedIPs  = 10000    // per-source buckets kept (least recently used evicted)
	maxPhantoms    = 10000    // unknown usernames whose failures are tracked
	maxPairs       = 50000    // (source, username) failure counts kept
	hashWait       = 10 * time.Second
	retryBusyAfter = 2 * time.Second
)

// Service serves the ZDial API. It is safe for concurrent use.
type Service struct {
	cfg     Config
	store   Store
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics
	routes  map[string]route
	// dummyHash is verified for unknown usernames so that a login for a
	// name that does not exist costs the same argon2 time as a wrong
	// password for one that does.
	dummyHash string
	// hashSem bounds concurrent argon2 runs: each allocates ~19 MiB, and a
	// login flood from many addresses must not exhaust memory.
	hashSem chan struct{}

	// hashWait bounds the wait for a hash slot; hashWaiting counts the
	// logins waiting now.
	hashWait    time.Duration
	hashWaiting atomic.Int64
	params      password.Params

	// Per source (sourceKey) and per name; see handleLogin for the order.
	reqLimit *buckets[netip.Prefix] // every request; nil: no limit
	attempts *buckets[netip.Prefix] // login attempts
	srcFails *buckets[netip.Prefix] // failed logins
	pairs    *locks                 // failed logins per (source, username)
	phantoms *locks                 // failed logins per unknown username
	// devMu serializes find-or-create of devices so two selections from
	// one installation at once do not create two devices.
	devMu chan struct{}
}

type route struct {
	methods []string
	handle  func(http.ResponseWriter, *http.Request) error
}

// New validates cfg and builds the Service.
func New(cfg Config, deps Deps) (*Service, error) {
	var c apiserver.Checks
	check := c.Check
	check(deps.Store == nil, "deps.Store is required")
	check(cfg.SIPDomain == "", "SIPDomain is required")
	check(cfg.Realm == "", "Realm is required")
	check(cfg.LBMCS == "", "LBMCS is required")
	check(len(cfg.MCSHosts) == 0, "MCSHosts: at least one MCS host name is required")
	check(cfg.SIPPort < 1 || cfg.SIPPort > 65535, "SIPPort %d out of range 1-65535", cfg.SIPPort)
	check(cfg.SessionTTL < time.Minute, "SessionTTL %s: must be at least 1m", cfg.SessionTTL)
	check(cfg.MCSTokenTTL < time.Minute, "MCSTokenTTL %s: must be at least 1m", cfg.MCSTokenTTL)
	check(cfg.MaxFailures < 1, "MaxFailures %d: must be at least 1", cfg.MaxFailures)
	check(cfg.AccountMaxFailures < 1, "AccountMaxFailures %d: must be at least 1", cfg.AccountMaxFailures)
	check(cfg.SourceMaxFailures < 1, "SourceMaxFailures %d: must be at least 1", cfg.SourceMaxFailures)
	check(cfg.Lockout <= 0, "Lockout %s: must be positive", cfg.Lockout)
	check(cfg.PerIPRate < 1, "PerIPRate %d: must be at least 1 per minute", cfg.PerIPRate)
	check(cfg.PerIPBurst < 1, "PerIPBurst %d: must be at least 1", cfg.PerIPBurst)
	check(cfg.RateLimit > 0 && cfg.RateBurst < 1, "RateBurst %d: must be at least 1", cfg.RateBurst)
	if err := c.Err("zdial config"); err != nil {
		return nil, err
	}
	cfg.MCSHosts = slices.Clone(cfg.MCSHosts)

	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	params := deps.PasswordParams
	if params == (password.Params{}) {
		params = password.Default()
	}
	dummy, err := password.HashWith(params, store.NewToken())
	if err != nil {
		return nil, fmt.Errorf("zdial: dummy password hash: %w", err)
	}
	s := &Service{
		cfg:       cfg,
		store:     deps.Store,
		log:       deps.Log,
		now:       deps.Now,
		metrics:   m,
		dummyHash: dummy,
		hashSem:   make(chan struct{}, max(2, runtime.GOMAXPROCS(0))),
		hashWait:  hashWait,
		params:    params,
		attempts:  newBuckets[netip.Prefix](cfg.PerIPBurst, float64(cfg.PerIPRate)/60, maxTrackedIPs),
		srcFails: newBuckets[netip.Prefix](cfg.SourceMaxFailures,
			float64(cfg.SourceMaxFailures)/cfg.Lockout.Seconds(), maxTrackedIPs),
		pairs:    newLocks(cfg.MaxFailures, cfg.Lockout, maxPairs),
		phantoms: newLocks(cfg.AccountMaxFailures, cfg.Lockout, maxPhantoms),
		devMu:    make(chan struct{}, 1),
	}
	if cfg.RateLimit > 0 {
		s.reqLimit = newBuckets[netip.Prefix](cfg.RateBurst, cfg.RateLimit, maxTrackedIPs)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	post := []string{http.MethodPost}
	get := []string{http.MethodGet, http.MethodHead}
	s.routes = map[string]route{
		"/api/v1/login":   {post, s.handleLogin},
		"/api/v1/select":  {post, s.handleSelect},
		"/api/v1/logout":  {post, s.handleLogout},
		"/api/v1/session": {get, s.handleSession},
		"/healthz":        {get, s.handleHealth},
	}
	return s, nil
}

// HTTPServer returns an *http.Server for s with every timeout set, so a
// slow or stalled client cannot hold a connection or goroutine forever.
// The write timeout leaves room for a login waiting on a busy argon2 slot.
func (s *Service) HTTPServer(tlsConf *tls.Config) *http.Server {
	return apiserver.HTTPServer(s, tlsConf, s.log, 30*time.Second, hashWait+30*time.Second)
}

// ServeHTTP routes a request, sets the headers every response carries and
// turns handler errors into JSON error bodies.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &apimetrics.StatusWriter{ResponseWriter: w}
	h := sw.Header()
	apiserver.SetHeaders(h)
	// Tokens and SIP passwords travel in responses: no cache may keep any.
	h.Set("Cache-Control", "no-store")

	label := "other"
	defer func() {
		apiserver.Recovered(recover(), s.log, "zdial", label, sw, func() { s.writeError(sw, r, errInternal) })
		s.metrics.Observe(label, sw.Status, time.Since(start))
	}()

	if wait, ok := s.allowRequest(r); !ok {
		label = "rate_limited"
		s.writeError(sw, r, &apiError{status: http.StatusTooManyRequests, code: "rate_limited", retryAfter: wait,
			msg: fmt.Sprintf("too many requests from your address; wait %s and try again", roundUp(wait))})
		return
	}
	rt, ok := s.routes[r.URL.Path]
	if !ok {
		s.writeError(sw, r, &apiError{status: http.StatusNotFound, code: "not_found",
			msg: fmt.Sprintf("no such endpoint %s; see docs/api-zdial.md for the routes", clip.String(r.URL.Path, 64))})
		return
	}
	label = r.URL.Path
	if !slices.Contains(rt.methods, r.Method) {
		allow := strings.Join(rt.methods, ", ")
		s.writeError(sw, r, &apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed",
			msg:   fmt.Sprintf("%s does not accept %s; use %s", r.URL.Path, clip.String(r.Method, 16), allow),
			allow: allow})
		return
	}
	if err := rt.handle(sw, r); err != nil {
		s.writeError(sw, r, err)
	}
}

// allowRequest charges the request to its source's bucket.
func (s *Service) allowRequest(r *http.Request) (time.Duration, bool) {
	if s.reqLimit == nil {
		return 0, true
	}
	return s.reqLimit.take(sourceKey(clientIP(r)), s.now())
}

func (s *Service) handleHealth(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte("ok\n"))
	}
	return nil
}
