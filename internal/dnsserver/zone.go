package dnsserver

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/z5vrs/z5/internal/config"
)

// SOA timers. Nothing transfers our zones (AXFR is refused), so refresh,
// retry and expire only document intent; the negative-caching minimum is
// the zone TTL so an NXDOMAIN is cached no longer than a positive answer.
const (
	soaRefresh = 3600
	soaRetry   = 600
	soaExpire  = 14 * 24 * 3600
)

// zone is one zone we are authoritative for.
type zone struct {
	origin string   // canonical FQDN, "z5.test."
	soa    *dns.SOA // serial derived from the zone's records
}

// nodeAddr is one node's client-facing address, kept with the node name so
// membership can be asked per query.
type nodeAddr struct {
	node string
	addr netip.Addr
}

// dynamic is an address set filtered by MCS membership on every query.
type dynamic struct {
	nodes []nodeAddr
	ttl   uint32
}

// entry is everything at one owner name.
type entry struct {
	name   string              // canonical FQDN
	static map[uint16][]dns.RR // fixed records by type
	dyn    []dynamic           // health-filtered A/AAAA sources
	// extra lists the owner names whose records go in the additional
	// section of an answer of the given type (NS and SRV targets, NAPTR
	// replacements).
	extra map[uint16][]string
}

// zoneData is the immutable zone content built from the config once.
type zoneData struct {
	zones []*zone           // longest origin first, so the closest enclosing zone wins
	names map[string]*entry // canonical FQDN -> records
	// ents holds the empty non-terminals (e.g. "_tcp.mcs.z5.test."): names
	// that exist only because something lives below them, which answer
	// NODATA rather than NXDOMAIN (RFC 8020).
	ents map[string]bool
}

// buildZones turns the deployment config into zone data, validating what
// the config package does not know about DNS.
func buildZones(cfg *config.Config) (*zoneData, error) {
	if len(cfg.DNS.Zones) == 0 {
		return nil, fmt.Errorf("dns: no zones configured")
	}
	ttl, err := ttlSeconds("dns.ttl", cfg.DNS.TTL)
	if err != nil {
		return nil, err
	}
	lbTTL, err := ttlSeconds("dns.lb_ttl", cfg.DNS.LBTTL)
	if err != nil {
		return nil, err
	}
	mbox, err := hostmasterMbox(cfg.DNS.Hostmaster)
	if err != nil {
		return nil, err
	}
	nsNodes := cfg.NodesWithRole(config.RoleDNS)
	if len(nsNodes) == 0 {
		return nil, fmt.Errorf("dns: no node has role %q", config.RoleDNS)
	}

	zd := &zoneData{names: map[string]*entry{}, ents: map[string]bool{}}
	for _, z := range cfg.DNS.Zones {
		origin := dns.CanonicalName(z)
		if _, ok := dns.IsDomainName(origin); !ok || origin == "." {
			return nil, fmt.Errorf("dns: zone %q is not a valid domain name", z)
		}
		if slices.ContainsFunc(zd.zones, func(x *zone) bool { return x.origin == origin }) {
			continue
		}
		zd.zones = append(zd.zones, &zone{origin: origin})
	}
	// Longest first: with nested zones (z5.test and mcs.z5.test) a name
	// belongs to the closest one.
	slices.SortStableFunc(zd.zones, func(a, b *zone) int { return len(b.origin) - len(a.origin) })

	b := builder{zd: zd}
	addrs := func(nodes []config.Node) []nodeAddr {
		out := make([]nodeAddr, 0, len(nodes))
		for _, n := range nodes {
			out = append(out, nodeAddr{node: n.Name, addr: n.Addr().Unmap()})
		}
		return out
	}

	// Apex records: SOA and ns1..nsN with their addresses.
	for _, z := range zd.zones {
		ns := make([]string, len(nsNodes))
		for i := range nsNodes {
			ns[i] = "ns" + strconv.Itoa(i+1) + "." + z.origin
		}
		z.soa = &dns.SOA{
			Hdr:     dns.RR_Header{Name: z.origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
			Ns:      ns[0],
			Mbox:    mbox,
			Refresh: soaRefresh,
			Retry:   soaRetry,
			Expire:  soaExpire,
			Minttl:  ttl,
		}
		b.add(z.soa)
		for i, n := range nsNodes {
			b.add(&dns.NS{Hdr: hdr(z.origin, dns.TypeNS, ttl), Ns: ns[i]})
			b.addAddr(ns[i], n.Addr(), ttl)
			b.extra(z.origin, dns.TypeNS, ns[i])
		}
	}

	// Role names.
	b.place(cfg.Names.ZDial)
	for _, n := range cfg.NodesWithRole(config.RoleZDial) {
		b.addAddr(fqdn(cfg.Names.ZDial), n.Addr(), ttl)
	}
	mcs := cfg.NodesWithRole(config.RoleMCS)
	// lb.mcs and the SIP domain hand out only live MCS nodes. Both use the
	// short TTL: a resolver must notice a dead node within seconds.
	b.addDynamic(cfg.Names.LBMCS, dynamic{nodes: addrs(mcs), ttl: lbTTL})
	b.addDynamic(cfg.Names.SIPDomain, dynamic{nodes: addrs(mcs), ttl: lbTTL})

	// Each node's own names.
	for _, n := range cfg.Nodes() {
		for _, h := range n.Hosts {
			b.addAddr(fqdn(h), n.Addr(), ttl)
		}
	}

	// RFC 3263 SIP server location: SRV per transport, one target per MCS
	// node (its first host name). Equal priority so both sites share the
	// load; weights descend in file order so the first listed node gets the
	// larger share and the record set is deterministic.
	sipDomain := fqdn(cfg.Names.SIPDomain)
	type transport struct {
		service, naptr string
		port           int
		order          uint16
	}
	transports := []transport{}
	if cfg.Ports.SIPTLS != 0 {
		transports = append(transports, transport{"_sips._tcp.", "SIPS+D2T", cfg.Ports.SIPTLS, 10})
	}
	transports = append(transports,
		transport{"_sip._tcp.", "SIP+D2T", cfg.Ports.SIP, 20},
		transport{"_sip._udp.", "SIP+D2U", cfg.Ports.SIP, 30})
	var targets []config.Node
	for _, n := range mcs {
		if len(n.Hosts) > 0 {
			targets = append(targets, n)
		}
	}
	if len(targets) > 0 {
		for _, t := range transports {
			owner := t.service + sipDomain
			if !b.place(owner) {
				continue
			}
			for i, n := range targets {
				target := fqdn(n.Hosts[0])
				b.add(&dns.SRV{
					Hdr:      hdr(owner, dns.TypeSRV, ttl),
					Priority: 10,
					Weight:   uint16(min(len(targets)-i, 65535)),
					Port:     uint16(t.port),
					Target:   target,
				})
				b.extra(owner, dns.TypeSRV, target)
			}
			// NAPTR (RFC 3403) lets a client that starts from the bare
			// domain learn which transports exist and in what order.
			b.add(&dns.NAPTR{
				Hdr:         hdr(sipDomain, dns.TypeNAPTR, ttl),
				Order:       t.order,
				Preference:  10,
				Flags:       "S",
				Service:     t.naptr,
				Replacement: owner,
			})
			b.extra(sipDomain, dns.TypeNAPTR, owner)
		}
	}
	if b.err != nil {
		return nil, b.err
	}

	for _, z := range zd.zones {
		z.soa.Serial = zd.serial(z)
	}
	return zd, nil
}

// builder accumulates records, remembering the first error.
type builder struct {
	zd  *zoneData
	err error
}

// place creates the entry for name (and the empty non-terminals above it)
// and reports whether name lies in one of our zones.
func (b *builder) place(name string) bool {
	name = fqdn(name)
	z := b.zd.zoneOf(name)
	if z == nil {
		if b.err == nil {
			b.err = fmt.Errorf("dns: %q is in none of the served zones", strings.TrimSuffix(name, "."))
		}
		return false
	}
	if b.zd.names[name] == nil {
		b.zd.names[name] = &entry{name: name, static: map[uint16][]dns.RR{}, extra: map[uint16][]string{}}
	}
	for p := parent(name); p != "" && len(p) > len(z.origin); p = parent(p) {
		b.zd.ents[p] = true
	}
	return true
}

func (b *builder) add(rr dns.RR) {
	name := rr.Header().Name
	if !b.place(name) {
		return
	}
	e := b.zd.names[name]
	t := rr.Header().Rrtype
	for _, x := range e.static[t] {
		if dns.IsDuplicate(x, rr) {
			return
		}
	}
	e.static[t] = append(e.static[t], rr)
}

func (b *builder) addAddr(name string, a netip.Addr, ttl uint32) {
	b.add(addrRR(name, a, ttl))
}

func (b *builder) addDynamic(name string, d dynamic) {
	name = fqdn(name)
	if !b.place(name) {
		return
	}
	e := b.zd.names[name]
	e.dyn = append(e.dyn, d)
}

func (b *builder) extra(owner string, t uint16, target string) {
	e := b.zd.names[owner]
	if e == nil || slices.Contains(e.extra[t], target) {
		return
	}
	e.extra[t] = append(e.extra[t], target)
}

// zoneOf returns the closest zone that contains the canonical name, or nil.
func (zd *zoneData) zoneOf(name string) *zone {
	for _, z := range zd.zones {
		if dns.IsSubDomain(z.origin, name) {
			return z
		}
	}
	return nil
}

// serial is a hash of the zone's records, so restarting with the same
// config keeps the serial and any change to the config changes it.
func (zd *zoneData) serial(z *zone) uint32 {
	var lines []string
	for name, e := range zd.names {
		if zd.zoneOf(name) != z {
			continue
		}
		for _, rrs := range e.static {
			for _, rr := range rrs {
				if soa, ok := rr.(*dns.SOA); ok {
					c := *soa
					c.Serial = 0
					rr = &c
				}
				lines = append(lines, rr.String())
			}
		}
		for _, d := range e.dyn {
			for _, n := range d.nodes {
				lines = append(lines, fmt.Sprintf("%s %d dynamic %s %s", name, d.ttl, n.node, n.addr))
			}
		}
	}
	slices.Sort(lines)
	h := fnv.New32a()
	for _, l := range lines {
		h.Write([]byte(l))
		h.Write([]byte{'\n'})
	}
	if s := h.Sum32(); s != 0 {
		return s
	}
	return 1 // serial 0 reads as "unset" to some tools
}

func addrRR(name string, a netip.Addr, ttl uint32) dns.RR {
	a = a.Unmap()
	if a.Is4() {
		return &dns.A{Hdr: hdr(name, dns.TypeA, ttl), A: a.AsSlice()}
	}
	return &dns.AAAA{Hdr: hdr(name, dns.TypeAAAA, ttl), AAAA: a.AsSlice()}
}

func hdr(name string, t uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}

// fqdn is the canonical (lower-case, absolute) form of a config name.
func fqdn(s string) string { return dns.CanonicalName(config.CanonicalName(s)) }

// parent drops the first label of an absolute name; "" above the root.
func parent(name string) string {
	off, end := dns.NextLabel(name, 0)
	if end || off >= len(name) {
		return ""
	}
	return name[off:]
}

func ttlSeconds(key string, d time.Duration) (uint32, error) {
	if d < time.Second || d > 7*24*time.Hour {
		return 0, fmt.Errorf("dns: %s %s outside 1s-168h", key, d)
	}
	return uint32(d / time.Second), nil
}

// hostmasterMbox turns "hostmaster@z5.test" into the SOA RNAME
// "hostmaster.z5.test.", escaping dots in the local part (RFC 1035 8).
func hostmasterMbox(s string) (string, error) {
	s = strings.TrimSpace(s)
	local, domain, found := strings.Cut(s, "@")
	name := s
	if found {
		if local == "" || strings.ContainsAny(local, " \\\t") {
			return "", fmt.Errorf("dns: hostmaster %q: bad mailbox", s)
		}
		name = strings.ReplaceAll(local, ".", `\.`) + "." + domain
	}
	name = dns.Fqdn(name)
	if _, ok := dns.IsDomainName(name); !ok || name == "." {
		return "", fmt.Errorf("dns: hostmaster %q is not a mailbox or domain name", s)
	}
	return name, nil
}
