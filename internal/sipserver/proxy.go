package sipserver

import (
	"context"
	"errors"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/relay"
	"github.com/z5vrs/z5/internal/sipcore"
	"github.com/z5vrs/z5/internal/store"
)

// The proxy (RFC 3261 §16) routes calls between registered numbers. It is
// transaction stateful and dialog aware: an INVITE forks to every binding
// of the callee over that binding's own flow, the proxy Record-Routes, and
// requests inside a dialog are routed by the proxy's own record of the
// dialog to the other party's flow, never by the Request-URI's host (it
// names a client behind a firewall that admits nothing inbound). Requests
// for other domains are refused: this is no open relay.
//
// Every SDP body crossing the proxy is rewritten by the media relay, so
// media always flows through the MCS (step 5).
//
// The fork's outcome is sipcore.Fork's decision (proxy_fork.go carries it
// out); requests inside a dialog are in proxy_dialog.go, the call table and
// a call's end in call.go.

// noBuild is a sipgo client option that leaves a request as built: sipgo
// otherwise adds its own Via, From and the like.
func noBuild(*sipgo.Client, *sipmsg.Request) error { return nil }

// identify establishes who sends an INVITE (or other out-of-dialog
// request): a request over a TCP/TLS flow that a registration of the
// device is bound to is trusted as that device, since the flow is a
// connection the device authenticated with digest when it registered and
// that no one else can inject into. Anything else (UDP, or an unregistered
// connection) must answer a 407 digest challenge. The From user must then
// be the device's number.
func (s *Server) identify(ctx context.Context, req *sipmsg.Request, tx sipmsg.ServerTransaction) (number string, deviceID int64, flow flowRef, ok bool) {
	flow, ok = s.flowOf(req)
	if !ok {
		return "", 0, flow, false
	}
	ok = false
	if flow.conn != nil {
		number, deviceID, ok = s.reg.flowDevice(flow.id)
	}
	sipUser := ""
	if !ok {
		dev, authed := s.authenticate(ctx, req, tx, proxyAuth)
		if !authed {
			return "", 0, flow, false
		}
		number, deviceID, sipUser = dev.Number, dev.ID, dev.SIPUser
	}
	if u := req.From().Address.User; u != number && (sipUser == "" || u != sipUser) {
		s.m.authFailures.WithLabelValues("wrong-from").Inc()
		s.respond(tx, req, 403, "Forbidden (From Does Not Match Credentials)")
		return "", 0, flow, false
	}
	return number, deviceID, flow, true
}

// invite handles an initial INVITE: authenticate, find the callee's
// bindings, anchor the media, fork, and relay the outcome.
func (s *Server) invite(ctx context.Context, req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if origin, ok := s.forwardedBy(req); ok {
		s.transitInvite(req, tx, origin)
		return
	}
	if s.cfg.relayOn() && s.trunkGate(ctx, req, tx) {
		return
	}
	callerNumber, callerDevice, callerFlow, ok := s.identify(ctx, req, tx)
	if !ok {
		return
	}
	if s.cfg.relayOn() && s.routeRelay(ctx, req, tx, callerNumber, callerDevice, callerFlow) {
		return
	}
	// From here on every attempt is accounted for: a call detail record
	// is made, and ends with the reason the call did.
	callee, isNumber := sipcore.TargetNumber(req.Recipient.User)
	if !isNumber {
		callee = req.Recipient.User
	}
	callID := req.CallID().Value()
	c := &call{
		id:        callID,
		callerTag: fromTag(req),
		caller: party{
			flow: callerFlow, deviceID: callerDevice, target: contactURI(req),
			self: fromAsTo(req.From()), peer: cloneTo(req.To()), cseq: req.CSeq().SeqNo,
		},
		early: map[string]party{},
		record: store.Call{
			CallID: callID, From: callerNumber, To: callee, Node: s.cfg.Node, StartedAt: s.now(),
		},
	}
	if !s.calls.add(c) {
		// Same Call-ID, new transaction: a merged or looped request
		// (RFC 3261 §8.2.2.2).
		s.respond(tx, req, 482, "Loop Detected")
		return
	}
	s.records.insert(c.record) // queued: the INVITE goes on without it
	if !isNumber {
		s.fail(c, req, tx, 404, "Not Found")
		return
	}
	if _, err := s.store.Number(ctx, callee); errors.Is(err, store.ErrNotFound) {
		s.fail(c, req, tx, 404, "Not Found")
		return
	} else if err != nil {
		s.log.Error("number lookup failed", "number", callee, "error", err)
		s.fail(c, req, tx, 500, "Server Internal Error", retryAfter(5))
		return
	}
	body := req.Body()
	if len(body) > 0 && !isSDP(req) {
		s.fail(c, req, tx, 415, "Unsupported Media Type", sipmsg.NewHeader("Accept", "application/sdp"))
		return
	}
	var forks []binding
	local := s.reg.lookup(callee)
	for _, i := range sipcore.LocalTargets(coreBindings(local), callerFlow.id) {
		forks = append(forks, local[i])
	}
	forks = append(forks, s.peerForks(ctx, callee, local)...)
	if len(forks) == 0 {
		s.fail(c, req, tx, 480, "Temporarily Unavailable")
		return
	}
	if s.relay == nil {
		s.fail(c, req, tx, 503, "Service Unavailable (No Media Relay)", retryAfter(30))
		return
	}
	rc, offer := s.anchor(ctx, c, req, tx, callerFlow.remoteIP(), callerNumber, body)
	if rc == nil {
		return
	}
	s.log.Info("call", "call_id", callID, "from", callerNumber, "to", callee, "forks", len(forks))
	s.respond(tx, req, 100, "Trying")
	s.fork(c, req, tx, forks, offer)
}

// canAnchor refuses an INVITE whose body is not SDP (415) and, with no
// media relay on this node, every INVITE (503), ending the call; it
// reports whether the call may go on to anchor.
func (s *Server) canAnchor(c *call, req *sipmsg.Request, tx sipmsg.ServerTransaction) bool {
	if len(req.Body()) > 0 && !isSDP(req) {
		s.fail(c, req, tx, 415, "Unsupported Media Type", sipmsg.NewHeader("Accept", "application/sdp"))
		return false
	}
	if s.relay == nil {
		s.fail(c, req, tx, 503, "Service Unavailable (No Media Relay)", retryAfter(30))
		return false
	}
	return true
}

// anchor gives c its relay ports and moves the caller's offer, if any, onto
// them. The caller's address and, when number is one of ours, its customer
// are charged for the ports, so one customer cannot take the range from the
// others; number "" charges the address alone. When the offer cannot be
// anchored, the caller is answered, the call ended and rc is nil.
func (s *Server) anchor(ctx context.Context, c *call, req *sipmsg.Request, tx sipmsg.ServerTransaction, caller netip.Addr, number string, offer []byte) (rc *relay.Call, _ []byte) {
	owner := relay.Owner{Source: caller}
	if number != "" {
		if n, err := s.store.Number(ctx, number); err == nil {
			owner.Customer = relay.CustomerKey(n.CustomerID)
		}
	}
	rc = s.relay.NewCallFor(owner, c.id, func() { s.mediaTimeout(c) })
	c.mu.Lock() // the operator's view (ActiveCalls) reads rc of ringing calls
	c.rc = rc
	c.mu.Unlock()
	s.m.calls.Inc()
	if len(offer) == 0 {
		return rc, offer
	}
	offer, err := rc.RewriteSDP(relay.SideA, offer, caller)
	if err != nil {
		s.rejectSDP(c, req, tx, err)
		return nil, nil
	}
	return rc, offer
}

// fail answers the call's INVITE with a failure and ends the call with
// the reason the code stands for.
func (s *Server) fail(c *call, req *sipmsg.Request, tx sipmsg.ServerTransaction, code int, reason string, hs ...sipmsg.Header) {
	s.respond(tx, req, code, reason, hs...)
	s.end(c, sipcore.EndReasonFor(code), code)
}

// rejectSDP answers an offer the relay could not anchor and ends the call.
func (s *Server) rejectSDP(c *call, req *sipmsg.Request, tx sipmsg.ServerTransaction, err error) {
	if errors.Is(err, relay.ErrQuota) {
		s.log.Warn("relay port quota reached", "call_id", c.id)
		s.fail(c, req, tx, 503, "Service Unavailable (Media Port Quota Reached)", retryAfter(30))
		return
	}
	if errors.Is(err, relay.ErrNoPorts) {
		s.log.Warn("relay out of ports", "call_id", c.id)
		s.fail(c, req, tx, 503, "Service Unavailable (Media Ports Exhausted)", retryAfter(10))
		return
	}
	if errors.Is(err, relay.ErrSRTPRequired) {
		s.log.Info("offer without SRTP refused", "call_id", c.id, "error", err)
		s.fail(c, req, tx, 488, "Not Acceptable Here (Encryption Required)",
			sipmsg.NewHeader("Warning", `399 `+s.cfg.Domain+` "this service requires SRTP (RTP/SAVP with a=crypto)"`))
		return
	}
	s.log.Info("offer not anchored", "call_id", c.id, "error", err)
	s.fail(c, req, tx, 488, "Not Acceptable Here", sipmsg.NewHeader("Warning", `399 `+s.cfg.Domain+` "session description not accepted"`))
}

// forkRequest builds the INVITE for one binding (RFC 3261 §16.6).
func (s *Server) forkRequest(req *sipmsg.Request, b binding, callerFlow flowRef, offer []byte) *sipmsg.Request {
	f := req.Clone()
	f.Recipient = *b.Contact.Address.Clone()
	s.popOwnRoutes(f)
	f.RemoveHeader("Proxy-Authorization") // our realm's credentials stop here
	s.decMaxForwards(f)
	f.PrependHeader(s.newVia(b.flow))
	// Record-Route so the dialog's requests come through us; two entries
	// when the legs differ in address or transport (RFC 5658).
	rrCallee := s.recordRoute(b.flow)
	rrCaller := s.recordRoute(callerFlow)
	if rrCallee.Address.String() == rrCaller.Address.String() {
		f.PrependHeader(rrCallee)
	} else {
		f.PrependHeader(rrCallee, rrCaller)
	}
	f.SetBody(offer)
	s.passOn(f, req, b.flow.peer != "")
	if b.flow.peer != "" {
		f.AppendHeader(sipmsg.NewHeader(hdrForwarded, s.cfg.Node))
	}
	f.SetTransport(b.flow.transport)
	f.SetDestination(b.flow.dest)
	return f
}

// upstream turns a response from downstream into the one for the sender
// of req: our Via removed, addressed like a response to req (sipgo's clone
// keeps the downstream destination, which is us).
func upstream(res *sipmsg.Response, req *sipmsg.Request) *sipmsg.Response {
	up := res.Clone()
	up.RemoveHeader("Via")
	up.SetTransport(req.Transport())
	up.SetDestination(req.Source())
	return up
}

// relayBody prepares a response for the sender of req with any SDP body
// anchored on the relay for the side that sent it.
func (s *Server) relayBody(c *call, res *sipmsg.Response, req *sipmsg.Request, fromCaller bool) (*sipmsg.Response, error) {
	up := upstream(res, req)
	c.mu.Lock()
	src, dst := c.callee.flow, c.caller.flow
	c.mu.Unlock()
	if fromCaller {
		src, dst = dst, src
	}
	s.passOn(up, res, dst.peer != "")
	if c.rc != nil && len(res.Body()) > 0 && isSDPType(res.ContentType()) {
		body, err := c.rc.RewriteSDP(c.sideOf(fromCaller), res.Body(), s.signalIP(res, responseSourceIP(res, src)))
		if err != nil {
			s.log.Info("answer not anchored", "call_id", c.id, "error", err)
			return nil, err
		}
		up.SetBody(body)
	}
	return up, nil
}

// responseSourceIP is the address a response came from.
func responseSourceIP(res *sipmsg.Response, fallback flowRef) netip.Addr {
	if ap, err := netip.ParseAddrPort(res.Source()); err == nil {
		return ap.Addr().Unmap()
	}
	return fallback.remoteIP()
}

// calleeParty describes the callee from the fork that answered.
func (s *Server) calleeParty(f *fork, res *sipmsg.Response) party {
	target := f.b.Contact.Address
	if ch := res.Contact(); ch != nil {
		target = ch.Address
	}
	return party{
		flow: f.b.flow, deviceID: f.b.DeviceID, target: *target.Clone(),
		self: cloneTo(res.To()), peer: fromAsTo(f.req.From()),
	}
}

// answer completes a call with the winning fork's 2xx.
func (s *Server) answer(c *call, req *sipmsg.Request, tx sipmsg.ServerTransaction, f *fork, res *sipmsg.Response) {
	callee := s.calleeParty(f, res)
	c.mu.Lock()
	c.callee = callee
	c.calleeTag = sipcore.ToTag(res)
	c.caller.peer = cloneTo(res.To()) // now with the callee's tag
	c.mu.Unlock()
	up, err := s.relayBody(c, res, req, false)
	if err == nil {
		s.restoreRecordRoute(up, callee.flow, c.caller.flow)
	}
	if err != nil {
		// Answered, but the media cannot be anchored: hang up the callee
		// and fail the call rather than let media bypass the relay.
		s.hangUpLate(c, f, res)
		if errors.Is(err, relay.ErrSRTPRequired) {
			s.log.Info("answer without SRTP refused", "call_id", c.id, "error", err)
			s.fail(c, req, tx, 488, "Not Acceptable Here (Encryption Required)",
				sipmsg.NewHeader("Warning", `399 `+s.cfg.Domain+` "the called device answered without SRTP, which this service requires"`))
			return
		}
		s.fail(c, req, tx, 500, "Server Internal Error (Media Not Anchored)")
		return
	}
	c.mu.Lock()
	c.answered = true
	c.record.AnsweredAt = s.now()
	c.record.Status = res.StatusCode
	rec := c.record
	c.mu.Unlock()
	switch {
	case c.leg2 != nil:
		c.rc.Answered()
		s.secondLegAnswered(c)
	case !c.transit:
		c.rc.Answered()
		// Billing starts at the answer: its record is committed before
		// the caller hears of it.
		if err := s.records.commit(store.CallWrite{Kind: store.CallReplace, Call: rec}); err != nil {
			s.log.Error("answer relayed before its call record was committed", "call_id", c.id, "error", err)
		}
	}
	s.log.Info("call answered", "call_id", c.id, "flow", f.b.flow.id)
	if err := s.reply(tx, req, up); err != nil {
		s.log.Debug("2xx not relayed", "call_id", c.id, "error", err)
	}
	if sipmsg.IsReliable(f.b.flow.transport) {
		f.tx.Terminate() // no 2xx retransmissions to absorb
	} else {
		f.tx.OnRetransmission(func(r *sipmsg.Response) {
			if again, err := s.relayBody(c, r, req, false); err == nil {
				s.reply(tx, req, again)
			}
		})
	}
	if !sipmsg.IsReliable(req.Transport()) {
		// An ACK reusing the INVITE's branch lands in the server
		// transaction, which stays alive on UDP; forward those too.
		s.goAsync(func() {
			for {
				select {
				case ack := <-tx.Acks():
					s.inDialogAck(ack)
				case <-tx.Done():
					return
				case <-s.ctx.Done():
					return
				}
			}
		})
	}
}

// restoreRecordRoute puts our caller-facing Record-Route back into a 2xx
// for the caller when the callee returned only the callee-facing one of
// the two the proxy inserted (RFC 5658; a SIPp scenario's
// [last_Record-Route:] copies one header line): without it the caller
// would send its ACK and BYE to the interface and transport that face the
// callee (plain TCP where the caller speaks TLS).
func (s *Server) restoreRecordRoute(up *sipmsg.Response, calleeFlow, callerFlow flowRef) {
	toCallee, toCaller := s.recordRoute(calleeFlow).Address.String(), s.recordRoute(callerFlow).Address.String()
	if toCallee == toCaller {
		return
	}
	var vals []string
	for _, h := range up.GetHeaders("Record-Route") {
		vals = append(vals, h.Value())
	}
	all := strings.Join(vals, ",")
	if strings.Contains(all, toCaller) || !strings.Contains(all, toCallee) {
		return
	}
	for range vals {
		up.RemoveHeader("Record-Route")
	}
	for _, v := range vals {
		up.AppendHeader(sipmsg.NewHeader("Record-Route", v))
		if strings.Contains(v, toCallee) {
			up.AppendHeader(sipmsg.NewHeader("Record-Route", "<"+toCaller+">"))
		}
	}
}

// hangUpLate acknowledges a 2xx the proxy will not use and ends that
// dialog with BYE.
func (s *Server) hangUpLate(c *call, f *fork, res *sipmsg.Response) {
	callee := s.calleeParty(f, res)
	seq := f.req.CSeq().SeqNo
	ack := s.newInDialog(sipmsg.ACK, callee, c.id, seq)
	if err := s.cli.WriteRequest(ack, noBuild); err != nil {
		s.log.Debug("ACK not sent", "call_id", c.id, "error", err)
	}
	s.sendAndForget(s.newInDialog(sipmsg.BYE, callee, c.id, seq+1))
}

// forwardSimple forwards an out-of-dialog non-INVITE request (OPTIONS or
// MESSAGE to a number) to the callee's most recent binding.
func (s *Server) forwardSimple(ctx context.Context, req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	_, _, _, ok := s.identify(ctx, req, tx)
	if !ok {
		return
	}
	callee, ok := sipcore.TargetNumber(req.Recipient.User)
	if !ok {
		s.respond(tx, req, 404, "Not Found")
		return
	}
	bindings := s.reg.lookup(callee)
	if len(bindings) == 0 {
		s.respond(tx, req, 480, "Temporarily Unavailable")
		return
	}
	b := bindings[0]
	fwd := req.Clone()
	fwd.Recipient = *b.Contact.Address.Clone()
	s.popOwnRoutes(fwd)
	fwd.RemoveHeader("Proxy-Authorization")
	s.decMaxForwards(fwd)
	fwd.PrependHeader(s.newVia(b.flow))
	fwd.SetTransport(b.flow.transport)
	fwd.SetDestination(b.flow.dest)
	t, err := s.cli.TransactionRequest(s.ctx, fwd, noBuild)
	if err != nil {
		s.respond(tx, req, 480, "Temporarily Unavailable")
		return
	}
	defer t.Terminate()
	for {
		select {
		case res := <-t.Responses():
			if res.IsProvisional() {
				continue
			}
			s.reply(tx, req, upstream(res, req))
			return
		case <-t.Done():
			s.respond(tx, req, 408, "Request Timeout")
			return
		case <-tx.Done():
			return
		case <-s.ctx.Done():
			return
		}
	}
}
