package netcheck

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// probeDNS asks one nameserver, over the rule's transport only, for the
// ZDial name: no fallback, so UDP and TCP are judged each alone.
func (c *checker) probeDNS(ctx context.Context, r Rule) Result {
	server := netip.AddrPortFrom(r.Dest, uint16(r.Ports.Min))
	name := c.p.Names.ZDial
	start := time.Now()
	msg, err := c.query(ctx, server, r.Proto, name, dns.TypeA)
	elapsed := time.Since(start)
	if err != nil {
		return result(r, StatusBlocked, elapsed, fmt.Sprintf("DNS over %s to %s: %s", strings.ToUpper(r.Proto), server, why(err, c.opts.Timeout)))
	}
	switch {
	case msg.Rcode != dns.RcodeSuccess:
		return result(r, StatusDegraded, elapsed, fmt.Sprintf("reachable, but answered %s for %s (not the provider's nameserver?)", dns.RcodeToString[msg.Rcode], name))
	case len(addrsOf(msg, name)) == 0:
		return result(r, StatusDegraded, elapsed, fmt.Sprintf("reachable, but has no address for %s", name))
	}
	detail := fmt.Sprintf("%s -> %s", name, joinAddrs(addrsOf(msg, name)))
	if msg.Truncated {
		detail += " (truncated: TCP needed for large answers)"
	}
	return c.timed(r, elapsed, detail)
}

// query sends one question over network ("udp" or "tcp") within the probe
// timeout.
func (c *checker) query(ctx context.Context, server netip.AddrPort, network, name string, qtype uint16) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(strings.ToLower(name)), qtype)
	q.RecursionDesired = false
	q.SetEdns0(1232, false)
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	cl := &dns.Client{Net: network, Timeout: c.opts.Timeout}
	msg, _, err := cl.ExchangeContext(ctx, q, server.String())
	if err != nil {
		return nil, err
	}
	if msg.Id != q.Id {
		return nil, fmt.Errorf("reply id mismatch")
	}
	return msg, nil
}

// addrsOf collects the A and AAAA records for name, following CNAMEs.
func addrsOf(msg *dns.Msg, name string) []netip.Addr {
	want := dns.Fqdn(strings.ToLower(name))
	var out []netip.Addr
	for range 8 { // bounded CNAME chain
		next := ""
		for _, rr := range msg.Answer {
			if !strings.EqualFold(rr.Header().Name, want) {
				continue
			}
			switch v := rr.(type) {
			case *dns.A:
				if a, ok := netip.AddrFromSlice(v.A.To4()); ok {
					out = append(out, a)
				}
			case *dns.AAAA:
				if a, ok := netip.AddrFromSlice(v.AAAA); ok {
					out = append(out, a)
				}
			case *dns.CNAME:
				next = v.Target
			}
		}
		if len(out) > 0 || next == "" {
			break
		}
		want = strings.ToLower(next)
	}
	return out
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// endpoint is a nameserver and a transport that answered.
type endpoint struct {
	server  netip.AddrPort
	network string
}

// resolveNames resolves every provider name (ZDial, the MCS load-balanced
// name, each MCS host, the SIP domain) through the nameservers that
// answered step 1's probes, UDP ones first: a name that fails here makes
// its rules "skipped", not blocked.
func (c *checker) resolveNames(ctx context.Context, dnsRes []Result) []NameResult {
	var eps []endpoint
	for _, network := range []string{"udp", "tcp"} {
		for _, res := range dnsRes {
			if res.Rule.Proto == network && (res.Status == StatusOK || res.Status == StatusSlow) {
				eps = append(eps, endpoint{netip.AddrPortFrom(res.Rule.Dest, uint16(res.Rule.Ports.Min)), network})
			}
		}
	}
	var names []string
	for _, n := range append([]string{c.p.Names.ZDial, c.p.Names.LBMCS}, append(slices.Clone(c.p.Names.MCS), c.p.Names.SIPDomain)...) {
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	out := make([]NameResult, len(names))
	// A nameserver that answered the probe may still go quiet: bound the
	// whole phase, not only each query.
	ctx, cancel := context.WithTimeout(ctx, 2*c.opts.Timeout)
	defer cancel()
	var wg sync.WaitGroup
	for i, name := range names {
		out[i].Name = name
		if len(eps) == 0 {
			out[i].Error = "no provider nameserver answered"
			continue
		}
		wg.Go(func() { out[i] = c.resolve(ctx, name, eps) })
	}
	wg.Wait()
	return out
}

// resolve asks for A then AAAA, trying the endpoints in order until one
// answers; at most a few tries so a flaky server costs little.
func (c *checker) resolve(ctx context.Context, name string, eps []endpoint) NameResult {
	nr := NameResult{Name: name}
	var lastErr error
	answered := false
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		for _, ep := range eps[:min(len(eps), 3)] {
			msg, err := c.query(ctx, ep.server, ep.network, name, qtype)
			if err != nil {
				lastErr = fmt.Errorf("%s over %s: %s", ep.server, ep.network, why(err, c.opts.Timeout))
				continue
			}
			answered = true
			for _, a := range addrsOf(msg, name) {
				if !slices.Contains(nr.Addrs, a) {
					nr.Addrs = append(nr.Addrs, a)
				}
			}
			break
		}
	}
	switch {
	case len(nr.Addrs) > 0:
	case answered:
		nr.Error = "the provider's nameservers have no address for it"
	case lastErr != nil:
		nr.Error = lastErr.Error()
	}
	return nr
}
