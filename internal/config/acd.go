package config

import (
	"crypto/x509"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ACD configures the interpreter queue (automatic call distribution) of
// relay calls.
type ACD struct {
	// RingTimeout is how long an offer rings at a station before it is
	// cancelled, the interpreter set not ready and the call offered to the
	// next one.
	RingTimeout time.Duration `toml:"ring_timeout"`
	// MaxWait is how long a call waits in the queue before it is refused
	// (480, EndReason "queue-timeout").
	MaxWait time.Duration `toml:"max_wait"`
	// WrapUp is how long an interpreter stays in wrap-up after a call
	// before becoming ready again.
	WrapUp time.Duration `toml:"wrap_up"`
	// RequeueWindow is how long a caller whose interpreter vanished
	// mid-call may call again with the token the MCS gave it and be
	// queued at the front (the client calls again at once).
	RequeueWindow time.Duration `toml:"requeue_window"`
}

func (a *ACD) applyDefaults() {
	orDefault(&a.RingTimeout, 15*time.Second)
	orDefault(&a.MaxWait, 10*time.Minute)
	orDefault(&a.WrapUp, 5*time.Second)
	orDefault(&a.RequeueWindow, time.Minute)
}

func (a *ACD) validate() Errors {
	var c checks
	c.durWithin("acd.ring_timeout", a.RingTimeout, time.Second, 5*time.Minute)
	c.durWithin("acd.max_wait", a.MaxWait, 10*time.Second, 24*time.Hour)
	// 0 is unset (the default), so the shortest wrap-up is a millisecond.
	c.durWithin("acd.wrap_up", a.WrapUp, time.Millisecond, time.Hour)
	c.durWithin("acd.requeue_window", a.RequeueWindow, time.Second, time.Hour)
	return c.errs
}

// Trunk is the carrier's SIP gateway: the voice side of relay calls.
type Trunk struct {
	// Address is the gateway as a SIP URI with its transport, e.g.
	// "sip:198.18.9.1:5060;transport=tcp". Empty: no trunk (relay calls to
	// hearing parties fail with 503).
	Address string `toml:"address"`
	// Allow are the source networks (CIDR or address) trusted as the
	// carrier: an INVITE from one of them for one of our numbers is queued
	// as an inbound relay call without digest.
	Allow []string `toml:"allow"`
	// Username and Password answer the gateway's digest challenge; empty:
	// the gateway trusts our address.
	Username string `toml:"username"`
	Password string `toml:"password"`
	// Routes send dialled numbers matching a route elsewhere than Address
	// (911 to the PSAP route).
	Routes []TrunkRoute `toml:"route"`
	// CA is a PEM file of the certificates that may sign the gateway's
	// certificate when a trunk address or route uses transport=tls; empty:
	// the system's roots.
	CA string `toml:"ca"`
	// ServerName is the name the gateway's certificate must carry; empty:
	// the address's host (an IP address, which must then be in the
	// certificate).
	ServerName string `toml:"server_name"`
}

// TrunkRoute maps a dialled number to a target SIP URI.
type TrunkRoute struct {
	// Match is a dialled number ("911") or a prefix ending in "*"
	// ("1800*"); the first matching route wins.
	Match  string `toml:"match"`
	Target string `toml:"target"`
}

// TrunkURI is a parsed trunk address or route target.
type TrunkURI struct {
	User      string // may be empty
	Host      netip.AddrPort
	Transport string // "tcp" or "tls"
}

// reTrunkURI is sip:[user@]ip:port[;transport=tcp|tls]; a literal address
// only: the MCS never resolves names (sipserver.errNoDial).
var reTrunkURI = regexp.MustCompile(`^sips?:(?:([0-9A-Za-z*#+._-]{1,32})@)?(\[[0-9A-Fa-f:.]+\]|[0-9.]+)(?::(\d{1,5}))?((?:;[A-Za-z]+=[A-Za-z0-9]+)*)$`)

// ParseTrunkURI parses a trunk address or route target: a SIP URI with a
// literal IP address, transport tcp (default) or tls (the default with
// sips:).
func ParseTrunkURI(s string) (TrunkURI, error) {
	m := reTrunkURI.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return TrunkURI{}, fmt.Errorf("%q: want sip:[user@]IP[:port][;transport=tcp|tls]", s)
	}
	ip, err := netip.ParseAddr(strings.Trim(m[2], "[]"))
	if err != nil || ip.IsUnspecified() {
		return TrunkURI{}, fmt.Errorf("%q: %q is not a host address", s, m[2])
	}
	u := TrunkURI{User: m[1], Transport: "tcp"}
	if strings.HasPrefix(s, "sips:") {
		u.Transport = "tls"
	}
	for _, p := range strings.Split(strings.TrimPrefix(m[4], ";"), ";") {
		k, v, _ := strings.Cut(p, "=")
		if strings.EqualFold(k, "transport") {
			u.Transport = strings.ToLower(v)
		}
	}
	if u.Transport != "tcp" && u.Transport != "tls" {
		return TrunkURI{}, fmt.Errorf("%q: transport %q: want tcp or tls", s, u.Transport)
	}
	port := 5060
	if u.Transport == "tls" {
		port = 5061
	}
	if m[3] != "" {
		if port, err = strconv.Atoi(m[3]); err != nil || port < 1 || port > 65535 {
			return TrunkURI{}, fmt.Errorf("%q: port out of range 1-65535", s)
		}
	}
	u.Host = netip.AddrPortFrom(ip.Unmap(), uint16(port))
	return u, nil
}

// reServerName is a DNS name (labels of letters, digits and hyphens) or
// an IP address's text.
var reServerName = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$|^[0-9A-Fa-f:.]{2,45}$`)

var reRouteMatch = regexp.MustCompile(`^[0-9]{1,15}\*?$|^\*$`)

func (t *Trunk) validate() Errors {
	var c checks
	add := c.add
	if t.Address != "" {
		if _, err := ParseTrunkURI(t.Address); err != nil {
			add("trunk.address", "%v", err)
		}
	} else if len(t.Routes) > 0 || len(t.Allow) > 0 {
		add("trunk.address", "required with trunk.allow or [[trunk.route]]")
	}
	c.networks("trunk.allow", t.Allow)
	if (t.Username == "") != (t.Password == "") {
		add("trunk.username", "username and password go together")
	}
	if t.CA != "" {
		if b, err := os.ReadFile(t.CA); err != nil {
			add("trunk.ca", "%v", err)
		} else if !x509.NewCertPool().AppendCertsFromPEM(b) {
			add("trunk.ca", "%s: no PEM certificate in it", t.CA)
		}
	}
	if t.ServerName != "" && !reServerName.MatchString(t.ServerName) {
		add("trunk.server_name", "%q: want a DNS name or an IP address", t.ServerName)
	}
	for i, r := range t.Routes {
		k := fmt.Sprintf("trunk.route[%d]", i)
		if !reRouteMatch.MatchString(r.Match) {
			add(k+".match", "%q: want digits, digits ending in *, or *", r.Match)
		}
		if _, err := ParseTrunkURI(r.Target); err != nil {
			add(k+".target", "%v", err)
		}
	}
	return c.errs
}

// AllowPrefixes parses Allow (validated, so it does not fail after Load).
func (t *Trunk) AllowPrefixes() []netip.Prefix { return prefixes(t.Allow) }

// validateRelayAccess checks relay_access_number: empty, or ten NANP
// digits.
func validateRelayAccess(n string) Errors {
	if n == "" || regexp.MustCompile(`^[2-9][0-9]{2}[2-9][0-9]{6}$`).MatchString(n) {
		return nil
	}
	return Errors{{Key: "relay_access_number", Msg: fmt.Sprintf("%q: want a 10-digit NANP number", n)}}
}
