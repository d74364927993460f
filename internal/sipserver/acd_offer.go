package sipserver

import (
	"context"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/acd"
	"github.com/z5vrs/z5/internal/sipcore"
	"github.com/z5vrs/z5/internal/store"
)

// offerOutcome is how one offer of a queued call ended.
type offerOutcome int

const (
	offerRequeue   offerOutcome = iota // nobody answered: the call waits again
	offerAnswered                      // an interpreter answered: an ordinary call now
	offerAbandoned                     // the caller gave up while it rang
	offerShutdown
)

// offerRequest is the first leg's INVITE as offered to stations: the
// caller's From (display name kept), the relay call's facts in X-Z5-*.
func (s *Server) offerRequest(c *call, req *sipmsg.Request) *sipmsg.Request {
	e := c.relay.entry
	r := req.Clone()
	removeHeaders(r, sipcore.RelayHeaders...)
	hs := [][2]string{
		{sipcore.HdrRelayCall, c.id},
		{sipcore.HdrDirection, e.Direction},
		{sipcore.HdrDialed, e.Dialed},
		{sipcore.HdrUser, e.User},
		{sipcore.HdrCaller, e.Caller},
	}
	if e.Direction == store.CallEmergency {
		hs = append(hs, [2]string{sipcore.HdrLocation, e.Location}, [2]string{sipcore.HdrCallback, e.User})
	}
	for _, h := range hs {
		if h[1] != "" {
			r.AppendHeader(sipmsg.NewHeader(h[0], h[1]))
		}
	}
	return r
}

// offer rings the claimed interpreters' stations (every one at once: 911
// is offered to all ready) until one answers, all decline or the ring
// timeout passes.
func (s *Server) offer(c *call, req *sipmsg.Request, tx sipmsg.ServerTransaction, body []byte, caIDs []string, canceled <-chan struct{}) offerOutcome {
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	now := s.now()
	c.mu.Lock()
	if c.record.OfferedAt.IsZero() {
		c.record.OfferedAt = now
	}
	c.mu.Unlock()
	base := s.offerRequest(c, req)
	events := make(chan forkEvent)
	decided := make(chan struct{})
	var forks []*fork
	agentOf := map[*fork]string{}
	open := map[string]int{} // forks still ringing, by agent
	for _, id := range caIDs {
		station := store.StationNumber(id)
		local := s.reg.lookup(station)
		bs := append(local, s.peerForks(ctx, station, local)...)
		for _, b := range bs {
			f := &fork{b: b, req: s.forkRequest(base, b, c.caller.flow, body)}
			t, err := s.cli.TransactionRequest(s.ctx, f.req, noBuild)
			if err != nil {
				s.log.Debug("offer not sent", "call_id", c.id, "ca_id", id, "error", err)
				continue
			}
			f.tx = t
			forks = append(forks, f)
			agentOf[f] = id
			open[id]++
			s.goAsync(func() { s.readFork(c, f, events, decided) })
		}
		if open[id] == 0 {
			// Signed in as ready but not registered: away.
			s.log.Info("interpreter ready but unreachable: not ready", "call_id", c.id, "ca_id", id)
			s.release(c, id, acd.NotReady)
		}
	}
	s.log.Info("relay call offered", "call_id", c.id, "interpreters", caIDs, "forks", len(forks))
	finish := func(state string, outcome offerOutcome) offerOutcome {
		s.markLate(forks)
		close(decided)
		for _, f := range forks {
			s.cancelFork(f)
		}
		for id := range open {
			s.release(c, id, state)
		}
		return outcome
	}
	if len(forks) == 0 {
		return finish(acd.NotReady, offerRequeue)
	}
	ring := time.NewTimer(s.cfg.ACD.RingTimeout)
	defer ring.Stop()
	for {
		select {
		case e := <-events:
			id := agentOf[e.f]
			if e.res != nil && e.res.IsProvisional() {
				continue // the caller keeps hearing its position, not the station ringing
			}
			if e.res != nil && e.res.IsSuccess() {
				if err := s.store.AnswerOffer(ctx, c.id, id, s.now()); err == nil {
					delete(open, id)
					for other := range open {
						delete(open, other) // AnswerOffer made them ready
					}
					s.markLate(forks)
					close(decided)
					for _, f := range forks {
						if f != e.f {
							s.cancelFork(f)
						}
					}
					s.answered(c, id)
					c.relay.stopSlate() // the slate ends before the answer goes out
					s.answer(c, req, tx, e.f, e.res)
					return offerAnswered
				} else {
					s.log.Warn("answer of an offer no longer held", "call_id", c.id, "ca_id", id, "error", err)
					s.hangUpLate(c, e.f, e.res)
				}
			}
			// This fork failed (declined, gone, or its answer came too
			// late); the agent is done when all its forks are.
			if open[id]--; open[id] <= 0 {
				delete(open, id)
				st, _, _ := acd.Next(acd.Offered, acd.EvReject)
				s.release(c, id, st)
			}
			if len(open) == 0 {
				return finish(acd.NotReady, offerRequeue)
			}
		case <-ring.C:
			st, _, _ := acd.Next(acd.Offered, acd.EvRingTimeout)
			s.log.Info("offer rang out", "call_id", c.id, "ring_timeout", s.cfg.ACD.RingTimeout)
			return finish(st, offerRequeue)
		case <-canceled:
			st, _, _ := acd.Next(acd.Offered, acd.EvLost)
			return finish(st, offerAbandoned)
		case <-tx.Done():
			st, _, _ := acd.Next(acd.Offered, acd.EvLost)
			return finish(st, offerAbandoned)
		case <-s.ctx.Done():
			return finish(acd.Ready, offerShutdown)
		}
	}
}

// answered records the interpreter who took a first leg.
func (s *Server) answered(c *call, caID string) {
	now := s.now()
	c.mu.Lock()
	c.relay.caID = caID
	c.record.CAID = caID
	c.record.SessionStart = now
	queued := c.record.QueuedAt
	c.mu.Unlock()
	s.acdq.remove(c)
	s.acdm.wait.Observe(now.Sub(queued).Seconds())
	s.log.Info("relay call answered by interpreter", "call_id", c.id, "ca_id", caID, "wait", now.Sub(queued).Round(time.Millisecond))
}
