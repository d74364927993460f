// Package floodguard keeps hostile sources away from a network service, in
// the manner of Kamailio's pike module: it counts events per source address
// (failed authentications, requests refused by a rate limit) in sliding
// windows, bans a source that crosses a threshold, and doubles the ban for
// each repeat offence up to a ceiling. A service asks Banned before it
// spends anything on a packet or connection, and Records what a source did
// after.
//
// Sources are single IPv4 addresses and IPv6 /64 networks (one host usually
// holds a whole /64, so per-address state would be trivial to evade). Memory
// is bounded: at most MaxSources are tracked, the least recently active
// evicted first. Sources in the allowlist (the deployment's own nodes, and
// loopback when asked) are never counted or banned.
//
// Guard and Limiter are safe for concurrent use and start no goroutines;
// time is read from time.Now, so testing/synctest drives them.
package floodguard

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/lru"
)

// Threshold is how many events of one kind within Window earn a ban.
type Threshold struct {
	Count  int // 0: this kind is counted but never bans
	Window time.Duration
}

// Config tunes a Guard.
type Config struct {
	// Thresholds by event kind ("auth_failure", "rate_limited", ...). The
	// kind is also the reason label of the ban metric and log line.
	Thresholds map[string]Threshold
	// BanTime is the first ban of a source; each further offence doubles
	// it, up to MaxBanTime.
	BanTime    time.Duration
	MaxBanTime time.Duration
	// Forget clears a source's offence count once it has been clean this
	// long, so an old offence does not lengthen a new ban.
	Forget time.Duration
	// MaxSources bounds the tracked sources.
	MaxSources int
	// Allow lists networks that are never counted or banned: the
	// deployment's own nodes, monitoring.
	Allow []netip.Prefix
	// AllowLoopback adds 127.0.0.0/8 and ::1 to Allow.
	AllowLoopback bool
}

// Deps are a Guard's collaborators.
type Deps struct {
	// Service names the guarded service in metrics ("sip"); Log says
	// which component it guards.
	Service    string
	Log        *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: metrics are kept but not exported
	// OnBan, when set, is called after a source is banned (outside the
	// guard's lock), e.g. to close the source's open connections.
	OnBan func(Ban)
}

// Ban describes one ban as it is imposed.
type Ban struct {
	Source   netip.Prefix // the address (/32) or IPv6 /64 banned
	Reason   string       // the event kind whose threshold was crossed
	Events   int          // events counted in the window
	Duration time.Duration
	Until    time.Time
	Offence  int // 1 for the first ban, 2 for the next...
}

// Guard tracks sources and their bans.
type Guard struct {
	cfg     Config
	kinds   []string    // event kinds, sorted; index into source.windows
	limits  []Threshold // by kind index
	allow   []netip.Prefix
	service string
	log     *slog.Logger
	onBan   func(Ban)
	m       *metrics

	mu      sync.Mutex // guards sources
	sources *lru.Map[netip.Prefix, *source]
}

// source is one tracked address or /64.
type source struct {
	windows     []window // by kind index
	bannedUntil time.Time
	offences    int
	lastOffence time.Time
}

// New validates cfg and builds a Guard. Every duration and bound is
// required: the deployment config (internal/config) fills them.
func New(cfg Config, deps Deps) (*Guard, error) {
	var errs []error
	switch {
	case cfg.BanTime <= 0:
		errs = append(errs, fmt.Errorf("BanTime %s: must be positive", cfg.BanTime))
	case cfg.MaxBanTime < cfg.BanTime:
		errs = append(errs, fmt.Errorf("MaxBanTime %s: below BanTime %s", cfg.MaxBanTime, cfg.BanTime))
	}
	if cfg.Forget <= 0 {
		errs = append(errs, fmt.Errorf("Forget %s: must be positive", cfg.Forget))
	}
	if cfg.MaxSources < 1 {
		errs = append(errs, fmt.Errorf("MaxSources %d: must be at least 1", cfg.MaxSources))
	}
	g := &Guard{cfg: cfg, service: deps.Service, log: deps.Log, onBan: deps.OnBan}
	for k := range cfg.Thresholds {
		g.kinds = append(g.kinds, k)
	}
	slices.Sort(g.kinds)
	for _, k := range g.kinds {
		th := cfg.Thresholds[k]
		if k == "" {
			errs = append(errs, errors.New("Thresholds: empty event kind"))
		}
		if th.Count < 0 || th.Count > 0 && th.Window <= 0 {
			errs = append(errs, fmt.Errorf("Thresholds[%q]: need Count >= 0 and, with a Count, a positive Window (got %d in %s)", k, th.Count, th.Window))
		}
		g.limits = append(g.limits, th)
	}
	for _, p := range cfg.Allow {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("Allow: invalid prefix %v", p))
			continue
		}
		g.allow = append(g.allow, netip.PrefixFrom(p.Addr().Unmap(), unmappedBits(p)).Masked())
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("floodguard config: %w", errors.Join(errs...))
	}
	if cfg.AllowLoopback {
		g.allow = append(g.allow, netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.sources = lru.New[netip.Prefix, *source](cfg.MaxSources)
	m, err := newMetrics(g, deps.Registerer)
	if err != nil {
		return nil, err
	}
	g.m = m
	return g, nil
}

// unmappedBits is a prefix's length once an IPv4-mapped address is
// written as IPv4.
func unmappedBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return max(p.Bits()-96, 0)
	}
	return p.Bits()
}

// Key is the source an address counts as: itself for IPv4, its /64 for
// IPv6.
func Key(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := ip.BitLen()
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// Allowed reports whether ip is in the allowlist.
func (g *Guard) Allowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range g.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Banned reports whether ip is banned now. It is the check a service makes
// before spending anything on a packet or connection: one map lookup.
func (g *Guard) Banned(ip netip.Addr) bool {
	_, ok := g.BannedFor(ip)
	return ok
}

// BannedFor reports whether ip is banned and for how much longer.
func (g *Guard) BannedFor(ip netip.Addr) (time.Duration, bool) {
	if !ip.IsValid() {
		return 0, false
	}
	now := time.Now()
	key := Key(ip)
	g.mu.Lock()
	src, ok := g.sources.Peek(key)
	var left time.Duration
	if ok {
		left = src.bannedUntil.Sub(now)
	}
	g.mu.Unlock()
	if left <= 0 {
		return 0, false
	}
	return left, true
}

// Record counts one event of kind from ip and reports whether the source
// is banned (already, or by this event). Unknown kinds and allowlisted
// sources are not counted.
func (g *Guard) Record(ip netip.Addr, kind string) bool {
	k, found := slices.BinarySearch(g.kinds, kind)
	if !found || !ip.IsValid() || g.Allowed(ip) {
		return false
	}
	th := g.limits[k]
	now := time.Now()
	key := Key(ip)

	g.mu.Lock()
	src, ok := g.sources.Get(key)
	if !ok {
		src = &source{windows: make([]window, len(g.kinds))}
		if evicted := g.sources.Add(key, src); evicted {
			g.m.evicted.Inc()
		}
	}
	if now.Before(src.bannedUntil) {
		g.mu.Unlock()
		return true
	}
	n := src.windows[k].add(now, th.Window)
	if th.Count == 0 || n < float64(th.Count) {
		g.mu.Unlock()
		return false
	}
	if now.Sub(src.lastOffence) > g.cfg.Forget {
		src.offences = 0
	}
	src.offences++
	d := g.cfg.BanTime
	for i := 1; i < src.offences && d < g.cfg.MaxBanTime; i++ {
		d *= 2
	}
	d = min(d, g.cfg.MaxBanTime)
	src.bannedUntil = now.Add(d)
	src.lastOffence = now
	clear(src.windows) // a new ban starts from a clean count
	ban := Ban{Source: key, Reason: kind, Events: int(n), Duration: d, Until: src.bannedUntil, Offence: src.offences}
	g.mu.Unlock()

	g.m.bans.WithLabelValues(kind).Inc()
	// Addresses only: no user names, credentials or message content.
	g.log.Warn("source banned", "source", ban.Source.String(), "reason", kind,
		"events", ban.Events, "window", th.Window, "duration", d, "offence", ban.Offence)
	if g.onBan != nil {
		g.onBan(ban)
	}
	return true
}

// Unban lifts a ban on ip's source (operator action); its offence count
// stays.
func (g *Guard) Unban(ip netip.Addr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if src, ok := g.sources.Peek(Key(ip)); ok {
		src.bannedUntil = time.Time{}
	}
}

// Bans returns the sources banned now.
func (g *Guard) Bans() []Ban {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []Ban
	g.sources.Each(func(k netip.Prefix, s *source) {
		if now.Before(s.bannedUntil) {
			out = append(out, Ban{Source: k, Until: s.bannedUntil, Duration: s.bannedUntil.Sub(now), Offence: s.offences})
		}
	})
	return out
}

// Tracked is the number of sources held.
func (g *Guard) Tracked() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sources.Len()
}

// window is a sliding-window event counter of constant size: the counts of
// the current and the previous fixed window, the previous one weighted by
// how much of it still overlaps the sliding window (the estimate Cloudflare
// and nginx use; exact enough to tell a flood from a user).
type window struct {
	start     time.Time // start of the current fixed window
	cur, prev int
}

// add counts one event at now and returns the events in the sliding
// window ending at now.
func (w *window) add(now time.Time, size time.Duration) float64 {
	switch elapsed := now.Sub(w.start); {
	case w.start.IsZero() || elapsed >= 2*size || elapsed < 0:
		w.start, w.cur, w.prev = now, 0, 0
	case elapsed >= size:
		w.start, w.prev, w.cur = w.start.Add(size), w.cur, 0
	}
	w.cur++
	overlap := 1 - float64(now.Sub(w.start))/float64(size)
	return float64(w.prev)*max(overlap, 0) + float64(w.cur)
}

// metrics are a Guard's Prometheus series, labelled with its service.
type metrics struct {
	bans    *prometheus.CounterVec
	evicted prometheus.Counter
}

func newMetrics(g *Guard, reg prometheus.Registerer) (*metrics, error) {
	labels := prometheus.Labels{"service": g.service}
	m := &metrics{
		bans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "z5", Subsystem: "floodguard", Name: "bans_total", ConstLabels: labels,
			Help: "Sources banned, by the event kind that crossed its threshold.",
		}, []string{"reason"}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "z5", Subsystem: "floodguard", Name: "evictions_total", ConstLabels: labels,
			Help: "Tracked sources dropped to stay within the source limit.",
		}),
	}
	for _, k := range g.kinds {
		m.bans.WithLabelValues(k) // every reason is exported from the start, at 0
	}
	if reg == nil {
		return m, nil
	}
	tracked := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "z5", Subsystem: "floodguard", Name: "tracked_sources", ConstLabels: labels,
		Help: "Sources whose events are being counted.",
	}, func() float64 { return float64(g.Tracked()) })
	banned := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "z5", Subsystem: "floodguard", Name: "banned_sources", ConstLabels: labels,
		Help: "Sources banned now.",
	}, func() float64 { return float64(len(g.Bans())) })
	for _, c := range []prometheus.Collector{m.bans, m.evicted, tracked, banned} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("floodguard metrics: %w", err)
		}
	}
	return m, nil
}
