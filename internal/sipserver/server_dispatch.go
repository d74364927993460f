package sipserver

import (
	"context"
	"errors"
	"net"
	"runtime/debug"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/sipcore"
	"github.com/z5vrs/z5/internal/wire/algprobe"
)

// handle is sipgo's request handler for every method.
func (s *Server) handle(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		if !req.IsAck() {
			s.respond(tx, req, 503, "Service Unavailable (Shutting Down)")
		}
		return
	}
	s.bg.Add(1)
	s.mu.Unlock()
	defer s.bg.Done()
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in SIP handler", "panic", r, "method", req.Method, "stack", string(debug.Stack()))
			if !req.IsAck() {
				s.respond(tx, req, 500, "Server Internal Error")
			}
		}
	}()
	tx, unwrap := s.wrapUDP(req, tx) // stateless until authenticated (amplify.go)
	defer unwrap()
	adm, ok := s.admit(req, tx)
	if !ok {
		return
	}
	defer adm.release()
	s.dispatch(s.ctx, req, tx)
}

// dispatch routes a request as sipcore.Route decides (RFC 3261 §16.3
// request validation first).
func (s *Server) dispatch(ctx context.Context, req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	h, refusal := sipcore.Route(req, s.local)
	switch h {
	case sipcore.Refuse:
		s.respond(tx, req, refusal.Code, refusal.Reason, refusal.Headers...)
	case sipcore.InDialogAck:
		s.inDialogAck(req)
	case sipcore.Registrar:
		s.register(ctx, req, tx)
	case sipcore.InDialog:
		s.inDialog(ctx, req, tx)
	case sipcore.Options:
		s.options(req, tx)
	case sipcore.Invite:
		s.invite(ctx, req, tx)
	case sipcore.ForwardSimple:
		s.forwardSimple(ctx, req, tx)
	}
}

// options answers OPTIONS addressed to the server itself: capabilities,
// and the reachability probe of `z5 check`.
func (s *Server) options(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if s.rejectRequire(req, tx, "Require") {
		return
	}
	hs := []sipmsg.Header{
		sipcore.AllowHeader(),
		sipmsg.NewHeader("Accept", "application/sdp"),
		sipmsg.NewHeader("Accept-Encoding", "identity"),
		sipmsg.NewHeader("Accept-Language", "en"),
		sipmsg.NewHeader("Supported", strings.Join(sipcore.SupportedOptions, ", ")),
	}
	// `z5 check` asks over TCP what we received, to spot a SIP ALG on the
	// customer's firewall rewriting its messages (algprobe.EchoReply).
	if echo, body, ok := algprobe.EchoReply(req); ok {
		res := sipmsg.NewResponseFromRequest(req, 200, "OK", body)
		for _, h := range append(hs, echo...) {
			res.AppendHeader(h)
		}
		if err := s.reply(tx, req, res); err != nil {
			s.log.Debug("respond failed", "status", 200, "method", req.Method, "error", err)
		}
		return
	}
	s.respond(tx, req, 200, "OK", hs...)
}

// rejectRequire answers 420 when a Require or Proxy-Require header lists
// an option tag we do not support.
func (s *Server) rejectRequire(req *sipmsg.Request, tx sipmsg.ServerTransaction, header string) bool {
	r := sipcore.UnsupportedRequire(req, header)
	if r.Code == 0 {
		return false
	}
	s.respond(tx, req, r.Code, r.Reason, r.Headers...)
	return true
}

// respond sends a response built from req.
func (s *Server) respond(tx sipmsg.ServerTransaction, req *sipmsg.Request, code int, reason string, hs ...sipmsg.Header) {
	res := sipcore.Reply(req, code, reason)
	for _, h := range hs {
		res.AppendHeader(h)
	}
	if err := s.reply(tx, req, res); err != nil {
		s.log.Debug("respond failed", "status", code, "method", req.Method, "error", err)
	}
}

// reply sends a response in its transaction. sipgo refuses UDP messages
// over 1500 bytes (sip.UDPMTUSize), a rule RFC 3261 §18.1.1 makes for
// requests, which can move to TCP; a response cannot, so one that large
// (a video SDP, a long Via chain) is sent as a single datagram here.
func (s *Server) reply(tx sipmsg.ServerTransaction, req *sipmsg.Request, res *sipmsg.Response) error {
	err := tx.Respond(res)
	if !errors.Is(err, sipmsg.ErrUDPMTUCongestion) || sipmsg.NetworkToUpper(req.Transport()) != "UDP" {
		return err
	}
	addr, aerr := net.ResolveUDPAddr("udp", req.Source()) // rport: always the source
	if aerr != nil {
		return err
	}
	s.mu.Lock()
	udp := s.udp
	s.mu.Unlock()
	_, err = udp.WriteTo([]byte(res.String()), addr)
	return err
}
