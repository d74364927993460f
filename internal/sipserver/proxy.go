package sipserver

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

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

// noBuild is a sipgo client option that leaves a request as built: sipgo
// otherwise adds its own Via, From and the like.
func noBuild(*sipgo.Client, *sipmsg.Request) error { return nil }

// Ends of a call, as recorded in the call detail record.
const (
	endBye          = sipcore.EndBye
	endCancel       = sipcore.EndCancel
	endBusy         = sipcore.EndBusy
	endUnavailable  = sipcore.EndUnavailable
	endNoAnswer     = sipcore.EndNoAnswer
	endMediaTimeout = sipcore.EndMediaTimeout
	endError        = sipcore.EndError
)

// call is one call through the proxy, from INVITE to its end.
type call struct {
	id     string // Call-ID
	rc     *relay.Call
	record store.Call
	// transit: a call another node forwarded here. That node anchors the
	// media and keeps the call record; this one only routes to its own
	// client (rc is nil, record unused).
	transit bool

	mu        sync.Mutex // guards the following
	callerTag string
	calleeTag string
	caller    party
	callee    party
	early     map[string]party // early dialogs by callee To tag
	answered  bool
	ended     bool
	acked     chan struct{} // closed once the caller's ACK of the 2xx is forwarded
}

// ackDone is closed once the ACK for the call's 2xx has been forwarded.
func (c *call) ackDone() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.acked == nil {
		c.acked = make(chan struct{})
	}
	return c.acked
}

func (c *call) markAcked() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.acked == nil {
		c.acked = make(chan struct{})
	}
	select {
	case <-c.acked:
	default:
		close(c.acked)
	}
}

// ackWait bounds how long a caller's BYE waits for its ACK to go first.
const ackWait = 500 * time.Millisecond

// party is one end of a call as the proxy needs it to route and to speak
// for the other end (BYE on media timeout).
type party struct {
	flow     flowRef
	deviceID int64
	target   sipmsg.Uri // remote target: the party's Contact
	// self is the party's own name-addr with its tag (its From in its
	// requests); peer is the other side's as this party sees it.
	self, peer sipmsg.ToHeader
	cseq       uint32 // highest CSeq the party has sent
}

// side is the relay side of a party.
func (c *call) sideOf(fromCaller bool) relay.Side {
	if fromCaller {
		return relay.SideA
	}
	return relay.SideB
}

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
	callerNumber, callerDevice, callerFlow, ok := s.identify(ctx, req, tx)
	if !ok {
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
	if err := s.store.CreateCall(ctx, c.record); err != nil {
		s.log.Error("call record not created", "call_id", callID, "error", err)
	}
	fail := func(code int, reason string, hs ...sipmsg.Header) {
		s.respond(tx, req, code, reason, hs...)
		s.end(c, sipcore.EndReasonFor(code), code)
	}
	if !isNumber {
		fail(404, "Not Found")
		return
	}
	if _, err := s.store.Number(ctx, callee); errors.Is(err, store.ErrNotFound) {
		fail(404, "Not Found")
		return
	} else if err != nil {
		s.log.Error("number lookup failed", "number", callee, "error", err)
		fail(500, "Server Internal Error", retryAfter(5))
		return
	}
	body := req.Body()
	if len(body) > 0 && !isSDP(req) {
		fail(415, "Unsupported Media Type", sipmsg.NewHeader("Accept", "application/sdp"))
		return
	}
	var forks []binding
	local := s.reg.lookup(callee)
	for _, b := range local {
		if b.flow.id != callerFlow.id { // not back to the calling device itself
			forks = append(forks, b)
		}
	}
	forks = append(forks, s.peerForks(ctx, callee, local)...)
	if len(forks) == 0 {
		fail(480, "Temporarily Unavailable")
		return
	}
	if s.relay == nil {
		fail(503, "Service Unavailable (No Media Relay)", retryAfter(30))
		return
	}
	// The caller's account and address are charged for the relay ports,
	// so one customer cannot take the range from the others.
	owner := relay.Owner{Source: callerFlow.remoteIP()}
	if n, err := s.store.Number(ctx, callerNumber); err == nil {
		owner.Customer = relay.CustomerKey(n.CustomerID)
	}
	c.rc = s.relay.NewCallFor(owner, callID, func() { s.mediaTimeout(c) })
	s.m.calls.Inc()
	offer := body
	if len(body) > 0 {
		var err error
		offer, err = c.rc.RewriteSDP(relay.SideA, body, callerFlow.remoteIP())
		if err != nil {
			s.rejectSDP(c, req, tx, err)
			return
		}
	}
	s.log.Info("call", "call_id", callID, "from", callerNumber, "to", callee, "forks", len(forks))
	s.respond(tx, req, 100, "Trying")
	s.fork(c, req, tx, forks, offer)
}

// rejectSDP answers an offer the relay could not anchor and ends the call.
func (s *Server) rejectSDP(c *call, req *sipmsg.Request, tx sipmsg.ServerTransaction, err error) {
	if errors.Is(err, relay.ErrQuota) {
		s.log.Warn("relay port quota reached", "call_id", c.id)
		s.respond(tx, req, 503, "Service Unavailable (Media Port Quota Reached)", retryAfter(30))
		s.end(c, endError, 503)
		return
	}
	if errors.Is(err, relay.ErrNoPorts) {
		s.log.Warn("relay out of ports", "call_id", c.id)
		s.respond(tx, req, 503, "Service Unavailable (Media Ports Exhausted)", retryAfter(10))
		s.end(c, endError, 503)
		return
	}
	s.log.Info("offer not anchored", "call_id", c.id, "error", err)
	s.respond(tx, req, 488, "Not Acceptable Here", sipmsg.NewHeader("Warning", `399 `+s.cfg.Domain+` "session description not accepted"`))
	s.end(c, endError, 488)
}

// fork is one branch of a forked INVITE.
type fork struct {
	b   binding
	req *sipmsg.Request

	mu          sync.Mutex // guards the following
	tx          sipmsg.ClientTransaction
	provisional bool // a provisional response arrived: CANCEL may be sent
	final       bool
	cancel      bool // CANCEL wanted (sent once provisional)
	cancelSent  bool
	late        bool // the proxy has decided; the fork's reader handles the rest
}

type forkEvent struct {
	f   *fork
	res *sipmsg.Response // nil: the transaction ended without one
	err error
}

func (s *Server) fork(c *call, req *sipmsg.Request, tx sipmsg.ServerTransaction, bindings []binding, offer []byte) {
	events := make(chan forkEvent)
	decided := make(chan struct{}) // closed when the outcome is settled
	var forks []*fork
	for _, b := range bindings {
		f := &fork{b: b, req: s.forkRequest(req, b, c.caller.flow, offer)}
		t, err := s.cli.TransactionRequest(s.ctx, f.req, noBuild)
		if err != nil {
			s.log.Debug("fork not sent", "call_id", c.id, "flow", b.flow.id, "error", err)
			continue
		}
		f.tx = t
		forks = append(forks, f)
		s.goAsync(func() { s.readFork(c, f, events, decided) })
	}
	defer close(decided)

	canceled := make(chan struct{})
	var cancelOnce sync.Once
	if !tx.OnCancel(func(*sipmsg.Request) { cancelOnce.Do(func() { close(canceled) }) }) {
		cancelOnce.Do(func() { close(canceled) })
	}
	timer := time.NewTimer(s.cfg.NoAnswerTimeout)
	defer timer.Stop()

	// The decisions are sipcore.Fork's; here they are carried out.
	index := make(map[*fork]int, len(forks))
	for i, f := range forks {
		index[f] = i
	}
	finals := make([]*sipmsg.Response, len(forks)) // each fork's final response
	st := sipcore.NewForkState(len(forks))
	act := st.Outcome()
	var ev sipcore.ForkEvent
	var res *sipmsg.Response // the event's response
	for !act.Done {
		ev, res = s.nextForkEvent(events, index, canceled, tx, timer.C)
		st, act = sipcore.Fork(st, ev)
		if res != nil && res.StatusCode >= 300 {
			finals[ev.Fork] = res
		}
		if act.Relay {
			s.relayProvisional(c, req, tx, forks[ev.Fork], res)
		}
	}
	s.markLate(forks)
	for _, f := range forks {
		s.cancelFork(f)
	}
	switch {
	case act.Answer:
		s.answer(c, req, tx, forks[ev.Fork], res)
		return
	case act.Forward:
		up := upstream(finals[act.Fork], req)
		up.SetBody(nil)
		if err := s.reply(tx, req, up); err != nil {
			s.log.Debug("final response not relayed", "call_id", c.id, "error", err)
		}
	case act.Code != 0:
		s.respond(tx, req, act.Code, act.Reason)
	}
	switch {
	case ev.Kind == sipcore.CallerCanceled || ev.Kind == sipcore.CallerGone && ev.Canceled:
		s.log.Info("call canceled by caller", "call_id", c.id)
	case ev.Kind == sipcore.NoAnswer:
		s.log.Info("call not answered", "call_id", c.id, "duration", s.cfg.NoAnswerTimeout)
	}
	s.end(c, act.End, act.Status)
}

// nextForkEvent waits for the next event of a forked INVITE: a fork's
// response or end, the caller's CANCEL or end, the no-answer timer, or
// the server closing. res is the response of a ForkResponse.
func (s *Server) nextForkEvent(events <-chan forkEvent, index map[*fork]int, canceled <-chan struct{}, tx sipmsg.ServerTransaction, timer <-chan time.Time) (sipcore.ForkEvent, *sipmsg.Response) {
	select {
	case e := <-events:
		if e.res == nil {
			return sipcore.ForkEvent{Kind: sipcore.ForkEnded, Fork: index[e.f]}, nil
		}
		return sipcore.ForkEvent{Kind: sipcore.ForkResponse, Fork: index[e.f], Status: e.res.StatusCode}, e.res
	case <-canceled:
		return sipcore.ForkEvent{Kind: sipcore.CallerCanceled}, nil
	case <-tx.Done():
		// A CANCEL ends the transaction too (after the 487): when both
		// are ready, select may take either.
		select {
		case <-canceled:
			return sipcore.ForkEvent{Kind: sipcore.CallerGone, Canceled: true}, nil
		default:
			return sipcore.ForkEvent{Kind: sipcore.CallerGone}, nil
		}
	case <-timer:
		return sipcore.ForkEvent{Kind: sipcore.NoAnswer}, nil
	case <-s.ctx.Done():
		return sipcore.ForkEvent{Kind: sipcore.Shutdown}, nil
	}
}

// relayProvisional sends a fork's provisional response upstream, its SDP
// anchored on the relay, and remembers the early dialog it opens.
func (s *Server) relayProvisional(c *call, req *sipmsg.Request, tx sipmsg.ServerTransaction, f *fork, res *sipmsg.Response) {
	up, err := s.relayBody(c, res, req, false)
	if err != nil {
		return
	}
	if tag := sipcore.ToTag(res); tag != "" {
		c.mu.Lock()
		c.early[tag] = s.calleeParty(f, res)
		c.mu.Unlock()
	}
	if err := s.reply(tx, req, up); err != nil {
		s.log.Debug("provisional not relayed", "call_id", c.id, "error", err)
	}
}

// markLate hands each fork's remaining responses to its reader.
func (s *Server) markLate(forks []*fork) {
	for _, f := range forks {
		f.mu.Lock()
		f.late = true
		f.mu.Unlock()
	}
}

// readFork passes a fork's responses to the fork loop until the outcome is
// decided, then deals with late ones itself: CANCEL once a provisional
// response allows it, and ACK plus BYE for a late 2xx (another branch won,
// or the caller gave up).
func (s *Server) readFork(c *call, f *fork, events chan<- forkEvent, decided <-chan struct{}) {
	for {
		select {
		case res := <-f.tx.Responses():
			f.mu.Lock()
			if res.IsProvisional() {
				f.provisional = true
			} else {
				f.final = true
			}
			sendCancel := f.cancel && f.provisional && !f.cancelSent && !f.final
			late := f.late
			f.mu.Unlock()
			if sendCancel {
				s.cancelFork(f)
			}
			if late {
				if res.IsSuccess() {
					s.hangUpLate(c, f, res)
				}
				continue
			}
			select {
			case events <- forkEvent{f: f, res: res}:
			case <-decided:
				if res.IsSuccess() {
					s.hangUpLate(c, f, res)
				}
			}
		case <-f.tx.Done():
			select {
			case events <- forkEvent{f: f, err: f.tx.Err()}:
			case <-decided:
			}
			return
		case <-s.ctx.Done():
			f.tx.Terminate()
			return
		}
	}
}

// cancelFork sends CANCEL for a fork that has no final response yet, or
// remembers to once a provisional response arrives (RFC 3261 §9.1).
//
// A UDP branch that has not answered at all may be no phone but an address
// a forged registration named: RFC 3261 §9.1 forbids a CANCEL before a
// provisional response, and sipgo's client transaction would go on
// resending the INVITE (Timer A) for 32 s. Its retransmissions are dropped
// at the socket instead (amplify.go); the transaction itself lives on, so a
// late 1xx still draws the CANCEL and a late 2xx the ACK and BYE.
func (s *Server) cancelFork(f *fork) {
	f.mu.Lock()
	f.cancel = true
	if f.final || f.cancelSent || !f.provisional {
		quiet := !f.final && !f.provisional && !sipmsg.IsReliable(f.req.Transport())
		f.mu.Unlock()
		if quiet {
			if via := f.req.Via(); via != nil {
				branch, _ := via.Params.Get("branch")
				s.t.amp.silence(branch)
			}
		}
		return
	}
	f.cancelSent = true
	f.mu.Unlock()

	inv := f.req
	cr := sipmsg.NewRequest(sipmsg.CANCEL, *inv.Recipient.Clone())
	cr.AppendHeader(inv.Via().Clone())
	for _, h := range inv.GetHeaders("Route") {
		cr.AppendHeader(sipmsg.HeaderClone(h))
	}
	mf := sipmsg.MaxForwardsHeader(70)
	cr.AppendHeader(&mf)
	cr.AppendHeader(sipmsg.HeaderClone(inv.From()))
	cr.AppendHeader(sipmsg.HeaderClone(inv.To()))
	cr.AppendHeader(sipmsg.HeaderClone(inv.CallID()))
	cr.AppendHeader(&sipmsg.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sipmsg.CANCEL})
	cr.SetBody(nil)
	cr.SetTransport(inv.Transport())
	cr.SetDestination(inv.Destination())
	s.sendAndForget(cr)
}

// sendAndForget sends a request in its own client transaction and
// discards the outcome (CANCEL, BYE the proxy originates).
func (s *Server) sendAndForget(req *sipmsg.Request) {
	t, err := s.cli.TransactionRequest(s.ctx, req, noBuild)
	if err != nil {
		s.log.Debug("request not sent", "method", req.Method, "error", err)
		return
	}
	s.goAsync(func() {
		defer t.Terminate()
		for {
			select {
			case res := <-t.Responses():
				if !res.IsProvisional() {
					return
				}
			case <-t.Done():
				return
			case <-s.ctx.Done():
				return
			}
		}
	})
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
	if err != nil {
		// Answered, but the media cannot be anchored: hang up the callee
		// and fail the call rather than let media bypass the relay.
		s.hangUpLate(c, f, res)
		s.respond(tx, req, 500, "Server Internal Error (Media Not Anchored)")
		s.end(c, endError, 500)
		return
	}
	c.mu.Lock()
	c.answered = true
	c.record.AnsweredAt = s.now()
	c.record.Status = res.StatusCode
	rec := c.record
	c.mu.Unlock()
	if !c.transit {
		c.rc.Answered()
		if err := s.store.UpdateCall(context.Background(), rec); err != nil {
			s.log.Error("call record not updated", "call_id", c.id, "error", err)
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

// newInDialog builds a request the proxy sends to a party on behalf of the
// other one: BYE on media timeout, ACK and BYE for an unwanted 2xx.
func (s *Server) newInDialog(method sipmsg.RequestMethod, to party, callID string, seq uint32) *sipmsg.Request {
	r := sipmsg.NewRequest(method, *to.target.Clone())
	r.AppendHeader(s.newVia(to.flow))
	mf := sipmsg.MaxForwardsHeader(70)
	r.AppendHeader(&mf)
	from := to.peer.AsFrom()
	r.AppendHeader(&from)
	toh := cloneTo(&to.self)
	r.AppendHeader(&toh)
	cid := sipmsg.CallIDHeader(callID)
	r.AppendHeader(&cid)
	r.AppendHeader(&sipmsg.CSeqHeader{SeqNo: seq, MethodName: method})
	r.SetBody(nil)
	r.SetTransport(to.flow.transport)
	r.SetDestination(to.flow.dest)
	return r
}

// mediaTimeout is the relay's report that an answered call's media
// stopped: hang up both parties.
func (s *Server) mediaTimeout(c *call) {
	c.mu.Lock()
	if c.ended || !c.answered {
		c.mu.Unlock()
		return
	}
	caller, callee := c.caller, c.callee
	caller.cseq, callee.cseq = c.caller.cseq, c.callee.cseq
	c.mu.Unlock()
	s.log.Info("media timeout: hanging up", "call_id", c.id)
	// Toward the callee we speak as the caller and vice versa, each in the
	// other's CSeq space.
	s.sendAndForget(s.newInDialog(sipmsg.BYE, callee, c.id, caller.cseq+1))
	s.sendAndForget(s.newInDialog(sipmsg.BYE, caller, c.id, callee.cseq+1))
	s.end(c, endMediaTimeout, 0)
}

// end finishes a call once: releases the relay ports and completes the
// call detail record.
func (s *Server) end(c *call, reason string, status int) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended = true
	answered := c.answered
	c.mu.Unlock()
	s.calls.remove(c)
	if c.transit {
		// The forwarding node accounts for the call.
		s.log.Info("forwarded call ended", "call_id", c.id, "reason", reason)
		return
	}
	var stats []store.StreamStats
	if c.rc != nil {
		for _, st := range c.rc.Stats() {
			stats = append(stats, store.StreamStats(st))
		}
		if err := c.rc.Close(); err != nil {
			s.log.Warn("relay call close", "call_id", c.id, "error", err)
		}
		s.m.calls.Dec()
	}
	c.mu.Lock()
	c.record.MediaStats = stats
	c.record.EndedAt = s.now()
	c.record.EndReason = reason
	if status != 0 && !answered {
		c.record.Status = status
	}
	rec := c.record
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.store.UpdateCall(ctx, rec); err != nil {
		s.log.Error("call record not completed", "call_id", c.id, "error", err)
	}
	s.m.callsTotal.WithLabelValues(reason).Inc()
	s.log.Info("call ended", "call_id", c.id, "reason", reason, "status", rec.Status, "duration", durationOf(rec))
}

func durationOf(r store.Call) time.Duration {
	if r.AnsweredAt.IsZero() {
		return 0
	}
	return r.EndedAt.Sub(r.AnsweredAt).Round(time.Millisecond)
}

// endAll ends every call (server shutdown).
func (s *Server) endAll() {
	for _, c := range s.calls.all() {
		s.end(c, endError, 0)
	}
}

// inDialog routes a request inside a call's dialog to the other party.
func (s *Server) inDialog(ctx context.Context, req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	c := s.calls.get(req.CallID().Value())
	if c == nil {
		s.respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	fromCaller, dst, ok := s.direction(c, req)
	if !ok {
		s.respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	trust(tx) // a party of the call, over its own flow (amplify.go)
	if req.Method == sipmsg.BYE && fromCaller {
		// sipgo hands each message to its own goroutine, so a BYE sent
		// right behind the ACK of the 2xx can overtake it; the callee would
		// then see BYE before ACK. Let the ACK go first.
		c.mu.Lock()
		answered := c.answered
		c.mu.Unlock()
		if answered {
			select {
			case <-c.ackDone():
			case <-time.After(ackWait):
			}
		}
	}
	fwd, err := s.forwardRequest(c, req, fromCaller, dst)
	if err != nil {
		s.rejectSDP(c, req, tx, err)
		return
	}
	t, err := s.cli.TransactionRequest(s.ctx, fwd, noBuild)
	if err != nil {
		s.log.Debug("in-dialog request not sent", "call_id", c.id, "method", req.Method, "error", err)
		s.respond(tx, req, 480, "Temporarily Unavailable")
		if req.Method == sipmsg.BYE {
			s.end(c, endBye, 0)
		}
		return
	}
	defer t.Terminate()
	if req.IsInvite() {
		tx.OnCancel(func(*sipmsg.Request) { s.cancelRequest(fwd) })
	}
	final := 0
	for final == 0 {
		select {
		case res := <-t.Responses():
			if res.StatusCode == 100 {
				continue
			}
			up, err := s.relayBody(c, res, req, !fromCaller)
			if err != nil {
				up = upstream(res, req)
			}
			if !res.IsProvisional() {
				final = res.StatusCode
				s.refreshTarget(c, !fromCaller, req.Method, res.Contact())
			}
			if err := s.reply(tx, req, up); err != nil {
				s.log.Debug("response not relayed", "call_id", c.id, "error", err)
			}
		case <-t.Done():
			final = 408
			s.respond(tx, req, 408, "Request Timeout")
		case <-tx.Done():
			final = -1
		case <-s.ctx.Done():
			final = -1
		}
	}
	if req.Method == sipmsg.BYE {
		s.end(c, endBye, 0)
	}
}

// inDialogAck forwards an ACK for a 2xx (a transaction of its own).
func (s *Server) inDialogAck(req *sipmsg.Request) {
	c := s.calls.get(req.CallID().Value())
	if c == nil {
		return
	}
	fromCaller, dst, ok := s.direction(c, req)
	if !ok || !fromCaller {
		return
	}
	fwd, err := s.forwardRequest(c, req, fromCaller, dst)
	if err != nil {
		s.log.Info("ACK body not anchored", "call_id", c.id, "error", err)
		return
	}
	if err := s.cli.WriteRequest(fwd, noBuild); err != nil {
		s.log.Debug("ACK not forwarded", "call_id", c.id, "error", err)
	}
	c.markAcked()
}

// direction tells who sent an in-dialog request, by the dialog's tags, and
// checks it came over that party's flow (or from the same device after it
// reconnected).
func (s *Server) direction(c *call, req *sipmsg.Request) (fromCaller bool, dst party, ok bool) {
	ft, tt := fromTag(req), sipcore.ToTag(req)
	c.mu.Lock()
	defer c.mu.Unlock()
	var src party
	switch {
	case ft == c.callerTag && c.calleeTag != "" && tt == c.calleeTag:
		fromCaller, src, dst = true, c.caller, c.callee
	case ft == c.callerTag && c.calleeTag == "":
		e, ok := c.early[tt]
		if !ok {
			return false, party{}, false
		}
		fromCaller, src, dst = true, c.caller, e
	case c.calleeTag != "" && ft == c.calleeTag && tt == c.callerTag:
		fromCaller, src, dst = false, c.callee, c.caller
	case c.calleeTag == "" && tt == c.callerTag:
		e, ok := c.early[ft]
		if !ok {
			return false, party{}, false
		}
		fromCaller, src, dst = false, e, c.caller
	default:
		return false, party{}, false
	}
	if !s.sameParty(src, req) {
		return false, party{}, false
	}
	if seq := req.CSeq().SeqNo; req.Method != sipmsg.ACK && req.Method != sipmsg.CANCEL {
		if fromCaller && seq > c.caller.cseq {
			c.caller.cseq = seq
		} else if !fromCaller && seq > c.callee.cseq {
			c.callee.cseq = seq
		}
	}
	return fromCaller, dst, true
}

// sameParty reports whether req arrived from the party: over its flow, or
// over a flow the same device has registered since.
func (s *Server) sameParty(src party, req *sipmsg.Request) bool {
	if src.flow.peer != "" {
		// A party behind a peer node: any connection from that node.
		node, ok := s.peerAt(req.Source(), req.Transport())
		return ok && node == src.flow.peer
	}
	flow, ok := s.flowOf(req)
	if !ok {
		return false
	}
	if flow.id == src.flow.id {
		return true
	}
	if flow.conn == nil {
		// UDP: the same address the party used.
		return flow.dest == src.flow.dest
	}
	_, dev, ok := s.reg.flowDevice(flow.id)
	return ok && dev == src.deviceID
}

// forwardRequest builds the forwarded copy of an in-dialog request.
func (s *Server) forwardRequest(c *call, req *sipmsg.Request, fromCaller bool, dst party) (*sipmsg.Request, error) {
	dst.flow = s.peers.reach(dst.flow)
	fwd := req.Clone()
	s.popOwnRoutes(fwd)
	fwd.RemoveHeader("Proxy-Authorization")
	s.decMaxForwards(fwd)
	fwd.PrependHeader(s.newVia(dst.flow))
	s.passOn(fwd, req, dst.flow.peer != "")
	if c.rc != nil && len(req.Body()) > 0 && isSDP(req) {
		src, _ := s.flowOf(req)
		body, err := c.rc.RewriteSDP(c.sideOf(fromCaller), req.Body(), s.signalIP(req, src.remoteIP()))
		if err != nil {
			return nil, err
		}
		fwd.SetBody(body)
	}
	s.refreshTarget(c, fromCaller, req.Method, req.Contact())
	fwd.SetTransport(dst.flow.transport)
	fwd.SetDestination(dst.flow.dest)
	return fwd, nil
}

// refreshTarget updates a party's remote target from a target refresh
// request or its 2xx (RFC 3261 §12.2).
func (s *Server) refreshTarget(c *call, ofCaller bool, method sipmsg.RequestMethod, contact *sipmsg.ContactHeader) {
	if contact == nil || (method != sipmsg.INVITE && method != sipmsg.UPDATE) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ofCaller {
		c.caller.target = *contact.Address.Clone()
	} else if c.calleeTag != "" {
		c.callee.target = *contact.Address.Clone()
	}
}

// cancelRequest sends CANCEL for a forwarded in-dialog INVITE.
func (s *Server) cancelRequest(inv *sipmsg.Request) {
	f := &fork{req: inv, provisional: true}
	s.cancelFork(f)
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

// Helpers on headers.

func fromTag(req *sipmsg.Request) string {
	t, _ := req.From().Params.Get("tag")
	return t
}

func fromAsTo(f *sipmsg.FromHeader) sipmsg.ToHeader {
	return f.AsTo()
}

func cloneTo(t *sipmsg.ToHeader) sipmsg.ToHeader {
	return *sipmsg.HeaderClone(t).(*sipmsg.ToHeader)
}

func contactURI(req *sipmsg.Request) sipmsg.Uri {
	if c := req.Contact(); c != nil {
		return *c.Address.Clone()
	}
	return *req.From().Address.Clone()
}

func isSDP(req *sipmsg.Request) bool { return isSDPType(req.ContentType()) }

func isSDPType(ct *sipmsg.ContentTypeHeader) bool {
	if ct == nil {
		return false
	}
	v, _, _ := strings.Cut(ct.Value(), ";")
	return strings.EqualFold(strings.TrimSpace(v), "application/sdp")
}

func itoa(n int) string { return strconv.Itoa(n) }
