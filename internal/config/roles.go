package config

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// DNS configures the authoritative nameservers (step 1).
type DNS struct {
	// Zones the nameservers are authoritative for; every role name must lie
	// in one of them. Defaults to the parent zone of each role name.
	Zones []string      `toml:"zones"`
	TTL   time.Duration `toml:"ttl"`
	// LBTTL is the TTL of lb.mcs answers, short so failover is quick.
	LBTTL time.Duration `toml:"lb_ttl"`
	// Hostmaster is the SOA RNAME as an e-mail address.
	Hostmaster string `toml:"hostmaster"`
	// RateLimit is the response rate limit per client /24 (/56 for IPv6)
	// in responses per second; -1 turns it off (0, unset, is the default).
	RateLimit int `toml:"rate_limit"`
	// UDPSize is the largest UDP response we send to EDNS0 clients.
	UDPSize int `toml:"udp_size"`
}

func (d *DNS) applyDefaults(c *Config) {
	orDefault(&d.TTL, 5*time.Minute)
	orDefault(&d.LBTTL, 10*time.Second)
	orDefault(&d.RateLimit, 50)
	orDefault(&d.UDPSize, 1232) // the DNS flag day 2020 value: no fragmentation
	for i, z := range d.Zones {
		d.Zones[i] = CanonicalName(z)
	}
	if len(d.Zones) == 0 {
		for _, n := range []string{c.Names.ZDial, c.Names.LBMCS, c.Names.SIPDomain} {
			z := parentZone(CanonicalName(n))
			if z != "" && !contains(d.Zones, z) {
				d.Zones = append(d.Zones, z)
			}
		}
	}
	if d.Hostmaster == "" && len(d.Zones) > 0 {
		d.Hostmaster = "hostmaster@" + d.Zones[0]
	}
}

// parentZone is the registrable-looking zone of a name: its last two labels
// ("zdial.champvrs.com" -> "champvrs.com", "mcs.z5.test" -> "z5.test").
func parentZone(name string) string {
	dots := 0
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '.' {
			dots++
			if dots == 2 {
				return name[i+1:]
			}
		}
	}
	return name
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func (d *DNS) validate(c *Config) Errors {
	var errs Errors
	for i, z := range d.Zones {
		if !validHostname(z) {
			errs = append(errs, &Error{Key: fmt.Sprintf("dns.zones"), Msg: fmt.Sprintf("zone %d: %q is not a valid DNS name", i, z)})
		}
	}
	check := func(key, name string) {
		if name == "" {
			return
		}
		for _, z := range d.Zones {
			if InZone(name, z) {
				return
			}
		}
		errs = append(errs, &Error{Key: key, Msg: fmt.Sprintf("%q is in none of the served zones %v", name, d.Zones)})
	}
	check("names.zdial", c.Names.ZDial)
	check("names.lb_mcs", c.Names.LBMCS)
	check("names.sip_domain", c.Names.SIPDomain)
	for i, s := range c.Sites {
		for j, n := range s.Nodes {
			for _, h := range n.Hosts {
				check(fmt.Sprintf("site[%d].node[%d].hosts", i, j), h)
			}
		}
	}
	if d.TTL < time.Second || d.LBTTL < time.Second {
		errs = append(errs, &Error{Key: "dns.ttl", Msg: "TTLs must be at least 1s"})
	}
	if d.RateLimit < -1 {
		errs = append(errs, &Error{Key: "dns.rate_limit", Msg: fmt.Sprintf("%d: must be positive, or -1 for no limit", d.RateLimit)})
	}
	if d.UDPSize < 512 || d.UDPSize > 4096 {
		errs = append(errs, &Error{Key: "dns.udp_size", Msg: fmt.Sprintf("%d outside 512-4096", d.UDPSize)})
	}
	return errs
}

// ZDial configures login and number selection (step 2).
type ZDial struct {
	SessionTTL time.Duration `toml:"session_ttl"`
	// MaxFailures failed logins for one username from one source (an
	// IPv4 address or IPv6 /64) lock that pair for Lockout.
	MaxFailures int `toml:"max_failures"`
	// AccountMaxFailures failed logins for one account from all sources
	// together lock the account for Lockout.
	AccountMaxFailures int `toml:"account_max_failures"`
	// SourceMaxFailures failed logins from one source (any usernames),
	// draining over Lockout, stop logins from it until some have drained.
	SourceMaxFailures int           `toml:"source_max_failures"`
	Lockout           time.Duration `toml:"lockout"`
	// PerIPRate is the sustained login attempts (right or wrong) per
	// minute from one source, in bursts of PerIPBurst. Generous, so an
	// office behind one NAT address logs everyone in; it bounds the
	// argon2 work one source can cause.
	PerIPRate  int `toml:"per_ip_rate"`
	PerIPBurst int `toml:"per_ip_burst"`
	// RateLimit is the requests per second one address (an IPv6 /64) may
	// make to any ZDial endpoint, in bursts of RateBurst; beyond it: 429
	// with Retry-After. -1 turns it off.
	RateLimit int `toml:"rate_limit"`
	RateBurst int `toml:"rate_burst"`
}

func (z *ZDial) applyDefaults() {
	orDefault(&z.SessionTTL, 30*24*time.Hour)
	orDefault(&z.MaxFailures, 5)
	orDefault(&z.AccountMaxFailures, 20)
	orDefault(&z.SourceMaxFailures, 30)
	orDefault(&z.Lockout, 15*time.Minute)
	orDefault(&z.PerIPRate, 300)
	// 200 clients behind one NAT address logging in at once.
	orDefault(&z.PerIPBurst, 250)
	orDefault(&z.RateLimit, 20)
	// Login and select of 200 clients behind one NAT address at once.
	orDefault(&z.RateBurst, 500)
}

func (z *ZDial) validate() Errors {
	var c checks
	c.durAtLeast("zdial.session_ttl", z.SessionTTL, time.Minute)
	c.atLeast("zdial.max_failures", z.MaxFailures, 1)
	c.atLeast("zdial.account_max_failures", z.AccountMaxFailures, 1)
	c.atLeast("zdial.source_max_failures", z.SourceMaxFailures, 1)
	c.durAtLeast("zdial.lockout", z.Lockout, time.Second)
	c.atLeast("zdial.per_ip_rate", z.PerIPRate, 1)
	c.atLeast("zdial.per_ip_burst", z.PerIPBurst, 1)
	c.rate("zdial.rate_limit", z.RateLimit)
	c.atLeast("zdial.rate_burst", z.RateBurst, 1)
	return c.errs
}

// MCS configures the MCS HTTPS API (step 3).
type MCS struct {
	LicenseTTL time.Duration `toml:"license_ttl"`
	// Features granted in every license.
	Features []string `toml:"features"`
	// MaxContacts per number, MaxBody bytes per request body.
	MaxContacts int `toml:"max_contacts"`
	MaxBody     int `toml:"max_body"`
	// RateLimit is the requests per second one address (an IPv6 /64) may
	// make, in bursts of RateBurst; beyond it: 429 with Retry-After. -1
	// turns it off.
	RateLimit int `toml:"rate_limit"`
	RateBurst int `toml:"rate_burst"`
	// MaxTrackedSources bounds the per-address buckets of the rate limit;
	// the least recently active are forgotten first.
	MaxTrackedSources int `toml:"max_tracked_sources"`
}

func (m *MCS) applyDefaults() {
	orDefault(&m.LicenseTTL, 7*24*time.Hour)
	if m.Features == nil {
		m.Features = []string{"video", "audio", "addressbook"}
	}
	orDefault(&m.MaxContacts, 5000)
	orDefault(&m.MaxBody, 4<<20)
	orDefault(&m.RateLimit, 50)
	// License, contacts and probe of 200 clients behind one NAT address
	// starting at once.
	orDefault(&m.RateBurst, 1000)
	orDefault(&m.MaxTrackedSources, 65536)
}

func (m *MCS) validate() Errors {
	var c checks
	c.durAtLeast("mcs.license_ttl", m.LicenseTTL, time.Minute)
	c.atLeast("mcs.max_contacts", m.MaxContacts, 1)
	c.atLeast("mcs.max_body", m.MaxBody, 1024)
	c.rate("mcs.rate_limit", m.RateLimit)
	c.atLeast("mcs.rate_burst", m.RateBurst, 1)
	c.atLeast("mcs.max_tracked_sources", m.MaxTrackedSources, 1)
	return c.errs
}

// SIP configures the registrar and proxy (step 4).
type SIP struct {
	Realm           string        `toml:"realm"` // defaults to the SIP domain
	NonceTTL        time.Duration `toml:"nonce_ttl"`
	MinExpires      int           `toml:"min_expires"`
	MaxExpires      int           `toml:"max_expires"`
	DefaultExpires  int           `toml:"default_expires"`
	NoAnswerTimeout time.Duration `toml:"no_answer_timeout"`
	MaxMessageSize  int           `toml:"max_message_size"`
	// MaxHeaders caps the header fields of one message.
	MaxHeaders int `toml:"max_headers"`
	// MaxAuthFailures failed digests for one user from one source (an
	// IPv6 /64) within ten minutes earn 403 until the window passes.
	MaxAuthFailures int `toml:"max_auth_failures"`
	// DigestAlgorithms are offered to Z5 devices in this order (RFC 8760);
	// standard SIP devices are offered MD5 alone.
	DigestAlgorithms []string `toml:"digest_algorithms"`
	// MaxConnsPerIP caps the TCP/TLS connections of one source address
	// (an IPv6 /64) that no digest-authenticated registration is bound to
	// yet; at the cap the source's most stalled connection is closed to
	// admit a newcomer. Registered connections do not count: an office
	// behind one NAT address is never locked out. MaxConns caps all
	// connections of the node (memory, file descriptors).
	MaxConnsPerIP int           `toml:"max_conns_per_ip"`
	MaxConns      int           `toml:"max_conns"`
	IdleTimeout   time.Duration `toml:"idle_timeout"`
	// TLSCert and TLSKey serve SIP over TLS when ports.sip_tls is set; empty
	// means a certificate from the deployment CA.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// RequireTLS refuses a REGISTER that arrives over plain TCP or UDP
	// (403): every device then signals over TLS (ports.sip_tls). Off by
	// default so standard devices without TLS keep working.
	RequireTLS bool `toml:"require_tls"`

	// Limits against floods and hostile peers (docs/limits.md).
	//
	// MessageTimeout bounds how long one message may take to arrive once
	// its first byte has (slow senders).
	MessageTimeout time.Duration `toml:"message_timeout"`
	// RateLimit is the requests per second one source address (an IPv6
	// /64) may send, in bursts of RateBurst; beyond it a request is
	// answered 503 with Retry-After. -1 turns the limit off.
	RateLimit int `toml:"rate_limit"`
	RateBurst int `toml:"rate_burst"`
	// MaxInFlight is how many requests (REGISTER, OPTIONS, MESSAGE; not
	// calls or requests inside a call) the node works on at once; more
	// are shed with 503 and Retry-After rather than queued. One source
	// (an IPv6 /64) may hold MaxInFlightPerSource of them.
	MaxInFlight          int `toml:"max_in_flight"`
	MaxInFlightPerSource int `toml:"max_in_flight_per_source"`
	// MaxAuthFailuresPerAccount failed digests for one account, from any
	// source, within ten minutes refuse further attempts at it (403) on
	// connections not already registered. -1: no limit.
	MaxAuthFailuresPerAccount int `toml:"max_auth_failures_per_account"`
	// MaxRegistrationsPerNumber and MaxCallsPerNumber cap what one number
	// may hold at once.
	MaxRegistrationsPerNumber int `toml:"max_registrations_per_number"`
	MaxCallsPerNumber         int `toml:"max_calls_per_number"`
	// A source at which digest authentication failed for BanAuthFailures
	// distinct user names, or that had BanRateLimited requests refused by
	// the rate limit, within BanWindow is banned for BanTime, doubling for
	// each repeat up to BanMaxTime: its new connections are closed at
	// accept, its unregistered ones closed, its datagrams dropped unread;
	// connections with a registration stay. -1 never bans.
	BanAuthFailures int           `toml:"ban_auth_failures"`
	BanRateLimited  int           `toml:"ban_rate_limited"`
	BanWindow       time.Duration `toml:"ban_window"`
	BanTime         time.Duration `toml:"ban_time"`
	BanMaxTime      time.Duration `toml:"ban_max_time"`
	// BanForget clears a source's offences once it has been clean this
	// long, so an old offence does not lengthen a new ban.
	BanForget time.Duration `toml:"ban_forget"`
	// BanAllow lists addresses and networks (CIDR) never banned or rate
	// limited; the deployment's own nodes always are. BanAllowLoopback
	// adds 127.0.0.0/8 and ::1.
	BanAllow          []string `toml:"ban_allow"`
	BanAllowLoopback  bool     `toml:"ban_allow_loopback"`
	MaxTrackedSources int      `toml:"max_tracked_sources"`
	// UDPUnauthBytesPerSec caps, node-wide, the bytes per second sent in
	// answer to UDP requests not (yet) authenticated: challenges, refusals,
	// rejects of malformed datagrams. A UDP source can be forged, so these
	// could be aimed at a victim; beyond the cap they are dropped silently
	// (z5_sip_udp_unauth_responses_dropped_total).
	UDPUnauthBytesPerSec int `toml:"udp_unauth_bytes_per_sec"`
	// MaxUDPBindingsPerAddr caps the registrations over UDP, across all
	// numbers, bound to one source ip:port; more are refused with 403.
	MaxUDPBindingsPerAddr int `toml:"max_udp_bindings_per_addr"`
	// DeviceCacheTTL is how long a node keeps a device it read (kind and
	// digest credentials) for the next request of the same SIP user, so a
	// refresh costs no store read. A digest that fails against a cached
	// device is checked again against the store, so new credentials work
	// at once; replaced or removed ones stop within about a second, when
	// the node reads the store's log of changed devices, and at most this
	// long if it cannot. Negative: no cache.
	DeviceCacheTTL time.Duration `toml:"device_cache_ttl"`
}

func (s *SIP) applyDefaults(c *Config) {
	orDefault(&s.Realm, c.Names.SIPDomain)
	orDefault(&s.NonceTTL, 5*time.Minute)
	orDefault(&s.MinExpires, 60)
	orDefault(&s.MaxExpires, 3600)
	orDefault(&s.DefaultExpires, 600)
	orDefault(&s.NoAnswerTimeout, 3*time.Minute)
	orDefault(&s.MaxMessageSize, 64<<10)
	orDefault(&s.MaxConnsPerIP, 256)
	orDefault(&s.MaxConns, 50000)
	orDefault(&s.IdleTimeout, 2*time.Minute)
	orDefault(&s.MaxHeaders, 128)
	orDefault(&s.MaxAuthFailures, 5)
	if len(s.DigestAlgorithms) == 0 {
		s.DigestAlgorithms = []string{"SHA-256", "SHA-512-256", "MD5"}
	}
	s.applyLimitDefaults()
}

func (s *SIP) applyLimitDefaults() {
	orDefault(&s.MessageTimeout, 10*time.Second)
	orDefault(&s.RateLimit, 200)
	// An office of 200 devices registering at once sends about 400
	// requests before any is authenticated.
	orDefault(&s.RateBurst, max(2*s.RateLimit, 1000))
	orDefault(&s.MaxInFlight, 1024)
	orDefault(&s.MaxInFlightPerSource, max(s.MaxInFlight/4, 1))
	orDefault(&s.MaxAuthFailuresPerAccount, 50)
	orDefault(&s.MaxRegistrationsPerNumber, 32)
	orDefault(&s.MaxCallsPerNumber, 8)
	orDefault(&s.BanAuthFailures, 10)
	orDefault(&s.BanRateLimited, 2000)
	orDefault(&s.BanWindow, time.Minute)
	orDefault(&s.BanTime, 5*time.Minute)
	orDefault(&s.BanMaxTime, max(24*time.Hour, s.BanTime))
	orDefault(&s.BanForget, 24*time.Hour)
	orDefault(&s.MaxTrackedSources, 65536)
	orDefault(&s.UDPUnauthBytesPerSec, 128<<10)
	orDefault(&s.MaxUDPBindingsPerAddr, 16)
	orDefault(&s.DeviceCacheTTL, 10*time.Second)
}

// BanAllowPrefixes parses BanAllow (validated, so it does not fail after
// Load).
func (s *SIP) BanAllowPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, v := range s.BanAllow {
		if p, err := parsePrefixOrAddr(v); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// parsePrefixOrAddr reads "198.18.0.0/15" or a single address.
func parsePrefixOrAddr(v string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(v); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an address nor a CIDR network", v)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (s *SIP) validate() Errors {
	var c checks
	if s.MinExpires < 1 || s.MinExpires > s.MaxExpires {
		c.add("sip.min_expires", "need 1 <= min_expires (%d) <= max_expires (%d)", s.MinExpires, s.MaxExpires)
	}
	if s.DefaultExpires < s.MinExpires || s.DefaultExpires > s.MaxExpires {
		c.add("sip.default_expires", "%d outside min..max expires", s.DefaultExpires)
	}
	c.durAtLeast("sip.no_answer_timeout", s.NoAnswerTimeout, time.Second)
	c.atLeast("sip.max_message_size", s.MaxMessageSize, 1500)
	c.atLeast("sip.max_headers", s.MaxHeaders, 16)
	c.atLeast("sip.max_auth_failures", s.MaxAuthFailures, 1)
	for _, a := range s.DigestAlgorithms {
		if !slices.Contains([]string{"SHA-256", "SHA-512-256", "MD5"}, a) {
			c.add("sip.digest_algorithms", "%q: want SHA-256, SHA-512-256 or MD5", a)
		}
	}
	if (s.TLSCert == "") != (s.TLSKey == "") {
		c.add("sip.tls_cert", "tls_cert and tls_key go together")
	}
	s.validateLimits(&c)
	return c.errs
}

// Relay configures the RTP media relay (step 5). The port range is
// ports.rtp.
type Relay struct {
	// MediaTimeout without packets on an answered call ends it.
	MediaTimeout time.Duration `toml:"media_timeout"`
	// ProbeRate is how many network-check echo replies per second one
	// source may get.
	ProbeRate int `toml:"probe_rate"`
	// MaxStreams is how many media streams (m-lines holding ports) one
	// call may have: audio, video and text fit; an offer with more is
	// answered 488.
	MaxStreams int `toml:"max_streams"`
	// MaxPortsPerCustomer and MaxPortsPerSource cap the relay ports (calls
	// and network-check probes) one customer account, and one source
	// address (IPv6: its /64), may hold at once, so one customer cannot
	// starve the others. Default: a quarter of ports.rtp each.
	MaxPortsPerCustomer int `toml:"max_ports_per_customer"`
	MaxPortsPerSource   int `toml:"max_ports_per_source"`
	// CustomerNetworks are addresses or CIDR networks the relay may send
	// media to although they are private or loopback (customers reached
	// over a private WAN). Loopback is always allowed when the node
	// itself is on loopback (the dev stack).
	CustomerNetworks []string `toml:"customer_networks"`
	// ProviderNetworks are the provider's own networks, never a media
	// destination, in addition to every configured node address.
	ProviderNetworks []string `toml:"provider_networks"`
	// RequireSRTP refuses (488 Not Acceptable Here, Encryption Required)
	// every offer or answer with a media stream that is not SRTP: SDES
	// (RTP/SAVP with a=crypto) or DTLS-SRTP. Off by default; SDES keys
	// protect anything only over TLS signalling (ports.sip_tls).
	RequireSRTP bool `toml:"require_srtp"`
	// KernelForwarding is "auto" (the default): once both ends of a
	// stream are latched, an eBPF program forwards its RTP in the kernel
	// when z5d may load it (root, or CAP_BPF and CAP_NET_ADMIN; a kernel
	// with TCX, 6.6 or later); else, and with "off", the relay process
	// forwards every packet.
	KernelForwarding string `toml:"kernel_forwarding"`
}

func (r *Relay) applyDefaults(c *Config) {
	orDefault(&r.MediaTimeout, 30*time.Second)
	orDefault(&r.ProbeRate, 200)
	orDefault(&r.MaxStreams, 4)
	orDefault(&r.KernelForwarding, "auto")
	orDefault(&r.MaxPortsPerCustomer, max(c.Ports.RTP.Size()/4, 4))
	orDefault(&r.MaxPortsPerSource, max(c.Ports.RTP.Size()/4, 4))
}

func (r *Relay) validate(c *Config) Errors {
	var ck checks
	ck.durAtLeast("relay.media_timeout", r.MediaTimeout, time.Second)
	ck.within("relay.max_streams", r.MaxStreams, 1, 16)
	if r.KernelForwarding != "auto" && r.KernelForwarding != "off" {
		ck.add("relay.kernel_forwarding", "%q: want auto or off", r.KernelForwarding)
	}
	// A stream holds 4 ports; a quota below that refuses every call.
	size := c.Ports.RTP.Size()
	quota := func(key string, v int) {
		if v < 4 || v > size {
			ck.add(key, "%d: must be 4 to the size of ports.rtp (%d)", v, size)
		}
	}
	quota("relay.max_ports_per_customer", r.MaxPortsPerCustomer)
	quota("relay.max_ports_per_source", r.MaxPortsPerSource)
	ck.networks("relay.customer_networks", r.CustomerNetworks)
	ck.networks("relay.provider_networks", r.ProviderNetworks)
	return ck.errs
}

// CustomerPrefixes parses CustomerNetworks (validated, so it does not
// fail after Load).
func (r *Relay) CustomerPrefixes() []netip.Prefix { return prefixes(r.CustomerNetworks) }

// RelayProviderPrefixes is relay.provider_networks plus the address of every
// configured node that is not loopback: media never goes to the
// provider's own machines. (Loopback nodes are the dev stack, whose
// clients share the node's address.)
func (c *Config) RelayProviderPrefixes() []netip.Prefix {
	out := prefixes(c.Relay.ProviderNetworks)
	for _, n := range c.Nodes() {
		if a := n.Addr(); a.IsValid() && !a.IsLoopback() {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}

func prefixes(vs []string) []netip.Prefix {
	var out []netip.Prefix
	for _, v := range vs {
		if p, err := parsePrefixOrAddr(v); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func (s *SIP) validateLimits(c *checks) {
	c.durAtLeast("sip.message_timeout", s.MessageTimeout, time.Second)
	c.rate("sip.rate_limit", s.RateLimit)
	c.atLeast("sip.rate_burst", s.RateBurst, 1)
	c.atLeast("sip.max_in_flight", s.MaxInFlight, 1)
	if s.MaxInFlightPerSource < 1 || s.MaxInFlightPerSource > s.MaxInFlight {
		c.add("sip.max_in_flight_per_source", "%d: need 1 <= max_in_flight_per_source <= max_in_flight (%d)", s.MaxInFlightPerSource, s.MaxInFlight)
	}
	if s.MaxConnsPerIP < 1 || s.MaxConns < s.MaxConnsPerIP {
		c.add("sip.max_conns", "need 1 <= max_conns_per_ip (%d) <= max_conns (%d)", s.MaxConnsPerIP, s.MaxConns)
	}
	c.atLeast("sip.max_auth_failures_per_account", s.MaxAuthFailuresPerAccount, -1)
	c.atLeast("sip.max_registrations_per_number", s.MaxRegistrationsPerNumber, 1)
	c.atLeast("sip.max_calls_per_number", s.MaxCallsPerNumber, 1)
	c.atLeast("sip.ban_auth_failures", s.BanAuthFailures, -1)
	c.atLeast("sip.ban_rate_limited", s.BanRateLimited, -1)
	c.atLeast("sip.max_tracked_sources", s.MaxTrackedSources, 1)
	c.atLeast("sip.udp_unauth_bytes_per_sec", s.UDPUnauthBytesPerSec, 1500) // one full-size response
	c.atLeast("sip.max_udp_bindings_per_addr", s.MaxUDPBindingsPerAddr, 1)
	c.durAtLeast("sip.ban_window", s.BanWindow, time.Second)
	if s.BanTime < time.Second || s.BanMaxTime < s.BanTime {
		c.add("sip.ban_time", "need 1s <= ban_time (%s) <= ban_max_time (%s)", s.BanTime, s.BanMaxTime)
	}
	c.durAtLeast("sip.ban_forget", s.BanForget, time.Second)
	c.networks("sip.ban_allow", s.BanAllow)
}
