// Package webphone is the browser phone the MCS serves on its HTTPS port:
// the page itself (embedded, no build step, nothing fetched from
// elsewhere), sign-in forwarded to ZDial on the same origin, and the
// gateway that makes each browser tab one more registered endpoint of its
// number. A tab's signalling is a WebSocket authenticated with the MCS
// token; the gateway runs a SIP user agent per tab that registers with the
// node's own SIP listener (over TLS when the node serves it, else TCP)
// using the tab's device credentials, so the registrar and proxy treat it
// like any Z5 client. Media is WebRTC (pion) terminated here — ICE-lite
// host candidates in the RTP range, DTLS-SRTP, BUNDLE, rtcp-mux — and
// bridged without transcoding (H.264 constrained baseline and PCMU) to the
// relay ports the call's SDP names, as SDES-SRTP whenever the SIP side
// offers or accepts it.
package webphone

import (
	"context"
	"crypto/x509"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/floodguard"
	"github.com/z5vrs/z5/internal/opview"
	"github.com/z5vrs/z5/internal/store"
)

//go:embed static
var staticFS embed.FS

// Config is where the gateway runs and its bounds.
type Config struct {
	config.WebPhone
	// Bind is the address of the gateway's media sockets: the ICE host
	// candidates the browser sends to and the sockets toward the relay.
	Bind netip.Addr
	// RTP is the deployment's media port range; ICE ports come from it so
	// the customer's firewall needs nothing new.
	RTP config.PortRange
	// Domain is the SIP domain numbers register in.
	Domain string
	// UserAgent names the gateway's SIP user agents.
	UserAgent string
	// SIPName is the MCS host name the node's SIP certificate is verified
	// for when the tabs register over TLS.
	SIPName string
	// RateLimit requests per second (bursts of RateBurst) from one source
	// may open WebSockets, sign in or read the operator view, as the MCS
	// API allows ([mcs] rate_limit); 0: no limit. MaxTrackedSources bounds
	// the sources remembered.
	RateLimit         float64
	RateBurst         int
	MaxTrackedSources int
}

// Sessions finds MCS sessions by token hash (the store).
type Sessions interface {
	Session(ctx context.Context, tokenHash []byte) (store.Session, error)
}

// CallLog lists a number's call records for the page's history.
type CallLog interface {
	ListCalls(ctx context.Context, f store.CallFilter) ([]store.Call, error)
}

// Relay is the node's media relay: it must accept the gateway's sockets,
// which sit on the node's own address, as a customer's.
type Relay interface {
	AllowLocal(ap netip.AddrPort) (release func())
}

// Deps are the gateway's collaborators.
type Deps struct {
	Sessions Sessions
	Calls    CallLog // nil: no history
	// API serves every path that is not the web phone's (the MCS API).
	API http.Handler
	// ZDial answers the forwarded sign-in (login, select, logout): the
	// node's own ZDial handler, or a proxy to a ZDial node.
	ZDial http.Handler
	// SIP is the node's SIP TCP listener, known once it listens.
	SIP func() netip.AddrPort
	// SIPTLS is the node's SIP TLS listener (zero when the node serves no
	// TLS; nil: never): when set, tabs register over TLS there, verifying
	// the server against SIPRoots for Config.SIPName.
	SIPTLS   func() netip.AddrPort
	SIPRoots *x509.CertPool
	Relay    Relay // nil: no exemption needed (tests on loopback)
	// Accounts and Live feed the staff's operator view (nil: no view);
	// Node names this node in it.
	Accounts Accounts
	Live     opview.Source
	Node     string
	Log      *slog.Logger
	Now      func() time.Time
}

// Gateway serves the web phone and its tabs.
type Gateway struct {
	cfg    Config
	deps   Deps
	log    *slog.Logger
	mux    *http.ServeMux
	assets fs.FS
	limit  *floodguard.Limiter
	// keepalive and pingTimeout time each tab's CRLF pings, refresh its
	// registration refresh and session check (tests shorten them).
	keepalive, pingTimeout, refresh time.Duration

	mu       sync.Mutex // guards the following
	closed   bool
	tabs     map[*tab]struct{}
	byNumber map[string]int
	wg       sync.WaitGroup
}

// Paths of the web phone on the MCS origin.
const (
	PathApp   = "/"
	PathWeb   = "/web/"
	PathWS    = "/web/ws"
	PathZDial = "/web/zdial/"
)

// New checks cfg and deps and builds the gateway.
func New(cfg Config, deps Deps) (*Gateway, error) {
	var errs []error
	if deps.Sessions == nil || deps.API == nil || deps.ZDial == nil || deps.SIP == nil {
		errs = append(errs, errors.New("Sessions, API, ZDial and SIP are required"))
	}
	if deps.SIPTLS != nil && (deps.SIPRoots == nil || cfg.SIPName == "") {
		errs = append(errs, errors.New("SIPTLS needs SIPRoots and SIPName"))
	}
	if !cfg.Bind.IsValid() {
		errs = append(errs, errors.New("Bind is required"))
	}
	if cfg.RTP.Min < 1024 || cfg.RTP.Max > 65535 || cfg.RTP.Min > cfg.RTP.Max {
		errs = append(errs, fmt.Errorf("RTP range %d-%d is invalid", cfg.RTP.Min, cfg.RTP.Max))
	}
	if cfg.MaxTabs < 1 || cfg.MaxTabsPerNumber < 1 || cfg.MaxMessage < 4096 || cfg.AuthTimeout <= 0 || cfg.IdleTimeout <= 0 {
		errs = append(errs, errors.New("bounds must be positive (config.WebPhone defaults)"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("webphone: %w", err)
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "Z5 web phone"
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, deps: deps, log: deps.Log, assets: sub, mux: http.NewServeMux(),
		keepalive: keepaliveEvery, pingTimeout: pingWriteTimeout, refresh: registerExpires * time.Second * 8 / 10,
		tabs: map[*tab]struct{}{}, byNumber: map[string]int{}}
	g.mux.HandleFunc("GET /{$}", g.serveAsset("index.html"))
	g.mux.HandleFunc("GET "+PathWeb+"{file}", func(w http.ResponseWriter, r *http.Request) {
		g.serveAsset(r.PathValue("file"))(w, r)
	})
	g.limit = floodguard.NewLimiter(cfg.RateLimit, cfg.RateBurst, max(cfg.MaxTrackedSources, 1))
	g.mux.HandleFunc("GET "+PathWS, g.limited(g.serveWS))
	g.mux.HandleFunc("POST "+PathZDial+"{op}", g.limited(g.forwardZDial))
	g.mux.HandleFunc("GET "+PathOperator, g.limited(g.serveOperator))
	g.mux.HandleFunc(PathWeb, http.NotFound) // nothing else under /web/
	g.mux.Handle("/", deps.API)
	return g, nil
}

// ServeHTTP routes the web phone's paths and hands the rest to the API.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.mux.ServeHTTP(w, r) }

// csp is the web routes' policy: everything from this origin only, the
// WebSocket to this origin, media from the page's own streams.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"media-src 'self' blob: mediastream:; connect-src 'self'; manifest-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// setWebHeaders are the headers of every web phone response.
func setWebHeaders(h http.Header) {
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Strict-Transport-Security", "max-age=31536000")
	h.Set("Permissions-Policy", "camera=(self), microphone=(self), geolocation=()")
}

func (g *Gateway) serveAsset(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ext := name[strings.LastIndexByte(name, '.')+1:]
		ct, ok := contentTypes["."+ext]
		if !ok || strings.Contains(name, "/") {
			http.NotFound(w, r)
			return
		}
		b, err := fs.ReadFile(g.assets, name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		setWebHeaders(h)
		h.Set("Content-Type", ct)
		h.Set("Cache-Control", "no-cache")
		w.Write(b)
	}
}

// forwardZDial hands the page's sign-in to ZDial's API on the same origin,
// so the browser needs no cross-origin request (in dev it cannot even
// resolve ZDial's name).
func (g *Gateway) forwardZDial(w http.ResponseWriter, r *http.Request) {
	op := r.PathValue("op")
	switch op {
	case "login", "select", "logout":
	default:
		http.NotFound(w, r)
		return
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/api/v1/" + op
	r2.URL.RawPath = ""
	r2.RequestURI = ""
	w.Header().Set("Cache-Control", "no-store")
	g.deps.ZDial.ServeHTTP(w, r2)
}

// limited answers 429 to a source over the rate limit (the MCS API's own
// limit covers the API paths).
func (g *Gateway) limited(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var src netip.Addr
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			src = ap.Addr().Unmap()
		}
		if wait, ok := g.limit.Allow(src); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(floodguard.RetrySeconds(wait)))
			http.Error(w, "too many requests from your address; try again later", http.StatusTooManyRequests)
			return
		}
		h(w, r)
	}
}

// admit counts a new tab of number, or says why not.
func (g *Gateway) admit(t *tab, number string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.closed:
		return errors.New("the server is shutting down")
	case len(g.tabs) >= g.cfg.MaxTabs:
		return errors.New("this server has too many web phones open; try again later")
	case g.byNumber[number] >= g.cfg.MaxTabsPerNumber:
		return fmt.Errorf("number %s is already open in %d tabs; close one first", number, g.cfg.MaxTabsPerNumber)
	}
	g.tabs[t] = struct{}{}
	g.byNumber[number]++
	g.wg.Add(1) // Close waits for the tab to end
	return nil
}

func (g *Gateway) release(t *tab, number string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.tabs[t]; !ok {
		return
	}
	delete(g.tabs, t)
	if g.byNumber[number]--; g.byNumber[number] <= 0 {
		delete(g.byNumber, number)
	}
	g.wg.Done()
}

// Tabs is the number of open tabs.
func (g *Gateway) Tabs() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.tabs)
}

// Close ends every tab (hanging up their calls, un-registering) and
// waits for them; idempotent.
func (g *Gateway) Close() error {
	g.mu.Lock()
	g.closed = true
	tabs := make([]*tab, 0, len(g.tabs))
	for t := range g.tabs {
		tabs = append(tabs, t)
	}
	g.mu.Unlock()
	for _, t := range tabs {
		t.stop()
	}
	g.wg.Wait()
	return nil
}
