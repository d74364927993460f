package sipserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/z5vrs/z5/internal/config"
)

// Config configures a Server. Every value must be set: internal/config
// fills the defaults (internal/provider turns a deployment into a
// Config), and New only checks them.
type Config struct {
	// SIP is the deployment's [sip] section: expiry bounds, timeouts,
	// message limits and the limits against floods (docs/limits.md).
	// Its BanAllow, TLSCert and TLSKey are read by internal/provider into
	// Allow and TLS, not here.
	config.SIP

	Node   string // this node's name in the location table
	Domain string // the SIP domain, e.g. mcs.z5.test
	// Hosts are this node's own DNS names (mcs1.mcs.z5.test); requests
	// for them, the domain or this node's addresses are ours.
	Hosts []string
	// Advertise is the address put in Via and Record-Route; zero: the
	// local address of each connection.
	Advertise netip.Addr

	// Allow lists sources never banned or rate limited: sip.ban_allow and
	// the deployment's own nodes (loopback too with SIP.BanAllowLoopback).
	Allow []netip.Prefix

	TLS *tls.Config // nil: no TLS listener

	// Peers are the deployment's other MCS nodes by name, each with the
	// address of its SIP TCP listener. A call for a number registered on
	// one of them (the shared location table says where) is forwarded
	// there; a request from a peer's address over TCP that carries the
	// forwarding mark is trusted as that peer's (forward.go). This node
	// is left out.
	Peers map[string]netip.AddrPort

	Version string // in "Server: Z5-MCS/<version>"

	// ACD is the interpreter queue's [acd] section; all zero turns relay
	// calls off (calls to numbers not ours are refused, 404, as before
	// relay calls existed).
	ACD config.ACD
	// Trunk is the carrier's gateway ([trunk]); no address: relay calls
	// to hearing parties fail (503).
	Trunk config.Trunk
	// RelayAccessNumber is the provider's relay access number, or "".
	RelayAccessNumber string
	// RequireLocation refuses calls other than 911 from numbers whose
	// customer has no registered location (403 Registered Location
	// Required).
	RequireLocation bool
}

// relayOn reports whether relay calls are routed (the ACD is configured).
func (c *Config) relayOn() bool { return c.ACD != (config.ACD{}) }

// normalize puts names in canonical form; it fills in nothing.
func (c *Config) normalize() {
	c.Domain = config.CanonicalName(c.Domain)
	c.Hosts = slices.Clone(c.Hosts)
	for i, h := range c.Hosts {
		c.Hosts[i] = config.CanonicalName(h)
	}
	if _, self := c.Peers[c.Node]; self {
		c.Peers = maps.Clone(c.Peers)
		delete(c.Peers, c.Node)
	}
}

// validate reports every value that is missing or out of range at once.
func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("sipserver: config: "+format, args...))
	}
	atLeast := func(name string, v, lo int) {
		if v < lo {
			bad("%s %d: must be at least %d", name, v, lo)
		}
	}
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			bad("%s %s: must be positive", name, d)
		}
	}
	set := func(name string, v int) { // -1 turns a limit off; 0 is unset
		if v == 0 || v < -1 {
			bad("%s %d: must be positive, or -1 for off", name, v)
		}
	}
	if c.Domain == "" {
		bad("Domain is required")
	}
	if c.Realm == "" {
		bad("Realm is required")
	}
	if c.Version == "" {
		bad("Version is required")
	}
	positive("NonceTTL", c.NonceTTL)
	positive("NoAnswerTimeout", c.NoAnswerTimeout)
	positive("IdleTimeout", c.IdleTimeout)
	positive("MessageTimeout", c.MessageTimeout)
	if c.MinExpires < 1 || c.MinExpires > c.MaxExpires {
		bad("need 1 <= MinExpires (%d) <= MaxExpires (%d)", c.MinExpires, c.MaxExpires)
	}
	if c.DefaultExpires < c.MinExpires || c.DefaultExpires > c.MaxExpires {
		bad("DefaultExpires %d outside %d..%d", c.DefaultExpires, c.MinExpires, c.MaxExpires)
	}
	atLeast("MaxMessageSize", c.MaxMessageSize, 1500)
	atLeast("MaxHeaders", c.MaxHeaders, 1)
	if c.MaxConnsPerIP < 1 || c.MaxConns < c.MaxConnsPerIP {
		bad("need 1 <= MaxConnsPerIP (%d) <= MaxConns (%d)", c.MaxConnsPerIP, c.MaxConns)
	}
	atLeast("MaxAuthFailures", c.MaxAuthFailures, 1)
	if len(c.DigestAlgorithms) == 0 {
		bad("DigestAlgorithms is empty")
	}
	for _, a := range c.DigestAlgorithms {
		if _, ok := digestHash(a); !ok || a == "" || strings.ToUpper(a) != a {
			bad("digest algorithm %q: want SHA-256, SHA-512-256 or MD5", a)
		}
	}
	set("RateLimit", c.RateLimit)
	atLeast("RateBurst", c.RateBurst, 1)
	atLeast("MaxInFlight", c.MaxInFlight, 1)
	if c.MaxInFlightPerSource < 1 || c.MaxInFlightPerSource > c.MaxInFlight {
		bad("MaxInFlightPerSource %d outside 1..MaxInFlight (%d)", c.MaxInFlightPerSource, c.MaxInFlight)
	}
	set("MaxAuthFailuresPerAccount", c.MaxAuthFailuresPerAccount)
	atLeast("MaxRegistrationsPerNumber", c.MaxRegistrationsPerNumber, 1)
	atLeast("MaxCallsPerNumber", c.MaxCallsPerNumber, 1)
	set("BanAuthFailures", c.BanAuthFailures)
	set("BanRateLimited", c.BanRateLimited)
	if c.BanWindow <= 0 || c.BanTime <= 0 || c.BanMaxTime < c.BanTime {
		bad("need positive BanWindow (%s) and 0 < BanTime (%s) <= BanMaxTime (%s)", c.BanWindow, c.BanTime, c.BanMaxTime)
	}
	atLeast("MaxTrackedSources", c.MaxTrackedSources, 1)
	atLeast("UDPUnauthBytesPerSec", c.UDPUnauthBytesPerSec, 1500)
	atLeast("MaxUDPBindingsPerAddr", c.MaxUDPBindingsPerAddr, 1)
	if c.relayOn() {
		positive("ACD.RingTimeout", c.ACD.RingTimeout)
		positive("ACD.MaxWait", c.ACD.MaxWait)
		positive("ACD.WrapUp", c.ACD.WrapUp)
	}
	if c.Trunk.Address != "" {
		if _, err := config.ParseTrunkURI(c.Trunk.Address); err != nil {
			bad("Trunk.Address %v", err)
		}
	}
	for _, r := range c.Trunk.Routes {
		if _, err := config.ParseTrunkURI(r.Target); err != nil {
			bad("Trunk route %q: %v", r.Match, err)
		}
	}
	if err := validatePeers(c.Peers); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
