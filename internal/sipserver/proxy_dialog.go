package sipserver

import (
	"context"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/sipcore"
)

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
