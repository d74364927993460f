package sipserver

import (
	"net/netip"
	"slices"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/config"
)

// isOurHost reports whether a URI host names this server or its domain.
func (s *Server) isOurHost(host string) bool {
	h := config.CanonicalName(strings.Trim(host, "[]"))
	if h == s.cfg.Domain || slices.Contains(s.cfg.Hosts, h) {
		return true
	}
	a, err := netip.ParseAddr(h)
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.selfIPs, a.Unmap())
}

// flowOf returns the flow a request arrived on.
func (s *Server) flowOf(req *sipmsg.Request) (flowRef, bool) {
	tr := sipmsg.NetworkToUpper(req.Transport())
	src := req.Source()
	if tr == "UDP" {
		s.mu.Lock()
		local := s.addr
		s.mu.Unlock()
		return flowRef{id: "UDP/" + src, transport: tr, dest: src, local: local}, true
	}
	c := s.t.flow(tr, src)
	if c == nil {
		return flowRef{}, false
	}
	return flowRef{id: c.id, transport: tr, dest: src, local: c.laddr, conn: c}, true
}

// viaHost is the host this server puts in Via and Record-Route on a flow.
func (s *Server) viaHost(f flowRef) string {
	switch {
	case s.cfg.Advertise.IsValid():
		return s.cfg.Advertise.String()
	case f.local.IsValid() && !f.local.Addr().IsUnspecified():
		return f.local.Addr().Unmap().String()
	case len(s.cfg.Hosts) > 0:
		return s.cfg.Hosts[0]
	}
	return s.cfg.Domain
}

func (s *Server) newVia(f flowRef) *sipmsg.ViaHeader {
	params := sipmsg.NewParams()
	params.Add("branch", branchPrefix+randomToken(10))
	return &sipmsg.ViaHeader{
		ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: f.transport,
		Host: s.viaHost(f), Port: int(f.local.Port()), Params: params,
	}
}

func (s *Server) recordRoute(f flowRef) *sipmsg.RecordRouteHeader {
	params := sipmsg.NewParams()
	params.Add("transport", strings.ToLower(f.transport))
	params.Add("lr", "")
	return &sipmsg.RecordRouteHeader{Address: sipmsg.Uri{
		Scheme: "sip", Host: s.viaHost(f), Port: int(f.local.Port()), UriParams: params,
	}}
}

// popOwnRoutes removes the Route entries at the top that name us (loose
// routing, RFC 3261 §16.4).
func (s *Server) popOwnRoutes(req *sipmsg.Request) {
	for {
		r := req.Route()
		if r == nil || !s.isOurHost(r.Address.Host) {
			return
		}
		req.RemoveHeader("Route")
	}
}

// decMaxForwards replaces Max-Forwards by one less (sipgo shares the
// header object between clones, so it is replaced, not decremented).
func (s *Server) decMaxForwards(req *sipmsg.Request) {
	n := sipmsg.MaxForwardsHeader(70)
	if mf := req.MaxForwards(); mf != nil && mf.Val() > 0 {
		n = sipmsg.MaxForwardsHeader(mf.Val() - 1)
	}
	if req.MaxForwards() != nil {
		req.ReplaceHeader(&n)
	} else {
		req.AppendHeader(&n)
	}
}
