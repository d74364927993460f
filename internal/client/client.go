// Package client is the Z5 client core, usable by the z5 command line and
// later by a GUI: the five steps of the seed (resolve the provider's names
// through its own nameservers, log in to ZDial and choose a number, fetch the
// license and address book from the MCS, register over SIP/TCP, and place or
// answer calls whose media is relayed by the MCS).
package client

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/z5vrs/z5/internal/profile"
	"github.com/z5vrs/z5/internal/resolver"
)

// The five steps, as the seed numbers them.
const (
	StepDNS     = 1
	StepZDial   = 2
	StepMCS     = 3
	StepSIP     = 4
	StepMedia   = 5
	stepUnknown = 0
)

// StepNames label the steps in messages.
var StepNames = map[int]string{
	StepDNS:   "DNS resolution",
	StepZDial: "ZDial login",
	StepMCS:   "MCS license and address book",
	StepSIP:   "SIP signalling",
	StepMedia: "RTP media",
}

// Sentinel errors callers branch on.
var (
	ErrNotLoggedIn    = errors.New("not logged in")
	ErrBadCredentials = errors.New("wrong username or password")
	ErrLocked         = errors.New("too many attempts")
	ErrNumberRequired = errors.New("this account has several numbers")
	ErrNoLicense      = errors.New("no valid license")
	ErrUnavailable    = errors.New("not available")
	ErrBusy           = errors.New("busy")
	ErrDeclined       = errors.New("declined")
	ErrCallingSelf    = errors.New("that is your own number")
	ErrConflict       = errors.New("changed elsewhere")
)

// StepError says which step failed and what to do about it.
type StepError struct {
	Step int
	Err  error
	Hint string
}

func (e *StepError) Error() string {
	s := fmt.Sprintf("step %d (%s): %v", e.Step, StepNames[e.Step], e.Err)
	if e.Hint != "" {
		s += "\n  what to do: " + e.Hint
	}
	return s
}

func (e *StepError) Unwrap() error { return e.Err }

func stepErr(step int, err error, hint string) error {
	var se *StepError
	if errors.As(err, &se) {
		return err
	}
	return &StepError{Step: step, Err: err, Hint: hint}
}

// Event is one line of progress, for the CLI and the demo to print.
type Event struct {
	Step    int
	Message string
	Elapsed time.Duration
}

// Options configure a Client.
type Options struct {
	Home string // state dir (tokens mode 0600)
	Log  *slog.Logger
	// OnEvent, when set, receives progress as each step completes.
	OnEvent func(Event)
	// DNSTimeout bounds one DNS try (default 2s).
	DNSTimeout time.Duration
	// UserAgent names the client in SIP and HTTP.
	UserAgent string
}

// Client is one Z5 installation (one home dir).
type Client struct {
	opts  Options
	log   *slog.Logger
	state *State

	mu      sync.Mutex // guards the following
	res     *resolver.Resolver
	servers []netip.AddrPort // res's nameservers, in the order it asks them
	addrs   map[string][]netip.Addr
	caPool  *x509.CertPool
	licKeys []ed25519.PublicKey
}

// Open loads the client's home.
func Open(opts Options) (*Client, error) {
	if opts.Home == "" {
		return nil, errors.New("client: no home dir")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "Z5/dev"
	}
	st, err := loadState(opts.Home)
	if err != nil {
		return nil, err
	}
	c := &Client{opts: opts, log: opts.Log, state: st, addrs: map[string][]netip.Addr{}}
	if st.Profile != nil {
		if err := c.setProfile(st.Profile); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// State returns a copy of the persisted state (for status output).
func (c *Client) State() State { return *c.state }

// Home is the client's state dir.
func (c *Client) Home() string { return c.opts.Home }

func (c *Client) save() error { return c.state.save(c.opts.Home) }

func (c *Client) event(step int, start time.Time, format string, args ...any) {
	if c.opts.OnEvent != nil {
		c.opts.OnEvent(Event{Step: step, Message: fmt.Sprintf(format, args...), Elapsed: time.Since(start)})
	}
}

// SetProfile installs the provider profile (from `z5 login --profile`).
func (c *Client) SetProfile(p *profile.Profile) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("provider profile: %w", err)
	}
	if err := c.setProfile(p); err != nil {
		return err
	}
	c.state.Profile = p
	return c.save()
}

func (c *Client) setProfile(p *profile.Profile) error {
	pool, err := p.CAPool()
	if err != nil {
		return err
	}
	keys, err := p.PublicKeys()
	if err != nil {
		return err
	}
	var servers []netip.AddrPort
	for _, ns := range p.Nameservers {
		ap, err := netip.ParseAddrPort(ns)
		if err != nil {
			return fmt.Errorf("provider profile: nameserver %q: %w", ns, err)
		}
		servers = append(servers, ap)
	}
	c.mu.Lock()
	c.res, c.servers = resolver.New(servers, c.opts.DNSTimeout), servers
	c.caPool, c.licKeys = pool, keys
	c.addrs = map[string][]netip.Addr{}
	c.mu.Unlock()
	return nil
}

// Profile is the provider profile in use, nil before login.
func (c *Client) Profile() *profile.Profile { return c.state.Profile }

func (c *Client) requireProfile() (*profile.Profile, error) {
	if c.state.Profile == nil {
		return nil, stepErr(StepDNS, errors.New("no provider profile"), "log in first: z5 login --profile provider.json --username NAME (it asks for the password)")
	}
	return c.state.Profile, nil
}

// Resolution is step 1's outcome for one name.
type Resolution struct {
	Name   string
	Addrs  []netip.Addr
	Server netip.AddrPort // nameserver that answered
	Net    string
	Cached bool
	Err    error
}

// Resolve runs step 1: every role name through the provider's nameservers.
// Names that must resolve (zdial, at least one MCS) fail the step; the
// others are reported.
func (c *Client) Resolve(ctx context.Context) ([]Resolution, error) {
	p, err := c.requireProfile()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	names := append([]string{p.Names.ZDial, p.Names.LBMCS}, p.Names.MCS...)
	names = append(names, p.Names.SIPDomain)
	var out []Resolution
	mcsOK := false
	for _, n := range names {
		if n == "" {
			continue
		}
		addrs, r := c.lookup(ctx, n)
		out = append(out, r)
		if r.Err == nil && n != p.Names.ZDial {
			mcsOK = true
		}
		if r.Err != nil && n == p.Names.ZDial {
			return out, stepErr(StepDNS, r.Err, dnsHint(p))
		}
		_ = addrs
	}
	if !mcsOK {
		return out, stepErr(StepDNS, errors.New("no MCS name resolved"), dnsHint(p))
	}
	c.event(StepDNS, start, "resolved %d names through the provider's nameservers", len(out))
	return out, nil
}

func dnsHint(p *profile.Profile) string {
	// The port the profile says (53 in production), not an assumed one.
	var ports []string
	for _, ns := range p.Nameservers {
		if ap, err := netip.ParseAddrPort(ns); err == nil {
			if port := strconv.Itoa(int(ap.Port())); !slices.Contains(ports, port) {
				ports = append(ports, port)
			}
		}
	}
	if len(ports) == 0 {
		ports = []string{"53"}
	}
	return fmt.Sprintf("allow outbound UDP and TCP port %s to the provider's nameservers %v", strings.Join(ports, ", "), p.Nameservers)
}

// lookup resolves one name (cached by TTL in the resolver) and remembers
// the answer for the HTTPS and SIP dialers.
func (c *Client) lookup(ctx context.Context, name string) ([]netip.Addr, Resolution) {
	c.mu.Lock()
	res := c.res
	c.mu.Unlock()
	r := Resolution{Name: name}
	out, err := res.LookupHost(ctx, name)
	r.Cached = out.Cached
	var answered netip.AddrPort
	if len(out.Attempts) > 0 {
		last := out.Attempts[len(out.Attempts)-1]
		r.Server, r.Net = last.Server, last.Net
		if last.Err == nil {
			answered = last.Server
		}
	}
	if err != nil {
		r.Err = err
		return nil, r
	}
	r.Addrs = out.Addrs
	c.mu.Lock()
	c.addrs[name] = out.Addrs
	if res == c.res {
		c.preferLocked(answered)
	}
	c.mu.Unlock()
	return out.Addrs, r
}

// preferLocked moves the nameserver that answered to the front when the
// ones before it failed, keeping the profile's order otherwise: a dead or
// silent nameserver then costs its timeout once, not on every name.
func (c *Client) preferLocked(answered netip.AddrPort) {
	i := slices.Index(c.servers, answered)
	if i <= 0 {
		return
	}
	c.servers = append(slices.Clone(c.servers[i:]), c.servers[:i]...)
	c.res = resolver.New(c.servers, c.opts.DNSTimeout)
}

// FlushDNS drops cached answers (after a failover).
func (c *Client) FlushDNS() {
	c.mu.Lock()
	if c.res != nil {
		c.res.Flush()
	}
	c.mu.Unlock()
}

// plainNetError says a connection failure in words ("connection refused")
// instead of the SIP stack's internals, keeping err for errors.Is.
func plainNetError(err error) error {
	var words string
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused"):
		words = "connection refused: nothing listens there, or a firewall rejects the connection"
	case errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH):
		words = "no route to the server: the network or a firewall drops the traffic"
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		words = "no answer in time: a firewall may drop the traffic, or the server is overloaded"
	default:
		return err
	}
	return &wordedError{words: words, err: err}
}

type wordedError struct {
	words string
	err   error
}

func (e *wordedError) Error() string { return e.words }
func (e *wordedError) Unwrap() error { return e.err }
