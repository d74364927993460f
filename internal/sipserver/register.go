package sipserver

import (
	"context"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/sipcore"
	"github.com/z5vrs/z5/internal/store"
)

// register handles a REGISTER: the checks, the digest, then the changes
// sipcore.Register decides, applied to the registrar's table.
func (s *Server) register(ctx context.Context, req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	r := s.reg
	if !s.isOurHost(req.Recipient.Host) {
		s.respond(tx, req, 403, "Domain Not Served Here")
		return
	}
	if s.rejectRequire(req, tx, "Require") {
		return
	}
	if s.cfg.RequireTLS && !strings.EqualFold(req.Transport(), "TLS") {
		// Refused before any challenge: no credentials are invited over
		// plain text. Not an authentication failure, so no ban either.
		s.respond(tx, req, 403, "Forbidden (TLS Required)")
		return
	}
	to := req.To()
	if !sipcore.SupportedScheme(to.Address.Scheme) || !s.isOurHost(to.Address.Host) {
		s.respond(tx, req, 400, "Address-of-Record Must Be A SIP URI Of This Domain")
		return
	}
	dev, ok := s.authenticate(ctx, req, tx, registrarAuth)
	if !ok {
		return
	}
	if to.Address.User != dev.Number && to.Address.User != dev.SIPUser {
		s.m.authFailures.WithLabelValues("wrong-aor").Inc()
		s.respond(tx, req, 403, "Forbidden (To Does Not Match Credentials)")
		return
	}
	flow, ok := s.flowOf(req)
	if !ok {
		return // the connection closed under us: nobody to answer
	}
	if dev.Kind == store.DeviceZ5 && flow.transport == "UDP" {
		// A Z5 device always can use TCP or TLS, where its flow is a
		// connection; a UDP binding would send its calls to whatever
		// address the REGISTER came from.
		s.m.authFailures.WithLabelValues("z5-over-udp").Inc()
		s.respond(tx, req, 403, "Forbidden (Z5 Devices Register Over TCP Or TLS)")
		return
	}
	r.opMu.Lock()
	changes, refusal := r.plan(req, dev, flow)
	if refusal.Code == 0 && addsBinding(changes) && dev.Kind == store.DeviceZ5 {
		if refusal = sipcore.CheckLicense(req, dev.Number, dev.ID, s.cfg.Domain, s.now(), s.keys); refusal.Code != 0 {
			s.m.authFailures.WithLabelValues("license").Inc()
		}
	}
	var err error
	if refusal.Code == 0 {
		err = r.applyLocked(ctx, changes)
	}
	r.opMu.Unlock()
	if refusal.Code != 0 {
		s.respond(tx, req, refusal.Code, refusal.Reason, refusal.Headers...)
		return
	}
	if err != nil {
		s.log.Error("registration not stored", "number", dev.Number, "device_id", dev.ID, "error", err)
		s.respond(tx, req, 500, "Server Internal Error", retryAfter(5))
		return
	}
	if flow.conn != nil {
		for _, c := range changes {
			if c.new != nil {
				flow.conn.extendBinding(c.new.Expires)
			}
		}
	}
	now := s.now()
	if err := s.reply(tx, req, sipcore.RegisterOK(req, r.registered(dev.Number), now, s.cfg.IdleTimeout)); err != nil {
		s.log.Debug("respond failed", "error", err)
	}
	for _, c := range changes {
		switch {
		case c.new != nil && c.old == nil:
			s.log.Info("registered", "number", c.new.Number, "device_id", c.new.DeviceID, "contact", c.new.URI, "flow", c.new.flow.id, "expires", c.new.Expires.Sub(now).Round(time.Second))
		case c.new == nil:
			s.log.Info("unregistered", "number", c.old.Number, "device_id", c.old.DeviceID, "contact", c.old.URI)
		}
	}
}

func addsBinding(changes []change) bool {
	for _, c := range changes {
		if c.new != nil {
			return true
		}
	}
	return false
}
