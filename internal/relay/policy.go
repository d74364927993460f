package relay

import (
	"net/netip"
	"slices"
	"strconv"
	"sync"

	"github.com/z5vrs/z5/internal/floodguard"
)

// dstPolicy decides which addresses the relay may ever send to. Media goes
// only to customers: an address an SDP names, or one a packet came from,
// must not turn the relay into a reflector toward the provider's own
// machines, the relay's host, or private networks behind it.
type dstPolicy struct {
	customer []netip.Prefix // allowed although private or loopback
	provider []netip.Prefix // never, whatever else is configured
	self     []netip.Addr   // the relay's own addresses
	loopback bool           // the relay serves loopback clients (dev stack)
	// local are exact sockets of this node's own processes that stand in
	// for a customer (the web phone gateway's media sockets): allowed
	// although they sit on the relay's own address. Exact address and
	// port, so nothing else on the node becomes reachable.
	local sync.Map // netip.AddrPort -> struct{}
}

// nonPublic are ranges no customer on the internet sends from, besides
// what netip classifies (loopback, private, link-local, multicast).
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),           // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),       // carrier-grade NAT, inside
	netip.MustParsePrefix("192.0.0.0/24"),        // IETF protocol assignments
	netip.MustParsePrefix("240.0.0.0/4"),         // reserved, and broadcast
	netip.MustParsePrefix("64:ff9b:1::/48"),      // local-use NAT64
	netip.MustParsePrefix("::/96"),               // IPv4-compatible, deprecated
	netip.MustParsePrefix("fec0::/10"),           // site-local, deprecated
	netip.MustParsePrefix("100::/64"),            // discard-only
	netip.MustParsePrefix("2002:a00::/24"),       // 6to4 of 10/8
	netip.MustParsePrefix("2002:7f00::/24"),      // 6to4 of 127/8
	netip.MustParsePrefix("2002:ac10::/28"),      // 6to4 of 172.16/12
	netip.MustParsePrefix("2002:c0a8::/32"),      // 6to4 of 192.168/16
	netip.MustParsePrefix("64:ff9b::a00:0/104"),  // NAT64 of 10/8
	netip.MustParsePrefix("64:ff9b::7f00:0/104"), // NAT64 of 127/8
}

// allows reports whether the relay may send to ap. Order matters: the
// provider's networks and the relay itself lose to nothing; configured
// customer space wins over the private and loopback ranges.
func (p *dstPolicy) allows(ap netip.AddrPort) bool {
	a := ap.Addr().Unmap()
	if !a.IsValid() || ap.Port() == 0 || a.IsUnspecified() || a.IsMulticast() {
		return false
	}
	if a.Zone() != "" {
		return false // a zone names a local link
	}
	if _, ok := p.local.Load(netip.AddrPortFrom(a, ap.Port())); ok {
		return true
	}
	for _, pr := range p.provider {
		if pr.Contains(a) {
			return false
		}
	}
	if a.IsLoopback() {
		return p.loopback || p.inCustomer(a)
	}
	if slices.Contains(p.self, a) {
		return false
	}
	if p.inCustomer(a) {
		return true
	}
	if a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsInterfaceLocalMulticast() {
		return false
	}
	for _, pr := range nonPublic {
		if pr.Contains(a) {
			return false
		}
	}
	return true
}

func (p *dstPolicy) inCustomer(a netip.Addr) bool {
	for _, pr := range p.customer {
		if pr.Contains(a) {
			return true
		}
	}
	return false
}

// Owner is who a call's or a probe's relay ports are charged to.
type Owner struct {
	// Customer is the account (any stable key, e.g. its id); empty charges
	// no customer.
	Customer string
	// Source is the address the request came from (signalling for calls,
	// HTTPS for probes); invalid charges no source. IPv6 sources count by
	// /64, like every per-source limit.
	Source netip.Addr
}

// CustomerKey is the Owner.Customer of a store customer id.
func CustomerKey(id int64) string { return strconv.FormatInt(id, 10) }

// quota counts the ports each customer and each source holds. Limits of
// zero or less mean no limit.
type quota struct {
	perCustomer, perSource int

	mu        sync.Mutex // guards the following
	customers map[string]int
	sources   map[netip.Prefix]int
}

func sourceKey(a netip.Addr) netip.Prefix { return floodguard.Key(a.Unmap()) }

// withinQuota is the quota rule: held plus want may not exceed limit.
func withinQuota(held, want, limit int) bool { return limit <= 0 || held+want <= limit }

// take charges n ports to o, or charges nothing and reports false when o's
// customer or source would go over its limit.
func (q *quota) take(o Owner, n int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if o.Customer != "" && !withinQuota(q.customers[o.Customer], n, q.perCustomer) {
		return false
	}
	if o.Source.IsValid() && !withinQuota(q.sources[sourceKey(o.Source)], n, q.perSource) {
		return false
	}
	if o.Customer != "" {
		if q.customers == nil {
			q.customers = map[string]int{}
		}
		q.customers[o.Customer] += n
	}
	if o.Source.IsValid() {
		if q.sources == nil {
			q.sources = map[netip.Prefix]int{}
		}
		q.sources[sourceKey(o.Source)] += n
	}
	return true
}

// give returns n ports charged to o; entries at zero go, so the maps hold
// only owners with ports.
func (q *quota) give(o Owner, n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.customers[o.Customer]; ok && o.Customer != "" {
		if q.customers[o.Customer] -= n; q.customers[o.Customer] <= 0 {
			delete(q.customers, o.Customer)
		}
	}
	k := sourceKey(o.Source)
	if _, ok := q.sources[k]; ok && o.Source.IsValid() {
		if q.sources[k] -= n; q.sources[k] <= 0 {
			delete(q.sources, k)
		}
	}
}

// held is the ports charged to o's customer and source.
func (q *quota) held(o Owner) (customer, source int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if o.Source.IsValid() {
		source = q.sources[sourceKey(o.Source)]
	}
	return q.customers[o.Customer], source
}

// AllowLocal lets the relay send to ap, one socket of this node's own
// process that stands in for a customer (the web phone gateway bridges a
// browser's media through it), although the policy refuses the node's own
// addresses. Only that exact address and port; release undoes it.
func (r *Relay) AllowLocal(ap netip.AddrPort) (release func()) {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	r.dst.local.Store(ap, struct{}{})
	return func() { r.dst.local.Delete(ap) }
}
