package dnsserver

import (
	"context"
	"log/slog"
	"net/netip"

	"github.com/miekg/dns"
)

// minUDPSize is what every DNS client accepts (RFC 1035 4.2.1), and the
// cap for clients that send no EDNS0 OPT record.
const minUDPSize = 512

// Handle decides the response to one parsed query from client. It is the
// whole protocol logic; the socket loops only unpack, call it and pack.
// tcp says the query came over TCP: TCP answers are complete and not rate
// limited, UDP answers are capped to the client's buffer size (truncated
// with TC=1 when they do not fit) and pass the response rate limiter. A nil
// result means send nothing.
func (s *Server) Handle(req *dns.Msg, client netip.Addr, tcp bool) *dns.Msg {
	if req == nil || req.Response {
		// Answering a response invites reflection loops between servers.
		return nil
	}
	action := s.rateLimit(client, tcp)
	if action == rrlDrop {
		return nil
	}
	resp, maxUDP := s.answer(req)
	if action == rrlSlip {
		// A slipped response carries no data, so it amplifies nothing, but
		// a real resolver behind the address retries over TCP and gets
		// its answer: the limiter only hurts spoofed sources.
		truncate(resp)
		return resp
	}
	s.metrics.query(req, resp.Rcode)
	if !tcp {
		if s.fit(resp, maxUDP) {
			s.metrics.truncated.Inc()
		}
	}
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		q := ""
		if len(req.Question) > 0 {
			q = req.Question[0].Name + " " + dns.Type(req.Question[0].Qtype).String()
		}
		s.log.Debug("dns query", "remote_addr", client, "transport", transportName(tcp), "question", q,
			"rcode", dns.RcodeToString[resp.Rcode], "answers", len(resp.Answer), "tc", resp.Truncated)
	}
	return resp
}

// answer builds the full, untruncated response and returns the largest UDP
// response the client accepts.
func (s *Server) answer(req *dns.Msg) (*dns.Msg, int) {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Compress = true
	resp.RecursionAvailable = false
	maxUDP := minUDPSize

	// EDNS0 (RFC 6891). More than one OPT is a format error; an OPT the
	// client sent is answered with ours, carrying our buffer size.
	nopt := 0
	for _, rr := range req.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			nopt++
		}
	}
	if nopt > 1 {
		resp.Rcode = dns.RcodeFormatError
		return resp, maxUDP
	}
	if opt := req.IsEdns0(); opt != nil {
		if opt.Hdr.Name != "." {
			resp.Rcode = dns.RcodeFormatError
			return resp, maxUDP
		}
		maxUDP = min(max(int(opt.UDPSize()), minUDPSize), s.udpSize)
		ours := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		ours.SetUDPSize(uint16(s.udpSize))
		// RFC 3225 3: the DO bit is copied; we sign nothing, so it
		// changes no answer.
		ours.SetDo(opt.Do())
		resp.Extra = append(resp.Extra, ours)
		if opt.Version() != 0 {
			resp.Rcode = dns.RcodeBadVers
			return resp, maxUDP
		}
	}

	if req.Opcode != dns.OpcodeQuery {
		resp.Rcode = dns.RcodeNotImplemented
		return resp, maxUDP
	}
	if len(req.Question) != 1 {
		resp.Rcode = dns.RcodeFormatError
		return resp, maxUDP
	}
	q := req.Question[0]
	switch q.Qtype {
	case dns.TypeOPT, dns.TypeTSIG:
		// Pseudo-records, never a question.
		resp.Rcode = dns.RcodeFormatError
		return resp, maxUDP
	}
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		resp.Rcode = dns.RcodeRefused
		return resp, maxUDP
	}
	name := lowerASCII(q.Name)
	z := s.zd.zoneOf(name)
	if z == nil {
		// Authoritative only: we are nobody's resolver.
		resp.Rcode = dns.RcodeRefused
		return resp, maxUDP
	}
	switch q.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		// The zone is built from the deployment config on every node;
		// there is nothing to transfer, and a transfer hands out the
		// whole topology.
		resp.Rcode = dns.RcodeRefused
		return resp, maxUDP
	case dns.TypeMAILA, dns.TypeMAILB:
		resp.Rcode = dns.RcodeNotImplemented
		return resp, maxUDP
	}
	resp.Authoritative = true

	e := s.zd.names[name]
	if e == nil {
		if s.zd.ents[name] {
			resp.Ns = []dns.RR{s.negativeSOA(z, z.soa.Minttl)}
			return resp, maxUDP
		}
		resp.Rcode = dns.RcodeNameError
		resp.Ns = []dns.RR{s.negativeSOA(z, z.soa.Minttl)}
		return resp, maxUDP
	}

	if q.Qtype == dns.TypeANY {
		// RFC 8482: one small synthesized record instead of the whole
		// node, so ANY is useless for amplification.
		resp.Answer = []dns.RR{&dns.HINFO{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeHINFO, Class: dns.ClassINET, Ttl: z.soa.Hdr.Ttl},
			Cpu: "RFC8482",
		}}
		return resp, maxUDP
	}

	rrs, dynTTL := s.records(e, q.Qtype)
	if len(rrs) == 0 {
		negTTL := z.soa.Minttl
		if dynTTL != 0 {
			// No healthy MCS right now: let resolvers ask again soon.
			negTTL = min(negTTL, dynTTL)
		}
		resp.Ns = []dns.RR{s.negativeSOA(z, negTTL)}
		return resp, maxUDP
	}
	for _, rr := range rrs {
		rr = dns.Copy(rr)
		// The owner keeps the question's spelling: resolvers using 0x20
		// case randomisation compare it.
		rr.Header().Name = q.Name
		resp.Answer = append(resp.Answer, rr)
	}
	var extra []dns.RR
	for _, target := range e.extra[q.Qtype] {
		te := s.zd.names[target]
		if te == nil {
			continue
		}
		switch q.Qtype {
		case dns.TypeNAPTR:
			// RFC 3403 4.2: the SRV records the replacements name.
			srv, _ := s.records(te, dns.TypeSRV)
			extra = append(extra, srv...)
		default:
			a, _ := s.records(te, dns.TypeA)
			aaaa, _ := s.records(te, dns.TypeAAAA)
			extra = append(extra, a...)
			extra = append(extra, aaaa...)
		}
	}
	// Additional records go before the OPT, which is conventionally last.
	resp.Extra = append(extra, resp.Extra...)
	return resp, maxUDP
}

// records returns the records of type t at e: the fixed ones plus, for A
// and AAAA, the healthy nodes of its dynamic sets. dynTTL is non-zero when a
// dynamic set could have contributed, so an empty answer is short-lived.
func (s *Server) records(e *entry, t uint16) (rrs []dns.RR, dynTTL uint32) {
	rrs = e.static[t]
	if t != dns.TypeA && t != dns.TypeAAAA || len(e.dyn) == 0 {
		return rrs, 0
	}
	seen := make(map[netip.Addr]bool, len(rrs))
	for _, rr := range rrs {
		seen[rrAddr(rr)] = true
	}
	out := rrs[:len(rrs):len(rrs)] // appending must not touch the zone data
	for _, d := range e.dyn {
		if dynTTL == 0 || d.ttl < dynTTL {
			dynTTL = d.ttl
		}
		for _, n := range d.nodes {
			if n.addr.Is4() != (t == dns.TypeA) || seen[n.addr] {
				continue
			}
			// Asked on every query: membership changes within a
			// heartbeat, and the check is a map lookup.
			if s.health != nil && !s.health.Healthy(n.node) {
				continue
			}
			seen[n.addr] = true
			out = append(out, addrRR(e.name, n.addr, d.ttl))
		}
	}
	return out, dynTTL
}

func rrAddr(rr dns.RR) netip.Addr {
	switch rr := rr.(type) {
	case *dns.A:
		a, _ := netip.AddrFromSlice(rr.A.To4())
		return a
	case *dns.AAAA:
		a, _ := netip.AddrFromSlice(rr.AAAA)
		return a.Unmap()
	}
	return netip.Addr{}
}

// negativeSOA is the zone's SOA for the authority section of NXDOMAIN and
// NODATA answers; its TTL is the negative-caching time (RFC 2308 5).
func (s *Server) negativeSOA(z *zone, ttl uint32) dns.RR {
	soa := *z.soa
	soa.Hdr.Ttl = min(ttl, soa.Minttl, soa.Hdr.Ttl)
	return &soa
}

// fit makes a UDP response fit in size bytes: first by dropping the
// additional records, then by dropping all data and setting TC so the
// client retries over TCP. It reports whether TC was set.
func (s *Server) fit(resp *dns.Msg, size int) bool {
	if resp.Len() <= size {
		return false
	}
	resp.Extra = onlyOPT(resp.Extra)
	if resp.Len() <= size {
		return false
	}
	truncate(resp)
	return true
}

// truncate empties the response, keeping the question and the OPT, and
// sets TC (RFC 2181 9: a partial RRset would be discarded anyway).
func truncate(resp *dns.Msg) {
	resp.Truncated = true
	resp.Answer, resp.Ns = nil, nil
	resp.Extra = onlyOPT(resp.Extra)
}

func onlyOPT(rrs []dns.RR) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			out = append(out, rr)
		}
	}
	return out
}

// lowerASCII folds A-Z only: DNS names compare case-insensitively in ASCII
// (RFC 4343), and miekg/dns presents other bytes as \DDD escapes.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// transportName is the transport key's value for a query over TCP or not.
func transportName(tcp bool) string {
	if tcp {
		return "tcp"
	}
	return "udp"
}
