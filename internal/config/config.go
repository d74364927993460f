// Package config decodes, defaults and validates the one deployment file that
// describes a whole Z5 provider: both sites, every node's address and roles,
// the DNS names clients resolve, ports and port ranges. Every role and the
// firewall generator read the same Config, so the rules a customer opens are
// derived from what the servers actually bind.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/z5vrs/z5/internal/portrange"
)

// Roles a node can run.
const (
	RoleDNS   = "dns"
	RoleZDial = "zdial"
	RoleMCS   = "mcs"
)

// Config is one whole deployment.
type Config struct {
	// Path is the file the config was read from ("" for built-in configs).
	Path string `toml:"-"`

	Provider Provider `toml:"provider"`
	Names    Names    `toml:"names"`
	Ports    Ports    `toml:"ports"`
	DNS      DNS      `toml:"dns"`
	ZDial    ZDial    `toml:"zdial"`
	MCS      MCS      `toml:"mcs"`
	SIP      SIP      `toml:"sip"`
	Relay    Relay    `toml:"relay"`
	Store    Store    `toml:"store"`
	Health   Health   `toml:"health"`
	ACD      ACD      `toml:"acd"`
	WebPhone WebPhone `toml:"webphone"`
	Trunk    Trunk    `toml:"trunk"`
	Process  Process  `toml:"process"`
	// RelayAccessNumber is the provider's relay access number: a call to
	// it is queued as an outbound relay call with no number dialled yet.
	RelayAccessNumber string `toml:"relay_access_number"`
	// DataDir holds the CA, certificates, the license key, the SQLite
	// database and provider.json.
	DataDir string `toml:"data_dir"`
	Sites   []Site `toml:"site"`
}

// Provider describes who runs the deployment.
type Provider struct {
	Name string `toml:"name"`
}

// Names are the DNS names the client resolves in step 1.
type Names struct {
	ZDial     string `toml:"zdial"`      // zdial.champvrs.com: every ZDial node
	LBMCS     string `toml:"lb_mcs"`     // lb.mcs.csdvrs.com: healthy MCS nodes only
	SIPDomain string `toml:"sip_domain"` // mcs.csdvrs.com: the SIP domain, with SRV
}

// Ports are the same at every node of the deployment.
type Ports struct {
	DNS        int       `toml:"dns"`
	ZDialHTTPS int       `toml:"zdial_https"`
	MCSHTTPS   int       `toml:"mcs_https"`
	SIP        int       `toml:"sip"`     // TCP and UDP
	SIPTLS     int       `toml:"sip_tls"` // 0: TLS transport off
	RTP        PortRange `toml:"rtp"`
	Metrics    int       `toml:"metrics"` // metrics and health over plain HTTP
}

// Site is one location that can serve every step alone.
type Site struct {
	Name  string `toml:"name"`
	Nodes []Node `toml:"node"`
}

// Node is one process (one host) of a site.
type Node struct {
	Name  string   `toml:"name"`
	Roles []string `toml:"roles"`
	// Address is what clients reach, and what the firewall rules name.
	Address string `toml:"address"`
	// Bind is the local address to listen on when it differs from Address
	// (NAT, or "0.0.0.0"); defaults to Address.
	Bind string `toml:"bind"`
	// Hosts are the DNS names that point at this node besides the shared
	// role names: "ns1.csdvrs.com" for a nameserver, "mcs1.mcs.csdvrs.com"
	// for an MCS.
	Hosts []string `toml:"hosts"`

	// Site is filled in by Load: the name of the site the node belongs to.
	Site string `toml:"-"`
}

// Store selects and configures storage.
type Store struct {
	Driver string `toml:"driver"` // "sqlite" or "postgres"
	Path   string `toml:"path"`   // sqlite: file, relative to data_dir
	DSN    string `toml:"dsn"`    // postgres: connection string
}

// Health configures MCS node membership.
type Health struct {
	Heartbeat time.Duration `toml:"heartbeat"` // how often a node reports
	DeadAfter time.Duration `toml:"dead_after"`
}

// PortRange is an inclusive UDP/TCP port range written "10000-65535"; its
// home is the leaf package portrange, which the client reads too.
type PortRange = portrange.Range

// Error is a validation problem pinned to a place in the file.
type Error struct {
	File string
	Line int    // 0 when unknown
	Key  string // dotted key path, e.g. "site[1].node[0].address"
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one config; Load reports all at once.
type Errors []*Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Load reads, defaults and validates a config file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, b)
}

// Parse decodes src (named name in errors), applies defaults and validates.
// Unknown keys are errors: a misspelt key must never be silently ignored.
func Parse(name string, src []byte) (*Config, error) {
	c := &Config{Path: name}
	md, err := toml.NewDecoder(bytes.NewReader(src)).Decode(c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: name, Line: pe.Position.Line, Msg: pe.Message}
		}
		return nil, &Error{File: name, Msg: err.Error()}
	}
	lines := keyLines(src)
	var errs Errors
	for _, k := range md.Undecoded() {
		errs = append(errs, &Error{File: name, Line: lines.find(k...), Key: k.String(), Msg: "unknown key"})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	c.applyDefaults()
	if verrs := c.validate(); len(verrs) > 0 {
		for _, e := range verrs {
			e.File = name
			e.Line = lines.lookup(e.Key)
		}
		return nil, verrs
	}
	return c, nil
}

// applyDefaults fills what the file left out with production values that
// follow the seed: 53, 443, 5060, 10000-65535.
func (c *Config) applyDefaults() {
	orDefault(&c.Ports.DNS, 53)
	orDefault(&c.Ports.ZDialHTTPS, 443)
	orDefault(&c.Ports.MCSHTTPS, 443)
	orDefault(&c.Ports.SIP, 5060)
	orDefault(&c.Ports.Metrics, 9090)
	orDefault(&c.Ports.RTP, PortRange{Min: 10000, Max: 65535})
	orDefault(&c.Provider.Name, "Z5")
	orDefault(&c.Store.Driver, "sqlite")
	if c.Store.Driver == "sqlite" {
		orDefault(&c.Store.Path, "z5.db")
	}
	orDefault(&c.Health.Heartbeat, 2*time.Second)
	orDefault(&c.Health.DeadAfter, 3*c.Health.Heartbeat)
	c.DNS.applyDefaults(c)
	c.ZDial.applyDefaults()
	c.MCS.applyDefaults()
	c.SIP.applyDefaults(c)
	c.Relay.applyDefaults(c)
	c.ACD.applyDefaults()
	c.WebPhone.applyDefaults()
	c.Process.applyDefaults()
	for i := range c.Sites {
		for j := range c.Sites[i].Nodes {
			n := &c.Sites[i].Nodes[j]
			n.Site = c.Sites[i].Name
			for k, h := range n.Hosts {
				n.Hosts[k] = CanonicalName(h)
			}
		}
	}
	c.Names.ZDial = CanonicalName(c.Names.ZDial)
	c.Names.LBMCS = CanonicalName(c.Names.LBMCS)
	c.Names.SIPDomain = CanonicalName(c.Names.SIPDomain)
}

// CanonicalName lower-cases a DNS name and drops a trailing dot.
func CanonicalName(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
}

func (c *Config) validate() Errors {
	var errs Errors
	add := func(key, format string, args ...any) {
		errs = append(errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	for key, name := range map[string]string{
		"names.zdial": c.Names.ZDial, "names.lb_mcs": c.Names.LBMCS, "names.sip_domain": c.Names.SIPDomain,
	} {
		if name == "" {
			add(key, "required")
		} else if !validHostname(name) {
			add(key, "%q is not a valid DNS name", name)
		}
	}
	for key, p := range map[string]int{
		"ports.dns": c.Ports.DNS, "ports.zdial_https": c.Ports.ZDialHTTPS, "ports.mcs_https": c.Ports.MCSHTTPS,
		"ports.sip": c.Ports.SIP, "ports.metrics": c.Ports.Metrics,
	} {
		if p < 1 || p > 65535 {
			add(key, "port %d out of range 1-65535", p)
		}
	}
	if c.Ports.SIPTLS < 0 || c.Ports.SIPTLS > 65535 {
		add("ports.sip_tls", "port %d out of range 0-65535 (0 turns TLS off)", c.Ports.SIPTLS)
	}
	if c.SIP.RequireTLS && c.Ports.SIPTLS == 0 {
		add("sip.require_tls", "needs ports.sip_tls: without a TLS port no device could register")
	}
	if r := c.Ports.RTP; r.Min < 1024 || r.Max > 65535 || r.Min > r.Max {
		add("ports.rtp", "range %s must lie within 1024-65535 with min <= max", r)
	} else if r.Size() < 4 {
		add("ports.rtp", "range %s too small: each call needs at least 4 ports", r)
	}
	switch c.Store.Driver {
	case "sqlite":
	case "postgres":
		if c.Store.DSN == "" {
			add("store.dsn", "required with driver \"postgres\"")
		}
	default:
		add("store.driver", "%q: want \"sqlite\" or \"postgres\"", c.Store.Driver)
	}
	if c.Health.DeadAfter < c.Health.Heartbeat {
		add("health.dead_after", "%s is shorter than health.heartbeat %s", c.Health.DeadAfter, c.Health.Heartbeat)
	}
	if len(c.Sites) == 0 {
		add("site", "at least one [[site]] is required")
	}
	siteNames := map[string]bool{}
	nodeNames := map[string]bool{}
	addrs := map[string]string{}
	hosts := map[string]string{}
	roleCount := map[string]int{}
	// Sites and nodes alike need a name, one no other site (node) has.
	uniqueName := func(key, what, name string, seen map[string]bool) {
		if name == "" {
			add(key+".name", "required")
		} else if seen[name] {
			add(key+".name", "duplicate %s %q", what, name)
		}
		seen[name] = true
	}
	for i, s := range c.Sites {
		sk := fmt.Sprintf("site[%d]", i)
		uniqueName(sk, "site", s.Name, siteNames)
		if len(s.Nodes) == 0 {
			add(sk+".node", "site %q has no [[site.node]]", s.Name)
		}
		for j, n := range s.Nodes {
			nk := fmt.Sprintf("%s.node[%d]", sk, j)
			uniqueName(nk, "node", n.Name, nodeNames)
			if len(n.Roles) == 0 {
				add(nk+".roles", "required: some of %q, %q, %q", RoleDNS, RoleZDial, RoleMCS)
			}
			for _, r := range n.Roles {
				if r != RoleDNS && r != RoleZDial && r != RoleMCS {
					add(nk+".roles", "unknown role %q: want %q, %q or %q", r, RoleDNS, RoleZDial, RoleMCS)
				}
				roleCount[r]++
			}
			if a, err := netip.ParseAddr(n.Address); err != nil {
				add(nk+".address", "%q is not an IP address", n.Address)
			} else if a.IsUnspecified() {
				add(nk+".address", "must be the address clients reach, not %s (use bind for that)", a)
			} else if prev, dup := addrs[a.String()+n.rolesKey()]; dup {
				add(nk+".address", "%s already used by node %q for the same roles", a, prev)
			} else {
				addrs[a.String()+n.rolesKey()] = n.Name
			}
			if n.Bind != "" {
				if _, err := netip.ParseAddr(n.Bind); err != nil {
					add(nk+".bind", "%q is not an IP address", n.Bind)
				}
			}
			for _, h := range n.Hosts {
				if !validHostname(h) {
					add(nk+".hosts", "%q is not a valid DNS name", h)
				} else if prev, dup := hosts[h]; dup && prev != n.Name {
					add(nk+".hosts", "%q already names node %q", h, prev)
				}
				hosts[h] = n.Name
			}
			if n.Has(RoleMCS) && len(n.Hosts) == 0 {
				add(nk+".hosts", "an MCS node needs its own name (e.g. \"mcs1.mcs.csdvrs.com\")")
			}
		}
	}
	for _, r := range []string{RoleDNS, RoleZDial, RoleMCS} {
		if len(c.Sites) > 0 && roleCount[r] == 0 {
			add("site", "no node has role %q", r)
		}
	}
	errs = append(errs, c.DNS.validate(c)...)
	errs = append(errs, c.ZDial.validate()...)
	errs = append(errs, c.MCS.validate()...)
	errs = append(errs, c.SIP.validate()...)
	errs = append(errs, c.Relay.validate(c)...)
	errs = append(errs, c.ACD.validate()...)
	errs = append(errs, c.WebPhone.validate()...)
	errs = append(errs, c.Trunk.validate()...)
	errs = append(errs, c.Process.validate()...)
	errs = append(errs, validateRelayAccess(c.RelayAccessNumber)...)
	return errs
}

func (n Node) rolesKey() string {
	r := slices.Clone(n.Roles)
	slices.Sort(r)
	return "/" + strings.Join(r, ",")
}

// Has reports whether the node runs role.
func (n Node) Has(role string) bool { return slices.Contains(n.Roles, role) }

// Addr is the node's client-facing address.
func (n Node) Addr() netip.Addr {
	a, _ := netip.ParseAddr(n.Address)
	return a
}

// BindAddr is the local address to listen on.
func (n Node) BindAddr() netip.Addr {
	if n.Bind != "" {
		a, _ := netip.ParseAddr(n.Bind)
		return a
	}
	return n.Addr()
}

// Nodes returns every node of the deployment in file order.
func (c *Config) Nodes() []Node {
	var out []Node
	for _, s := range c.Sites {
		out = append(out, s.Nodes...)
	}
	return out
}

// NodesWithRole returns the nodes that run role, in file order (site by
// site), which is also the order the firewall rules and profile list them.
func (c *Config) NodesWithRole(role string) []Node {
	var out []Node
	for _, n := range c.Nodes() {
		if n.Has(role) {
			out = append(out, n)
		}
	}
	return out
}

// Node returns the node called name.
func (c *Config) Node(name string) (Node, bool) {
	for _, n := range c.Nodes() {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

func validHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// InZone reports whether name is zone or below it.
func InZone(name, zone string) bool {
	name, zone = CanonicalName(name), CanonicalName(zone)
	return name == zone || strings.HasSuffix(name, "."+zone)
}
