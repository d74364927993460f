package sipserver

import (
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/sipcore"
)

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
	authTried   bool // the trunk's challenge was answered once (trunk_auth.go)
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
		if c.decorate != nil {
			c.decorate(f.req)
		}
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
		f.mu.Lock()
		tx := f.tx // replaced when the trunk's challenge is answered
		f.mu.Unlock()
		select {
		case res := <-tx.Responses():
			if s.retryWithAuth(c, f, res) {
				continue
			}
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
		case <-tx.Done():
			f.mu.Lock()
			replaced := tx != f.tx
			f.mu.Unlock()
			if replaced {
				continue
			}
			select {
			case events <- forkEvent{f: f, err: tx.Err()}:
			case <-decided:
			}
			return
		case <-s.ctx.Done():
			tx.Terminate()
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
	inv := f.req // replaced when the trunk's challenge is answered
	if f.final || f.cancelSent || !f.provisional {
		quiet := !f.final && !f.provisional && !sipmsg.IsReliable(inv.Transport())
		f.mu.Unlock()
		if quiet {
			if via := inv.Via(); via != nil {
				branch, _ := via.Params.Get("branch")
				s.t.amp.silence(branch)
			}
		}
		return
	}
	f.cancelSent = true
	f.mu.Unlock()

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
