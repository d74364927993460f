package sipserver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/acd"
	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/sipcore"
	"github.com/z5vrs/z5/internal/store"
)

// Relay calls, second leg: the call an interpreter's station places once
// it has answered a first leg, marked X-Z5-Relay-Call. It is accepted only
// from the station holding that relay call (the shared agents table says
// which, so the station may be registered on any node). Outbound and 911
// it goes to the voice trunk ([trunk], the route table; 911 with the
// caller's registered location by value, RFC 6442), audio only, with the
// VRS user's number as the calling number; inbound it forks to the deaf
// user's bindings with the hearing party's number as the caller. Either
// way it is anchored on the relay, and it keeps no record of its own: its
// answer and end set the relay record's conversation times, and its
// streams' stats join that record.

// secondLeg is what a station's second leg carries.
type secondLeg struct {
	relayCall string // the first leg's Call-ID: the relay record
	direction string
	station   string
}

// trunkKey names a trunk link: the gateway's address and transport.
type trunkKey struct {
	host      netip.AddrPort
	transport string
}

// trunkLink is the one connection to the carrier's gateway.
type trunkLink struct {
	mu sync.Mutex // held while dialling: calls share one connection
	fc *flowConn
}

func (s *Server) trunkHost() string {
	if u, err := config.ParseTrunkURI(s.cfg.Trunk.Address); err == nil {
		return u.Host.Addr().String()
	}
	return ""
}

// trunkRoute is where a dialled number goes: the first matching
// [[trunk.route]], else the trunk's address.
func (s *Server) trunkRoute(number string) (config.TrunkURI, error) {
	for _, r := range s.cfg.Trunk.Routes {
		if r.Match == "*" || r.Match == number || strings.HasSuffix(r.Match, "*") && strings.HasPrefix(number, strings.TrimSuffix(r.Match, "*")) {
			return config.ParseTrunkURI(r.Target)
		}
	}
	if s.cfg.Trunk.Address == "" {
		return config.TrunkURI{}, errors.New("no [trunk] address configured")
	}
	return config.ParseTrunkURI(s.cfg.Trunk.Address)
}

// trunkFlow returns the connection to a trunk address, dialling it when
// there is none (handed to sipgo like a peer node's, peers.dial).
func (s *Server) trunkFlow(ctx context.Context, u config.TrunkURI) (flowRef, error) {
	key := trunkKey{u.Host, u.Transport}
	s.trunkMu.Lock()
	l := s.trunks[key]
	if l == nil {
		l = &trunkLink{}
		s.trunks[key] = l
	}
	s.trunkMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	ref := func(fc *flowConn) flowRef {
		if fc.transport == "TLS" {
			return flowRef{id: fc.id, transport: "TLS", dest: fc.RemoteAddr().String(), conn: fc,
				local: netip.AddrPortFrom(fc.laddr.Addr(), s.trunkTLSAddr().Port())}
		}
		return flowRef{id: fc.id, transport: "TCP", dest: fc.RemoteAddr().String(), conn: fc,
			local: netip.AddrPortFrom(fc.laddr.Addr(), s.Addr().Port())}
	}
	if l.fc != nil {
		if f := ref(l.fc); f.alive(s.t) {
			return f, nil
		}
		l.fc = nil
	}
	var fc *flowConn
	var err error
	if u.Transport == "tls" {
		fc, err = s.dialTrunkTLS(ctx, u.Host)
	} else {
		fc, err = s.peers.dial(ctx, u.Host)
	}
	if err != nil {
		return flowRef{}, fmt.Errorf("connect to trunk %s (%s): %w", u.Host, u.Transport, err)
	}
	s.log.Info("connected to trunk", "remote_addr", u.Host.String(), "transport", u.Transport, "flow", fc.id)
	l.fc = fc
	return ref(fc), nil
}

// placeSecondLeg routes a station's second leg.
func (s *Server) placeSecondLeg(ctx context.Context, req *sipmsg.Request, tx sipmsg.ServerTransaction, cl sipcore.Classified, station string, flow flowRef) {
	caID := strings.TrimPrefix(station, "ca-")
	ag, err := s.store.Agent(ctx, caID)
	if err != nil || ag.State != acd.InCall || ag.CallID != cl.Relay {
		s.log.Warn("second leg refused: not this station's relay call", "station", station, "relay_call", cl.Relay)
		s.respond(tx, req, 403, "Forbidden (Not This Station's Relay Call)")
		return
	}
	rec, err := s.store.Call(ctx, cl.Relay)
	if err != nil {
		s.log.Error("relay record not found", "relay_call", cl.Relay, "error", err)
		s.respond(tx, req, 500, "Server Internal Error", retryAfter(5))
		return
	}
	want := rec.Dialed
	if rec.Direction == store.CallInbound {
		want = rec.UserNumber
	}
	if want != "" && cl.Target != want || want == "" && (cl.Target == sipcore.Emergency || cl.Target == rec.UserNumber) {
		s.respond(tx, req, 403, "Forbidden (Not The Relay Call's Number)")
		return
	}
	callID := req.CallID().Value()
	c := &call{
		id:        callID,
		callerTag: fromTag(req),
		caller: party{
			flow: flow, target: contactURI(req),
			self: fromAsTo(req.From()), peer: cloneTo(req.To()), cseq: req.CSeq().SeqNo,
		},
		early: map[string]party{},
		leg2:  &secondLeg{relayCall: cl.Relay, direction: rec.Direction, station: station},
	}
	if !s.calls.add(c) {
		s.respond(tx, req, 482, "Loop Detected")
		return
	}
	if !s.canAnchor(c, req, tx) {
		return
	}
	var forks []binding
	body := req.Body()
	if rec.Direction == store.CallInbound {
		local := s.reg.lookup(rec.UserNumber)
		forks = append(local, s.peerForks(ctx, rec.UserNumber, local)...)
		hearing := rec.From
		c.decorate = func(r *sipmsg.Request) {
			setCaller(r, hearing, s.cfg.Domain, "")
			removeHeaders(r, sipcore.RelayHeaders...)
		}
		if len(forks) == 0 {
			s.fail(c, req, tx, 480, "Temporarily Unavailable")
			return
		}
	} else {
		u, err := s.trunkRoute(cl.Target)
		var b binding
		if err == nil {
			b, err = s.trunkBinding(ctx, u, cl.Target)
		}
		if errors.Is(err, errTrunkTLS) {
			s.log.Warn("trunk not trusted", "call_id", callID, "error", err)
			s.acdm.trunkFailures.WithLabelValues("tls").Inc()
			s.fail(c, req, tx, 503, "Service Unavailable (Voice Trunk Not Trusted)", retryAfter(10),
				sipmsg.NewHeader("Warning", `399 `+s.cfg.Domain+` "the telephone network's TLS certificate was not accepted; retry or end the call"`))
			return
		}
		if err != nil {
			s.log.Warn("trunk unreachable", "call_id", callID, "error", err)
			s.acdm.trunkFailures.WithLabelValues("connect").Inc()
			s.fail(c, req, tx, 503, "Service Unavailable (Voice Trunk Unreachable)", retryAfter(10),
				sipmsg.NewHeader("Warning", `399 `+s.cfg.Domain+` "the telephone network cannot be reached; retry or end the call"`))
			return
		}
		forks = []binding{b}
		if len(body) > 0 {
			body = sipcore.AudioOnly(body)
		}
		c.decorate = s.trunkDecorator(ctx, rec, cl.Target)
		c.trunkAuth = s.cfg.Trunk.Username != ""
	}
	rc, body := s.anchor(ctx, c, req, tx, flow.remoteIP(), station, body)
	if rc == nil {
		return
	}
	if rec.Dialed == "" && rec.Direction != store.CallInbound {
		// Through the relay access number: the number is known now.
		s.updateRelayRecord(cl.Relay, func(r *store.Call) { r.Dialed, r.To = cl.Target, cl.Target })
	}
	s.log.Info("second leg", "call_id", callID, "relay_call", cl.Relay, "direction", rec.Direction, "to", cl.Target, "forks", len(forks))
	s.respond(tx, req, 100, "Trying")
	s.fork(c, req, tx, forks, body)
}

// trunkBinding is the trunk as a fork target for number.
func (s *Server) trunkBinding(ctx context.Context, u config.TrunkURI, number string) (binding, error) {
	fl, err := s.trunkFlow(ctx, u)
	if err != nil {
		return binding{}, err
	}
	user := number
	if u.User != "" {
		user = u.User
	}
	uri := sipmsg.Uri{Scheme: "sip", User: user, Host: u.Host.Addr().String(), Port: int(u.Host.Port()),
		UriParams: sipmsg.NewParams()}
	uri.UriParams.Add("transport", u.Transport)
	return binding{Binding: sipcore.Binding{Number: number, Contact: sipmsg.ContactHeader{Address: uri}}, flow: fl}, nil
}

// trunkDecorator finishes the trunk INVITE: the VRS user's number as the
// calling number (From and P-Asserted-Identity, as relay calls require),
// and for 911 the location by value and the callback number.
func (s *Server) trunkDecorator(ctx context.Context, rec store.Call, target string) func(*sipmsg.Request) {
	var pidf []byte
	if target == sipcore.Emergency {
		if loc, ok := s.locationOf(ctx, rec.UserNumber); ok {
			var err error
			if pidf, err = sipcore.PIDFLO("sip:"+rec.UserNumber+"@"+s.cfg.Domain, loc, s.now()); err != nil {
				s.log.Error("PIDF-LO not built", "error", err)
			}
		} else {
			s.log.Warn("911 call without a registered location", "user", rec.UserNumber)
		}
	}
	return func(r *sipmsg.Request) {
		setCaller(r, rec.UserNumber, s.cfg.Domain, "")
		removeHeaders(r, append([]string{"P-Asserted-Identity", "Geolocation", "Geolocation-Routing"}, sipcore.RelayHeaders...)...)
		r.AppendHeader(sipmsg.NewHeader("P-Asserted-Identity", "<sip:+1"+rec.UserNumber+"@"+s.cfg.Domain+";user=phone>"))
		if target != sipcore.Emergency {
			return
		}
		// The callback number: the VRS user's, who the PSAP calls back.
		r.AppendHeader(sipmsg.NewHeader("Call-Info", "<sip:+1"+rec.UserNumber+"@"+s.cfg.Domain+";user=phone>;purpose=callback"))
		if pidf == nil {
			return
		}
		body, ctype, cid := sipcore.EmergencyBody(r.Body(), pidf, s.cfg.Domain)
		r.RemoveHeader("Content-Type")
		r.AppendHeader(sipmsg.NewHeader("Content-Type", ctype))
		r.AppendHeader(sipmsg.NewHeader("Geolocation", "<cid:"+cid+">"))
		r.AppendHeader(sipmsg.NewHeader("Geolocation-Routing", "no"))
		r.SetBody(body)
	}
}

// setCaller makes number@domain the From of r (its tag kept).
func setCaller(r *sipmsg.Request, number, domain, display string) {
	from := r.From()
	if from == nil {
		return
	}
	from.DisplayName = display
	from.Address.User = number
	from.Address.Host = domain
	from.Address.Port = 0
}

// secondLegAnswered sets the relay record's conversation start, committed
// before the answer is relayed: the conversation is what is billed.
func (s *Server) secondLegAnswered(c *call) {
	now := s.now()
	if err := s.records.commit(store.CallWrite{Kind: store.CallChange, Call: store.Call{CallID: c.leg2.relayCall},
		Change: keepStarted(func(r *store.Call) { r.ConversationStart = now })}); err != nil {
		s.log.Error("answer relayed before its relay record was committed", "call_id", c.id, "relay_call", c.leg2.relayCall, "error", err)
	}
}

// secondLegEnded releases the leg's relay ports and adds its end and its
// streams' stats to the relay record.
func (s *Server) secondLegEnded(c *call, reason string, answered bool) {
	var stats []store.StreamStats
	if c.rc != nil {
		far := "hearing"
		if c.leg2.direction == store.CallInbound {
			far = "user"
		}
		for _, st := range c.rc.Stats() {
			ss := store.StreamStats(st)
			if ss.Leg == "caller" {
				ss.Leg = "interpreter2"
			} else {
				ss.Leg = far
			}
			stats = append(stats, ss)
		}
		if err := c.rc.Close(); err != nil {
			s.log.Warn("relay call close", "call_id", c.id, "error", err)
		}
		s.m.calls.Dec()
	}
	if !answered && c.leg2.direction != store.CallInbound && (reason == endError || reason == endUnavailable || reason == endNoAnswer) {
		s.acdm.trunkFailures.WithLabelValues(reason).Inc()
	}
	now := s.now()
	s.updateRelayRecord(c.leg2.relayCall, func(r *store.Call) {
		if answered {
			r.ConversationEnd = now
		}
		r.MediaStats = append(r.MediaStats, stats...)
	})
	s.m.callsTotal.WithLabelValues(reason).Inc()
	s.log.Info("second leg ended", "call_id", c.id, "relay_call", c.leg2.relayCall, "reason", reason)
}

// updateRelayRecord queues a change of the stored relay record, which the
// node holding the first leg completes too (atomically, as
// store.ChangeCall).
func (s *Server) updateRelayRecord(callID string, change func(*store.Call)) {
	s.records.change(callID, keepStarted(change))
}

// keepStarted is change keeping the stored StartedAt.
func keepStarted(change func(*store.Call)) func(*store.Call) {
	return func(r *store.Call) {
		change(r)
		r.StartedAt = time.Time{} // keep the stored one
	}
}
