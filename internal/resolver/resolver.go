// Package resolver is step 1 on the client side: it resolves the provider's
// names through the provider's own nameservers only (never the system
// resolver), in profile order, over UDP and then TCP when the answer is
// truncated or UDP gets no answer, with per-try timeouts, failover to the
// next nameserver and a cache that honours TTLs.
package resolver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// ErrNoAnswer: the name exists nowhere in the provider's zones or has no
// record of the type asked.
var ErrNoAnswer = errors.New("no such record")

// Resolver asks a fixed list of nameservers.
type Resolver struct {
	servers []netip.AddrPort
	timeout time.Duration
	now     func() time.Time

	mu     sync.Mutex // guards cache and failed
	cache  map[cacheKey]cacheEntry
	failed map[netip.AddrPort]time.Time // server -> when it last gave no answer
}

// failPenalty is how long a nameserver that gave no answer is tried after
// the others: a silent server then costs its timeout once, not per name.
const failPenalty = 30 * time.Second

type cacheKey struct {
	name  string
	qtype uint16
}

type cacheEntry struct {
	rrs     []dns.RR
	expires time.Time
}

// Attempt records one query for diagnostics (z5 check, demo output).
type Attempt struct {
	Server netip.AddrPort
	Net    string // "udp" or "tcp"
	RTT    time.Duration
	Err    error
}

// Result is a lookup's records and how they were obtained.
type Result struct {
	Addrs    []netip.Addr
	SRV      []*dns.SRV
	TTL      time.Duration
	Cached   bool
	Attempts []Attempt
}

// New returns a resolver for servers, tried in order. timeout bounds each
// single try (default 2s).
func New(servers []netip.AddrPort, timeout time.Duration) *Resolver {
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	return &Resolver{servers: servers, timeout: timeout, now: time.Now, cache: map[cacheKey]cacheEntry{}, failed: map[netip.AddrPort]time.Time{}}
}

// LookupHost resolves name to IPv4 and IPv6 addresses.
func (r *Resolver) LookupHost(ctx context.Context, name string) (Result, error) {
	res, err := r.lookup(ctx, name, dns.TypeA)
	if err != nil && !errors.Is(err, ErrNoAnswer) {
		return res.Result, err
	}
	res6, err6 := r.lookup(ctx, name, dns.TypeAAAA)
	res.Attempts = append(res.Attempts, res6.Attempts...)
	for _, rr := range res6.rrs {
		if a, ok := rr.(*dns.AAAA); ok {
			if ip, ok := netip.AddrFromSlice(a.AAAA); ok {
				res.Addrs = append(res.Addrs, ip)
			}
		}
	}
	if len(res.Addrs) == 0 {
		if err6 != nil && !errors.Is(err6, ErrNoAnswer) {
			return res.Result, err6
		}
		return res.Result, fmt.Errorf("resolve %s: %w", name, ErrNoAnswer)
	}
	return res.Result, nil
}

// LookupSRV resolves an SRV name such as "_sip._tcp.mcs.z5.test", sorted
// by priority then weight (RFC 2782 order, without randomisation so
// failover is predictable).
func (r *Resolver) LookupSRV(ctx context.Context, name string) (Result, error) {
	res, err := r.lookup(ctx, name, dns.TypeSRV)
	if err != nil {
		return res.Result, err
	}
	for _, rr := range res.rrs {
		if s, ok := rr.(*dns.SRV); ok {
			res.SRV = append(res.SRV, s)
		}
	}
	sortSRV(res.SRV)
	return res.Result, nil
}

type lookupResult struct {
	Result
	rrs []dns.RR
}

func (r *Resolver) lookup(ctx context.Context, name string, qtype uint16) (lookupResult, error) {
	var res lookupResult
	fqdn := dns.Fqdn(strings.ToLower(name))
	key := cacheKey{fqdn, qtype}
	now := r.now()
	r.mu.Lock()
	e, ok := r.cache[key]
	r.mu.Unlock()
	if ok && now.Before(e.expires) {
		res.rrs, res.Cached, res.TTL = e.rrs, true, e.expires.Sub(now)
		res.collect(qtype)
		if len(res.rrs) == 0 {
			return res, fmt.Errorf("resolve %s: %w (cached)", name, ErrNoAnswer)
		}
		return res, nil
	}
	if len(r.servers) == 0 {
		return res, errors.New("resolve: no nameservers in the provider profile")
	}
	var errs []error
	for _, srv := range r.order(now) {
		if dl, ok := ctx.Deadline(); ctx.Err() != nil || ok && !time.Now().Before(dl) {
			// The caller gave up (its deadline may pass a moment before
			// ctx says so): a server never asked must not be marked failed.
			err := ctx.Err()
			if err == nil {
				err = context.DeadlineExceeded
			}
			errs = append(errs, fmt.Errorf("%s: not asked: %w", srv, err))
			break
		}
		msg, att := r.exchange(ctx, srv, fqdn, qtype)
		res.Attempts = append(res.Attempts, att...)
		if msg == nil {
			r.mu.Lock()
			r.failed[srv] = r.now()
			r.mu.Unlock()
			errs = append(errs, att[len(att)-1].Err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		switch msg.Rcode {
		case dns.RcodeSuccess, dns.RcodeNameError:
		default:
			errs = append(errs, fmt.Errorf("%s: %s", srv, dns.RcodeToString[msg.Rcode]))
			continue
		}
		ttl, rrs := answerTTL(msg, fqdn, qtype)
		r.mu.Lock()
		delete(r.failed, srv)
		r.cache[key] = cacheEntry{rrs: rrs, expires: now.Add(ttl)}
		r.mu.Unlock()
		res.rrs, res.TTL = rrs, ttl
		res.collect(qtype)
		if len(rrs) == 0 {
			return res, fmt.Errorf("resolve %s: %w", name, ErrNoAnswer)
		}
		return res, nil
	}
	return res, fmt.Errorf("resolve %s: every provider nameserver failed: %w", name, errors.Join(errs...))
}

// order is the servers in profile order, those that recently gave no
// answer moved to the end (still tried: they may be the only ones left).
func (r *Resolver) order(now time.Time) []netip.AddrPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]netip.AddrPort, 0, len(r.servers))
	var late []netip.AddrPort
	for _, s := range r.servers {
		if t, ok := r.failed[s]; ok && now.Sub(t) < failPenalty {
			late = append(late, s)
		} else {
			out = append(out, s)
		}
	}
	return append(out, late...)
}

func (res *lookupResult) collect(qtype uint16) {
	if qtype != dns.TypeA {
		return
	}
	for _, rr := range res.rrs {
		if a, ok := rr.(*dns.A); ok {
			if ip, ok := netip.AddrFromSlice(a.A.To4()); ok {
				res.Addrs = append(res.Addrs, ip)
			}
		}
	}
}

// exchange asks one server: UDP first, TCP when truncated or when UDP gets
// no answer in time (a firewall may pass only one of them).
func (r *Resolver) exchange(ctx context.Context, srv netip.AddrPort, fqdn string, qtype uint16) (*dns.Msg, []Attempt) {
	q := new(dns.Msg)
	q.SetQuestion(fqdn, qtype)
	q.RecursionDesired = false
	q.SetEdns0(1232, false)
	var atts []Attempt
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: r.timeout}
		tctx, cancel := context.WithTimeout(ctx, r.timeout)
		start := time.Now()
		msg, _, err := c.ExchangeContext(tctx, q, srv.String())
		cancel()
		att := Attempt{Server: srv, Net: network, RTT: time.Since(start), Err: err}
		if err == nil && msg.Id != q.Id {
			att.Err = errors.New("reply id mismatch")
		}
		if att.Err != nil {
			att.Err = fmt.Errorf("%s %s: %w", network, srv, att.Err)
			atts = append(atts, att)
			continue
		}
		if msg.Truncated && network == "udp" {
			att.Err = fmt.Errorf("udp %s: truncated, retrying over tcp", srv)
			atts = append(atts, att)
			continue
		}
		atts = append(atts, att)
		return msg, atts
	}
	return nil, atts
}

// answerTTL picks the records for (fqdn, qtype), following CNAMEs, and the
// TTL to cache them: the smallest record TTL, or the SOA minimum for a
// negative answer (RFC 2308), at least one second.
func answerTTL(msg *dns.Msg, fqdn string, qtype uint16) (time.Duration, []dns.RR) {
	var rrs []dns.RR
	ttl := uint32(0)
	first := true
	want := fqdn
	for range 8 { // bounded CNAME chain
		found := false
		for _, rr := range msg.Answer {
			h := rr.Header()
			if !strings.EqualFold(h.Name, want) {
				continue
			}
			if h.Rrtype == qtype {
				rrs = append(rrs, rr)
				found = true
			} else if cn, ok := rr.(*dns.CNAME); ok && h.Rrtype == dns.TypeCNAME {
				want = cn.Target
				found = true
			}
			if first || h.Ttl < ttl {
				ttl, first = h.Ttl, false
			}
		}
		if len(rrs) > 0 || !found {
			break
		}
	}
	if len(rrs) == 0 {
		ttl = 30
		for _, rr := range msg.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				ttl = min(soa.Minttl, soa.Hdr.Ttl)
			}
		}
	}
	return max(time.Duration(ttl)*time.Second, time.Second), rrs
}

func sortSRV(s []*dns.SRV) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0; j-- {
			a, b := s[j-1], s[j]
			if a.Priority < b.Priority || (a.Priority == b.Priority && a.Weight >= b.Weight) {
				break
			}
			s[j-1], s[j] = b, a
		}
	}
}

// Flush empties the cache (after a failover, to see fresh health).
func (r *Resolver) Flush() {
	r.mu.Lock()
	clear(r.cache)
	clear(r.failed)
	r.mu.Unlock()
}
