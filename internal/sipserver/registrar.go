package sipserver

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/license"
	"github.com/z5vrs/z5/internal/store"
)

// The registrar (RFC 3261 §10.3) binds a number to the flows its devices
// registered over (RFC 5626): requests to a device go back over the very
// connection it opened, because the customer's firewall admits nothing
// inbound. A binding lives as long as both its expiry and its connection;
// the shared location table (store.PutRegistration) mirrors it so other
// nodes can tell where a number is registered.

// Limits on bindings, against a client filling memory.
const (
	maxContactsPerRequest = 8
)

// binding is one registered contact of a device.
type binding struct {
	number   string
	deviceID int64
	kind     string
	contact  sipmsg.ContactHeader // as registered, without an expires parameter
	uri      string               // contact URI, the binding's identity with deviceID
	instance string               // +sip.instance
	regID    string
	callID   string
	cseq     uint32
	expires  time.Time
	flow     flowRef
}

// flowRef says where requests for a party go: the connection (or UDP
// source address) it used.
type flowRef struct {
	id        string         // FlowID in the location table
	transport string         // "TCP", "TLS" or "UDP"
	dest      string         // remote address, as sipgo keys connections
	local     netip.AddrPort // our address on the flow
	conn      *flowConn      // nil for UDP
	// peer is the MCS node at the other end when the flow is a
	// node-to-node connection (forward.go), else "".
	peer string
}

// alive reports whether requests can still be sent over the flow.
func (f flowRef) alive(t *transport) bool {
	if f.conn == nil {
		return f.dest != ""
	}
	return t.flow(f.transport, f.dest) == f.conn
}

// remoteIP is the party's signalling address.
func (f flowRef) remoteIP() netip.Addr {
	ap, _ := netip.ParseAddrPort(f.dest)
	return ap.Addr().Unmap()
}

type registrar struct {
	s *Server

	// opMu serializes changes, so the store and memory see them in the
	// same order.
	opMu sync.Mutex

	mu       sync.Mutex // guards the following
	byNumber map[string][]*binding
	byFlow   map[string][]*binding // the same bindings by flow ID
	count    int
}

func newRegistrar(s *Server) *registrar {
	return &registrar{s: s, byNumber: map[string][]*binding{}, byFlow: map[string][]*binding{}}
}

// change is one binding added, refreshed or removed by a request.
type change struct {
	old, new *binding
}

func (r *registrar) handle(ctx context.Context, req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	s := r.s
	if !s.isOurHost(req.Recipient.Host) {
		s.respond(tx, req, 403, "Domain Not Served Here")
		return
	}
	if s.rejectRequire(req, tx, "Require") {
		return
	}
	to := req.To()
	if !supportedScheme(to.Address.Scheme) || !s.isOurHost(to.Address.Host) {
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
	changes, code, reason, extra := r.plan(req, dev, flow)
	if code == 0 && needsLicense(changes) && dev.Kind == store.DeviceZ5 {
		if lr, warn := s.checkLicense(req, dev); lr != "" {
			s.m.authFailures.WithLabelValues("license").Inc()
			code, reason = 403, lr
			extra = []sipmsg.Header{sipmsg.NewHeader("Warning", fmt.Sprintf(`399 %s "%s"`, s.cfg.Domain, warn))}
		}
	}
	var err error
	if code == 0 {
		err = r.applyLocked(ctx, changes)
	}
	r.opMu.Unlock()
	if code != 0 {
		s.respond(tx, req, code, reason, extra...)
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
				flow.conn.extendBinding(c.new.expires)
			}
		}
	}
	res := sipmsg.NewResponseFromRequest(req, 200, "OK", nil)
	now := s.now()
	for _, b := range r.lookup(dev.Number) {
		c := b.contact.Clone()
		c.Params = c.Params.Clone()
		c.Params.Add("expires", strconv.Itoa(int(math.Ceil(b.expires.Sub(now).Seconds()))))
		res.AppendHeader(c)
	}
	res.AppendHeader(sipmsg.NewHeader("Date", now.UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT"))) // RFC 3261 §20.17
	if usesOutbound(req) {
		// RFC 5626 §6: the registrar supports outbound; Flow-Timer tells
		// the client how often to ping so the flow is not idled out.
		res.AppendHeader(sipmsg.NewHeader("Require", "outbound"))
		res.AppendHeader(sipmsg.NewHeader("Flow-Timer", strconv.Itoa(int(s.cfg.IdleTimeout/time.Second))))
	}
	if err := s.reply(tx, req, res); err != nil {
		s.log.Debug("respond failed", "error", err)
	}
	for _, c := range changes {
		switch {
		case c.new != nil && c.old == nil:
			s.log.Info("registered", "number", c.new.number, "device_id", c.new.deviceID, "contact", c.new.uri, "flow", c.new.flow.id, "expires", c.new.expires.Sub(now).Round(time.Second))
		case c.new == nil:
			s.log.Info("unregistered", "number", c.old.number, "device_id", c.old.deviceID, "contact", c.old.uri)
		}
	}
}

func usesOutbound(req *sipmsg.Request) bool {
	c := req.Contact()
	if c == nil || !c.Params.Has("reg-id") || !c.Params.Has("+sip.instance") {
		return false
	}
	for _, h := range append(req.GetHeaders("Supported"), req.GetHeaders("k")...) {
		if slices.Contains(optionTags(h.Value()), "outbound") {
			return true
		}
	}
	return false
}

func needsLicense(changes []change) bool {
	for _, c := range changes {
		if c.new != nil {
			return true
		}
	}
	return false
}

// checkLicense verifies the device's license (X-Z5-License). It returns
// the reason phrase of a 403 and a detail for the Warning header, or "".
func (s *Server) checkLicense(req *sipmsg.Request, dev store.Device) (reason, detail string) {
	h := req.GetHeader("X-Z5-License")
	if h == nil || strings.TrimSpace(h.Value()) == "" {
		return "Forbidden (License Required)", "a Z5 device must present its license in X-Z5-License"
	}
	claims, err := license.Verify(strings.TrimSpace(h.Value()), s.now(), s.keys...)
	switch {
	case err != nil:
		return "Forbidden (License Invalid)", err.Error()
	case claims.Number != dev.Number || claims.DeviceID != dev.ID:
		return "Forbidden (License Invalid)", "license is for another number or device"
	}
	return "", ""
}

// plan validates the request's Contacts and Expires and works out the
// changes (RFC 3261 §10.3 steps 6-7). A non-zero code rejects the request.
func (r *registrar) plan(req *sipmsg.Request, dev store.Device, flow flowRef) (changes []change, code int, reason string, extra []sipmsg.Header) {
	s := r.s
	cfg := s.cfg
	headerExpires := -1
	if h := req.GetHeader("Expires"); h != nil {
		v, ok := parseDelta(h.Value())
		if !ok {
			return nil, 400, "Malformed Expires Header", nil
		}
		headerExpires = v
	}
	var contacts []*sipmsg.ContactHeader
	for _, h := range req.GetHeaders("Contact") {
		if c, ok := h.(*sipmsg.ContactHeader); ok {
			contacts = append(contacts, c)
		}
	}
	callID, cseq := req.CallID().Value(), req.CSeq().SeqNo
	now := s.now()

	r.mu.Lock()
	defer r.mu.Unlock()
	current := r.byNumber[dev.Number]

	if len(contacts) == 1 && contacts[0].Address.Wildcard {
		if headerExpires != 0 {
			return nil, 400, "Wildcard Contact Requires Expires: 0", nil
		}
		for _, b := range current {
			if b.deviceID == dev.ID {
				changes = append(changes, change{old: b})
			}
		}
		return changes, 0, "", nil
	}
	if len(contacts) > maxContactsPerRequest {
		return nil, 403, "Forbidden (Too Many Contacts)", nil
	}
	added := 0
	for _, c := range contacts {
		if c.Address.Wildcard {
			return nil, 400, "Wildcard Contact Must Be Alone", nil
		}
		if !supportedScheme(c.Address.Scheme) {
			return nil, 400, "Contact Must Be A SIP URI", nil
		}
		expires := cfg.DefaultExpires
		if headerExpires >= 0 {
			expires = headerExpires
		}
		if v, ok := c.Params.Get("expires"); ok {
			e, ok := parseDelta(v)
			if !ok {
				return nil, 400, "Malformed Contact Expires", nil
			}
			expires = e
		}
		if expires > 0 && expires < cfg.MinExpires {
			return nil, 423, "Interval Too Brief", []sipmsg.Header{sipmsg.NewHeader("Min-Expires", strconv.Itoa(cfg.MinExpires))}
		}
		expires = min(expires, cfg.MaxExpires)

		stored := c.Clone()
		stored.Params = c.Params.Clone()
		stored.Params.Remove("expires")
		instance, _ := c.Params.Get("+sip.instance")
		regID, _ := c.Params.Get("reg-id")
		uri := c.Address.String()

		var old *binding
		for _, b := range current {
			if b.deviceID == dev.ID && (b.uri == uri || instance != "" && b.instance == instance && b.regID == regID) {
				old = b
				break
			}
		}
		if old != nil && old.callID == callID && cseq <= old.cseq {
			return nil, 500, "Out Of Order Registration", []sipmsg.Header{retryAfter(1)}
		}
		if expires == 0 {
			if old != nil {
				changes = append(changes, change{old: old})
			}
			continue
		}
		if old == nil {
			added++
		}
		changes = append(changes, change{old: old, new: &binding{
			number: dev.Number, deviceID: dev.ID, kind: dev.Kind, contact: *stored, uri: uri,
			instance: instance, regID: regID, callID: callID, cseq: cseq,
			expires: now.Add(time.Duration(expires) * time.Second), flow: flow,
		}})
	}
	if len(current)+added > cfg.Limits.MaxRegistrationsPerNumber {
		return nil, 403, "Forbidden (Too Many Registrations)", nil
	}
	if flow.transport == "UDP" && udpBindingsOver(changes, len(r.byFlow[flow.id]), flow.id, cfg.MaxUDPBindingsPerAddr) {
		return nil, 403, "Forbidden (Too Many Registrations At This Address)", nil
	}
	return changes, 0, "", nil
}

// udpBindingsOver reports whether changes would leave more than max
// bindings, across all numbers, on the UDP flow flowID (one source
// ip:port), which has existing now. Every binding is a fork target an
// INVITE is sent and retransmitted to, so one address must not collect
// many.
func udpBindingsOver(changes []change, existing int, flowID string, max int) bool {
	n := existing
	for _, c := range changes {
		if c.old != nil && c.old.flow.id == flowID {
			n--
		}
		if c.new != nil {
			n++
		}
	}
	return n > max
}

// parseDelta parses delta-seconds (RFC 3261 §25.1); values beyond 2^32-1
// are taken as 2^32-1 (RFC 4475 §3.1.2.4 allows clamping).
func parseDelta(v string) (int, bool) {
	v = strings.TrimSpace(v)
	if v == "" || strings.Trim(v, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return math.MaxUint32, true
	}
	return int(min(n, math.MaxInt32)), true
}

// applyLocked writes changes to the location table, then to memory. The
// caller holds opMu.
func (r *registrar) applyLocked(ctx context.Context, changes []change) error {
	s := r.s
	now := s.now()
	var leaving []*binding
	for _, c := range changes {
		if c.old != nil {
			leaving = append(leaving, c.old)
		}
	}
	for _, c := range changes {
		if c.old != nil && (c.new == nil || c.old.flow.id != c.new.flow.id) && !r.sharesRow(c.old, leaving) {
			if err := s.store.DeleteRegistration(ctx, c.old.number, c.old.deviceID, s.cfg.Node, c.old.flow.id); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("delete registration: %w", err)
			}
		}
		if c.new != nil {
			err := s.store.PutRegistration(ctx, store.Registration{
				Number: c.new.number, DeviceID: c.new.deviceID, Node: s.cfg.Node, FlowID: c.new.flow.id,
				Contact: c.new.uri, Instance: c.new.instance, ExpiresAt: c.new.expires, UpdatedAt: now,
			})
			if err != nil {
				return fmt.Errorf("put registration: %w", err)
			}
		}
	}
	r.mu.Lock()
	for _, c := range changes {
		if c.old != nil {
			r.delLocked(c.old)
		}
		if c.new != nil {
			r.addLocked(c.new)
		}
	}
	n := r.count
	r.mu.Unlock()
	s.m.registrations.Set(float64(n))
	return nil
}

// sharesRow reports whether another binding, not among except, has the
// same location-table row as b (number, device, node, flow): the row must
// stay while one does.
func (r *registrar) sharesRow(b *binding, except []*binding) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sharesRowLocked(b, except)
}

func (r *registrar) sharesRowLocked(b *binding, except []*binding) bool {
	for _, o := range r.byFlow[b.flow.id] {
		if o != b && o.number == b.number && o.deviceID == b.deviceID && !slices.Contains(except, o) {
			return true
		}
	}
	return false
}

func (r *registrar) addLocked(b *binding) {
	r.byNumber[b.number] = append(r.byNumber[b.number], b)
	r.byFlow[b.flow.id] = append(r.byFlow[b.flow.id], b)
	r.count++
}

func (r *registrar) delLocked(b *binding) {
	drop := func(m map[string][]*binding, k string) {
		l := slices.DeleteFunc(m[k], func(x *binding) bool { return x == b })
		if len(l) == 0 {
			delete(m, k)
		} else {
			m[k] = l
		}
	}
	drop(r.byNumber, b.number)
	drop(r.byFlow, b.flow.id)
	r.count--
}

// lookup returns the live bindings of a number, most recent first.
func (r *registrar) lookup(number string) []binding {
	now := r.s.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []binding
	for _, b := range r.byNumber[number] {
		if b.expires.After(now) && b.flow.alive(r.s.t) {
			out = append(out, *b)
		}
	}
	slices.Reverse(out)
	return out
}

// flowDevice returns the device a flow is registered for, if a live
// binding is bound to it.
func (r *registrar) flowDevice(flowID string) (number string, deviceID int64, ok bool) {
	now := r.s.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.byFlow[flowID] {
		if b.expires.After(now) {
			return b.number, b.deviceID, true
		}
	}
	return "", 0, false
}

// hasUDP reports whether a UDP binding uses addr.
func (r *registrar) hasUDP(addr netip.AddrPort) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byFlow["UDP/"+addr.String()]) > 0
}

// dropFlow removes every binding of a closed flow.
func (r *registrar) dropFlow(flowID string) {
	r.mu.Lock()
	gone := slices.Clone(r.byFlow[flowID])
	r.mu.Unlock()
	if len(gone) > 0 {
		r.remove(func(b *binding) bool { return slices.Contains(gone, b) }, "flow closed")
	}
}

// expire removes bindings past their expiry.
func (r *registrar) expire(now time.Time) {
	r.remove(func(b *binding) bool { return !b.expires.After(now) }, "expired")
}

// removeAll drops every binding (server shutdown).
func (r *registrar) removeAll() {
	r.remove(func(*binding) bool { return true }, "shutdown")
}

func (r *registrar) remove(match func(*binding) bool, why string) {
	r.opMu.Lock()
	defer r.opMu.Unlock()
	var gone []*binding
	r.mu.Lock()
	for _, l := range r.byNumber {
		for _, b := range l {
			if match(b) {
				gone = append(gone, b)
			}
		}
	}
	for _, b := range gone {
		r.delLocked(b)
	}
	n := r.count
	var rows []*binding
	for _, b := range gone {
		if !r.sharesRowLocked(b, nil) {
			rows = append(rows, b)
		}
	}
	r.mu.Unlock()
	if len(gone) == 0 {
		return
	}
	r.s.m.registrations.Set(float64(n))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, b := range gone {
		r.s.log.Info("binding removed", "number", b.number, "device_id", b.deviceID, "contact", b.uri, "reason", why)
	}
	for _, b := range rows {
		if err := r.s.store.DeleteRegistration(ctx, b.number, b.deviceID, r.s.cfg.Node, b.flow.id); err != nil && !errors.Is(err, store.ErrNotFound) {
			r.s.log.Warn("registration not removed from the location table", "number", b.number, "device_id", b.deviceID, "error", err)
		}
	}
}
