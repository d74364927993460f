package sipserver

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/acd"
	"github.com/z5vrs/z5/internal/relay"
	"github.com/z5vrs/z5/internal/sipcore"
	"github.com/z5vrs/z5/internal/store"
)

// Relay calls, first leg: the call that waits in the interpreter queue.
// The caller's INVITE is held here (182 Queued with the caller's
// position, sent again when it changes and at least every 30 s) while the
// dispatcher (acd_dispatch.go) pairs the queue with ready interpreters;
// an offer is an INVITE to the interpreter's station, reached by forking
// to its bindings like any callee (another node's too). The station that
// answers becomes the callee of an ordinary anchored call. A station that
// lets the offer ring out (acd.ring_timeout) or declines goes not ready
// and the call waits again at its place; the caller who hangs up in the
// queue is recorded as abandoned; after acd.max_wait the caller gets 480.

// relayLeg is what a relay call's first leg carries besides the call.
type relayLeg struct {
	entry acd.Entry
	// offers carries the agents the dispatcher claimed for the call;
	// positions the caller's place in the queue (latest only).
	offers    chan []string
	positions chan int

	caID string // the interpreter who answered; guarded by call.mu
	lost bool   // the interpreter's connection was lost mid-call; guarded by call.mu

	// stopSlate ends the "please wait" early media (startSlate; a no-op
	// until then); set before the call waits and called only by the
	// goroutine holding the caller's transaction (idempotent).
	stopSlate func()
}

// queueRefresh is how often a waiting caller hears its position even when
// it has not changed.
const queueRefresh = 30 * time.Second

// routeRelay routes an identified caller's INVITE as sipcore decides; it
// reports false for a point-to-point call, which the caller goes on with.
func (s *Server) routeRelay(ctx context.Context, req *sipmsg.Request, tx sipmsg.ServerTransaction, number string, deviceID int64, flow flowRef) bool {
	cl := sipcore.ClassifyInvite(req, s.inviteFacts(ctx, number))
	switch cl.Kind {
	case sipcore.KindRefuse:
		if cl.Refusal.Code == 404 && !store.StationPattern.MatchString(cl.Target) {
			// The point-to-point path finds no such number of ours
			// either: it answers and records the attempt.
			return false
		}
		s.respond(tx, req, cl.Refusal.Code, cl.Refusal.Reason, cl.Refusal.Headers...)
		return true
	case sipcore.KindSecondLeg:
		s.placeSecondLeg(ctx, req, tx, cl, number, flow)
		return true
	case sipcore.KindQueueOutbound, sipcore.KindQueueEmergency:
		e := acd.Entry{Direction: store.CallOutbound, Dialed: cl.Dialed, User: number, Caller: number,
			Display: req.From().DisplayName, UserIP: flow.remoteIP().String()}
		if cl.Kind == sipcore.KindQueueEmergency {
			e.Direction, e.Priority = store.CallEmergency, acd.PriorityEmergency
		}
		if tok := req.GetHeader(sipcore.HdrRequeue); tok != nil {
			// A token forged, used or expired is ignored: an ordinary call.
			if r, ok := s.acdq.takeRequeue(strings.TrimSpace(tok.Value()), number, e.Direction, s.now()); ok {
				e.RequeueOf, e.Priority = r.CallID, max(e.Priority, acd.PriorityRequeue)
			} else {
				s.log.Info("re-queue token not honoured: queued in the normal order", "number", number)
			}
		}
		s.queueCall(ctx, req, tx, e, flow, deviceID)
		return true
	}
	if s.locationMissing(ctx, number) {
		s.refuseNoLocation(req, tx)
		return true
	}
	return false
}

func (s *Server) inviteFacts(ctx context.Context, caller string) sipcore.InviteFacts {
	return sipcore.InviteFacts{
		CallerStation: store.StationPattern.MatchString(caller),
		Ours: func(n string) bool {
			_, err := s.store.Number(ctx, n)
			return err == nil
		},
		RelayAccess: s.cfg.RelayAccessNumber,
	}
}

// queueCall holds a first leg in the queue until an interpreter answers,
// the caller gives up, or acd.max_wait runs out.
func (s *Server) queueCall(ctx context.Context, req *sipmsg.Request, tx sipmsg.ServerTransaction, e acd.Entry, flow flowRef, deviceID int64) {
	callID := req.CallID().Value()
	now := s.now()
	e.CallID, e.Node, e.QueuedAt = callID, s.cfg.Node, now
	if e.Direction == store.CallOutbound && s.locationMissing(ctx, e.User) {
		s.refuseNoLocation(req, tx)
		return
	}
	if e.Direction == store.CallEmergency {
		if loc, ok := s.locationOf(ctx, e.User); ok {
			e.Location = sipcore.LocationLine(loc)
		}
	}
	from := e.Caller
	if n, ok := sipcore.TargetNumber(from); ok {
		from = n
	}
	c := &call{
		id:        callID,
		callerTag: fromTag(req),
		caller: party{
			flow: flow, deviceID: deviceID, target: contactURI(req),
			self: fromAsTo(req.From()), peer: cloneTo(req.To()), cseq: req.CSeq().SeqNo,
		},
		early: map[string]party{},
		record: store.Call{
			CallID: callID, From: from, To: e.Dialed, Node: s.cfg.Node, StartedAt: now,
			Direction: e.Direction, Dialed: e.Dialed, UserNumber: e.User, UserIP: e.UserIP, QueuedAt: now,
			RequeueOf: e.RequeueOf,
		},
		relay: &relayLeg{entry: e, offers: make(chan []string, 1), positions: make(chan int, 1), stopSlate: func() {}},
	}
	if e.Direction == store.CallInbound {
		c.record.To = e.User
	}
	if !s.calls.add(c) {
		s.respond(tx, req, 482, "Loop Detected")
		return
	}
	s.records.insert(c.record) // queued: the call goes on without it
	if !s.canAnchor(c, req, tx) {
		return
	}
	charged := e.User
	if e.Direction == store.CallEmergency {
		charged = "" // 911 is never refused for a customer's port quota
	}
	rc, offer := s.anchor(ctx, c, req, tx, flow.remoteIP(), charged, req.Body())
	if rc == nil {
		return
	}
	s.respond(tx, req, 100, "Trying")
	s.acdq.add(c)
	if err := s.store.Enqueue(ctx, e); err != nil {
		s.log.Error("call not queued", "call_id", callID, "error", err)
		s.fail(c, req, tx, 500, "Server Internal Error", retryAfter(5))
		return
	}
	s.log.Info("relay call queued", "call_id", callID, "direction", e.Direction, "user", e.User, "dialed", e.Dialed,
		"requeue_of", e.RequeueOf)
	s.wakeDispatcher()
	c.relay.stopSlate = s.startSlate(c, req, tx, rc)
	defer c.relay.stopSlate() // shutdown
	s.waitInQueue(c, req, tx, offer)
}

// startSlate answers the waiting caller's offer for early media (183
// Session Progress with the relay's description) and sends the "please
// wait" slate from the relay's caller-facing port until the returned stop
// is called (the interpreter answered, or the call left the queue); stop
// waits for the sender, so no slate packet follows the answer. A caller
// whose offer has no plain RTP H.264 video (audio only, SRTP) gets none.
func (s *Server) startSlate(c *call, req *sipmsg.Request, tx sipmsg.ServerTransaction, rc *relay.Call) func() {
	if len(req.Body()) == 0 {
		return func() {}
	}
	ans, pt, err := rc.EarlyAnswer(relay.SideA, req.Body())
	if err != nil {
		s.log.Debug("no slate for this caller", "call_id", c.id, "reason", err)
		return func() {}
	}
	res := sipmsg.NewResponseFromRequest(req, 183, "Session Progress", ans)
	res.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	if err := s.reply(tx, req, res); err != nil {
		s.log.Debug("183 not sent", "call_id", c.id, "error", err)
		return func() {}
	}
	ctx, cancel := context.WithCancel(s.ctx)
	done := make(chan struct{})
	s.goAsync(func() {
		defer close(done)
		n, err := rc.SendSlate(ctx, relay.SideA, pt)
		if err != nil {
			s.log.Warn("slate stopped", "call_id", c.id, "error", err)
		}
		s.log.Debug("slate sent", "call_id", c.id, "packets", n)
	})
	return sync.OnceFunc(func() {
		cancel()
		select {
		case <-done:
		case <-s.ctx.Done(): // closing: the sender may never have started
		}
	})
}

// waitInQueue is the first leg's life in the queue.
func (s *Server) waitInQueue(c *call, req *sipmsg.Request, tx sipmsg.ServerTransaction, offer []byte) {
	canceled := make(chan struct{})
	var once sync.Once
	cancel := func() { once.Do(func() { close(canceled) }) }
	if !tx.OnCancel(func(*sipmsg.Request) { cancel() }) {
		cancel()
	}
	maxWait := time.NewTimer(s.cfg.ACD.MaxWait)
	defer maxWait.Stop()
	refresh := time.NewTicker(queueRefresh)
	defer refresh.Stop()
	pos := 0
	for {
		select {
		case p := <-c.relay.positions:
			if p != pos {
				pos = p
				s.sendQueued(req, tx, pos)
			}
		case <-refresh.C:
			if pos > 0 {
				s.sendQueued(req, tx, pos)
			}
		case ids := <-c.relay.offers:
			switch s.offer(c, req, tx, offer, ids, canceled) {
			case offerAnswered:
				return
			case offerAbandoned:
				s.abandon(c, req, tx)
				return
			case offerShutdown:
				return
			}
			s.wakeDispatcher()
		case <-canceled:
			s.abandon(c, req, tx)
			return
		case <-tx.Done():
			s.abandon(c, req, tx)
			return
		case <-maxWait.C:
			c.relay.stopSlate()
			s.log.Info("relay call not answered within acd.max_wait", "call_id", c.id, "max_wait", s.cfg.ACD.MaxWait)
			s.respond(tx, req, 480, "Temporarily Unavailable (No Interpreter Available)",
				sipmsg.NewHeader("Warning", `399 `+s.cfg.Domain+` "no interpreter answered within `+s.cfg.ACD.MaxWait.String()+`; please call again"`))
			s.end(c, sipcore.EndQueueTimeout, 480)
			return
		case <-s.ctx.Done():
			return
		}
	}
}

// sendQueued tells the caller its place: 182 Queued (RFC 3261 §21.1.4).
func (s *Server) sendQueued(req *sipmsg.Request, tx sipmsg.ServerTransaction, pos int) {
	n := strconv.Itoa(pos)
	s.respond(tx, req, 182, "Queued (position "+n+")", sipmsg.NewHeader(sipcore.HdrQueuePosition, n))
}

// abandon ends a call its caller gave up while it waited.
func (s *Server) abandon(c *call, req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	c.relay.stopSlate()
	s.respond(tx, req, 487, "Request Terminated")
	s.log.Info("relay call abandoned in queue", "call_id", c.id)
	s.acdm.abandoned.Inc()
	s.end(c, sipcore.EndAbandoned, 487)
}

// relayEnded completes a first leg: out of the queue, offers still open
// released, the interpreter to wrap-up, the session's end recorded.
func (s *Server) relayEnded(c *call, answered bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.acdq.remove(c)
	if err := s.store.Dequeue(ctx, c.id); err != nil {
		s.log.Error("call not dequeued", "call_id", c.id, "error", err)
	}
	select {
	case ids := <-c.relay.offers: // claimed but never offered
		for _, id := range ids {
			s.release(c, id, acd.Ready)
		}
	default:
	}
	c.mu.Lock()
	caID, lost := c.relay.caID, c.relay.lost
	c.mu.Unlock()
	if answered && caID != "" {
		ev := acd.EvCallEnd
		if lost {
			ev = acd.EvVanished // not ready until the station signs in again
		}
		st, _, _ := acd.Next(acd.InCall, ev)
		if _, err := s.store.SetAgentState(ctx, caID, st, c.id, s.now()); err != nil {
			s.log.Error("interpreter not put in wrap-up", "ca_id", caID, "error", err)
		}
	}
	if answered {
		c.mu.Lock()
		c.record.SessionEnd = s.now()
		c.mu.Unlock()
	}
	s.wakeDispatcher()
}

// locationMissing reports whether number's customer has no registered
// location, so the number may call 911 only. It is false until the
// enforcement is switched on (Config.RequireLocation).
func (s *Server) locationMissing(ctx context.Context, number string) bool {
	if !s.cfg.RequireLocation {
		return false
	}
	_, ok := s.locationOf(ctx, number)
	return !ok
}

// locationOf is the registered location of number's customer.
func (s *Server) locationOf(ctx context.Context, number string) (store.Location, bool) {
	n, err := s.store.Number(ctx, number)
	if err != nil {
		return store.Location{}, false
	}
	loc, err := s.store.Location(ctx, n.CustomerID)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Error("location lookup failed", "number", number, "error", err)
		}
		return store.Location{}, false
	}
	return loc, true
}

func (s *Server) refuseNoLocation(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	s.respond(tx, req, 403, "Forbidden (Registered Location Required)",
		sipmsg.NewHeader("Warning", `399 `+s.cfg.Domain+` "set your registered location with z5 location set; 911 calls still go through"`))
}

// trunkGate takes an INVITE that comes from the carrier (queued inbound)
// or pretends to (403); it reports whether it did.
func (s *Server) trunkGate(ctx context.Context, req *sipmsg.Request, tx sipmsg.ServerTransaction) bool {
	flow, ok := s.flowOf(req)
	if !ok {
		return false
	}
	if flow.conn != nil {
		if _, _, registered := s.reg.flowDevice(flow.id); registered {
			return false
		}
	}
	ours := func(n string) bool {
		_, err := s.store.Number(ctx, n)
		return err == nil
	}
	if s.fromTrunk(req, flow) {
		cl := sipcore.ClassifyInvite(req, sipcore.InviteFacts{FromTrunk: true, Ours: ours})
		if cl.Kind == sipcore.KindRefuse {
			s.respond(tx, req, cl.Refusal.Code, cl.Refusal.Reason, cl.Refusal.Headers...)
			return true
		}
		caller := req.From().Address.User
		if n, ok := sipcore.TargetNumber(caller); ok {
			caller = n
		}
		flow.conn.extendBinding(time.Now().Add(peerIdle))
		s.queueCall(ctx, req, tx, acd.Entry{Direction: store.CallInbound, Dialed: cl.Target, User: cl.Target,
			Caller: caller, Display: req.From().DisplayName}, flow, 0)
		return true
	}
	if sipcore.TrunkPretender(req, s.trunkHost(), ours) {
		s.m.authFailures.WithLabelValues("trunk-pretender").Inc()
		s.log.Warn("INVITE claiming to be the trunk refused", "remote_addr", req.Source())
		s.respond(tx, req, 403, "Forbidden")
		return true
	}
	return false
}

// fromTrunk: over TCP or TLS (a source address that cannot be forged),
// from a source in trunk.allow, with no credentials of ours.
func (s *Server) fromTrunk(req *sipmsg.Request, flow flowRef) bool {
	if flow.conn == nil || req.GetHeader("Proxy-Authorization") != nil {
		return false
	}
	ip := sourceIP(req)
	for _, p := range s.trunkAllow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// trunkAllowPrefixes parses trunk.allow (validated by internal/config).
func trunkAllowPrefixes(vs []string) []netip.Prefix {
	var out []netip.Prefix
	for _, v := range vs {
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p.Masked())
		} else if a, err := netip.ParseAddr(v); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		}
	}
	return out
}

// mergeRelayRecord is a first leg's final record (mine) over the stored
// one: what the second leg wrote (its conversation times, its streams,
// the number dialled through the relay access number) is kept.
func mergeRelayRecord(mine, stored store.Call) store.Call {
	out := mine
	out.ConversationStart, out.ConversationEnd = stored.ConversationStart, stored.ConversationEnd
	if stored.Dialed != "" {
		out.Dialed, out.To = stored.Dialed, stored.To
	}
	for _, st := range stored.MediaStats {
		if st.Leg != "caller" && st.Leg != "callee" {
			out.MediaStats = append(out.MediaStats, st)
		}
	}
	return out
}

// stationLost ends the relay calls whose interpreter's connection (flow)
// closed mid-call: the caller gets a BYE saying why rather than silence
// until the media timeout, and the interpreter is not ready. Handing the
// caller to the next interpreter within the same dialog would take a
// back-to-back user agent (the proxy passes dialogs through as they are),
// so the caller's help is asked: a deaf caller's BYE (outbound, 911)
// carries a single-use token (X-Z5-Requeue), and a Z5 client calls the
// same number again at once with it, to be queued at the front.
func (s *Server) stationLost(flowID string) {
	for _, c := range s.calls.all() {
		if c.relay == nil {
			continue
		}
		c.mu.Lock()
		match := c.answered && !c.ended && c.callee.flow.id == flowID
		caller, callee := c.caller, c.callee
		if match {
			c.relay.lost = true
		}
		c.mu.Unlock()
		if !match {
			continue
		}
		s.log.Warn("interpreter's connection lost mid-call", "call_id", c.id, "flow", flowID)
		bye := s.newInDialog(sipmsg.BYE, caller, c.id, callee.cseq+1)
		if tok := s.requeueToken(c); tok != "" {
			bye.AppendHeader(sipmsg.NewHeader("Reason", `SIP;cause=480;text="`+requeueNotice+`"`))
			bye.AppendHeader(sipmsg.NewHeader(sipcore.HdrRequeue, tok))
		} else {
			bye.AppendHeader(sipmsg.NewHeader("Reason", `SIP;cause=480;text="Interpreter disconnected; please call again"`))
		}
		s.sendAndForget(bye)
		s.end(c, sipcore.EndInterpreterLost, 0)
	}
}

// requeueNotice is the lost-interpreter BYE's words when the caller may
// call again at the front of the queue.
const requeueNotice = "Your interpreter was disconnected; reconnecting you to the next interpreter"

// requeueToken keeps a re-queue token for c's caller and returns it; ""
// when the caller is not the deaf user (inbound: the telephone network
// called) or re-queueing is off (acd.requeue_window 0).
func (s *Server) requeueToken(c *call) string {
	e := c.relay.entry
	if s.cfg.ACD.RequeueWindow <= 0 || (e.Direction != store.CallOutbound && e.Direction != store.CallEmergency) {
		return ""
	}
	r := acd.Requeue{Token: randomToken(16), CallID: c.id, User: e.User, Direction: e.Direction,
		Expires: s.now().Add(s.cfg.ACD.RequeueWindow)}
	s.acdq.keepRequeue(r, s.now())
	return r.Token
}
