package sipserver

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/sipcore"
	"github.com/z5vrs/z5/internal/store"
)

// The registrar's table (RFC 3261 §10.3) binds a number to the flows its
// devices registered over (RFC 5626): requests to a device go back over
// the very connection it opened, because the customer's firewall admits
// nothing inbound. A binding lives as long as both its expiry and its
// connection; the shared location table (store.Registrations) mirrors it
// so other nodes can tell where a number is registered. What a REGISTER
// changes is sipcore.Register's decision; the table applies it.
//
// The bindings live in this node's memory, which is all this node routes
// by; the location table only learns what other nodes need: that a device
// is reachable via this node. Its rows are written by the location writer
// (locwriter.go) after the REGISTER is answered. A row is queued when a
// binding appears, moves to another flow or changes its contact, and its
// delete when the binding goes; a refresh writes nothing while the
// row's lease (twice the registration's lifetime) still covers the new
// expiry, so a client refreshing every half-lifetime costs one write in
// three refreshes and a burst of refreshes costs none. What the lease
// costs: a row of a crashed node stays in the table up to one lifetime
// longer, and other nodes skip it because membership says the node is
// dead (sipcore.PeerTargets).

// binding is one registered contact of a device and the flow it is
// bound to, as lookup hands it out.
type binding struct {
	sipcore.Binding
	flow  flowRef
	since time.Time // first registered; a refresh over the same flow keeps it
	// leased: the expiry the location table holds for the binding's row;
	// zero until written.
	leased time.Time
}

// entry is a binding as the table keeps it, in fewer bytes, since a node
// holds one per registered device: the contact is its header value (one
// string, rather than a parsed header with its parameter slices and the
// parser's strings behind them), the flow is shared by every binding on it
// (a connection's address and identity are not repeated per binding), and
// the lease is unix nanoseconds. 192 bytes where a binding takes 512 (Go's
// size classes). The fields sipcore.Binding has keep its names.
type entry struct {
	Number   string
	DeviceID int64
	Kind     string
	contact  string // sipcore.Binding.Contact's value
	URI      string
	Instance string
	RegID    string
	CallID   string
	CSeq     uint32
	pos      int32 // index in its flow's flowEntries.l (in CSeq's padding)
	Expires  time.Time
	flow     *flowRef
	since    time.Time
	leased   int64 // binding.leased in unix nanoseconds; 0 until written
}

func newEntry(b *sipcore.Binding, flow *flowRef, since time.Time) *entry {
	contact, uri := b.Contact.Value(), b.URI
	// The URI is within the contact ("<uri>;params"): one string for both.
	if i := strings.Index(contact, uri); i >= 0 {
		uri = contact[i : i+len(uri)]
	}
	return &entry{Number: b.Number, DeviceID: b.DeviceID, Kind: b.Kind, contact: contact, URI: uri,
		Instance: b.Instance, RegID: b.RegID, CallID: b.CallID, CSeq: b.CSeq, Expires: b.Expires, flow: flow, since: since}
}

// ident is the entry as sipcore sees it but for its Contact, which is
// left empty: what sipcore.Register reads of a current binding.
func (e *entry) ident() sipcore.Binding {
	return sipcore.Binding{Number: e.Number, DeviceID: e.DeviceID, Kind: e.Kind, URI: e.URI, Instance: e.Instance,
		RegID: e.RegID, CallID: e.CallID, CSeq: e.CSeq, Expires: e.Expires, FlowID: e.flow.id}
}

// core is the entry as sipcore sees it, its contact parsed again. The
// value was written from a parsed header, so it parses; should it not,
// the contact is the bare URI.
func (e *entry) core() sipcore.Binding {
	b := e.ident()
	dn, err := sipmsg.ParseAddressValue(e.contact, &b.Contact.Address, &b.Contact.Params)
	if err != nil {
		b.Contact = sipmsg.ContactHeader{}
		sipmsg.ParseUri(e.URI, &b.Contact.Address)
		return b
	}
	b.Contact.DisplayName = dn
	return b
}

// binding is the entry as lookup hands it out.
func (e *entry) binding() binding {
	b := binding{Binding: e.core(), flow: *e.flow, since: e.since}
	if e.leased != 0 {
		b.leased = time.Unix(0, e.leased)
	}
	return b
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

// registrar holds this node's bindings.
type registrar struct {
	node   string
	w      *locWriter // the location table's rows, written off the request path
	t      *transport // flows, to tell a binding's connection is still open
	log    *slog.Logger
	now    func() time.Time
	gauge  prometheus.Gauge // bindings held
	limits sipcore.RegisterLimits

	// opMu serializes changes, so the location writer's queue and memory
	// see them in the same order.
	opMu sync.Mutex

	mu       sync.Mutex // guards the following
	byNumber map[string][]*entry
	byFlow   map[string]*flowEntries // the same bindings by flow ID
	count    int
}

// flowEntries are the bindings on one flow in the order they were added.
// One connection may carry thousands (a PBX, a load generator), and every
// refresh removes a binding and adds its successor: a removed binding
// leaves a nil in l, found through its pos, and l is compacted once most
// of it is nil, so neither costs a scan of the flow's bindings.
type flowEntries struct {
	l    []*entry
	live int // non-nil in l
}

// firstOrNil is the earliest added binding still on the flow, nil when
// there is none (or no f).
func (f *flowEntries) firstOrNil() *entry {
	if f == nil {
		return nil
	}
	for _, e := range f.l {
		if e != nil {
			return e
		}
	}
	return nil
}

func (f *flowEntries) add(e *entry) {
	e.pos = int32(len(f.l))
	f.l = append(f.l, e)
	f.live++
}

// del removes e, reporting false when it is not on the flow.
func (f *flowEntries) del(e *entry) bool {
	i := int(e.pos)
	if i >= len(f.l) || f.l[i] != e {
		return false
	}
	f.l[i] = nil
	f.live--
	if len(f.l) > 2*f.live+8 {
		j := 0
		for _, x := range f.l {
			if x != nil {
				x.pos = int32(j)
				f.l[j] = x
				j++
			}
		}
		clear(f.l[j:])
		f.l = f.l[:j]
	}
	return true
}

func newRegistrar(node string, st locationStore, t *transport, log *slog.Logger, now func() time.Time, m *metrics, limits sipcore.RegisterLimits) *registrar {
	return &registrar{node: node, t: t, log: log, now: now, gauge: m.registrations, limits: limits,
		w:        newLocWriter(st, log, m.locationWriteFailures, m.locationQueue),
		byNumber: map[string][]*entry{}, byFlow: map[string]*flowEntries{}}
}

// coreBindings are bs as sipcore sees them.
func coreBindings(bs []binding) []sipcore.Binding {
	out := make([]sipcore.Binding, len(bs))
	for i, b := range bs {
		out[i] = b.Binding
	}
	return out
}

// change is one binding added, refreshed or removed by a request.
type change struct {
	old, new *entry
}

// plan asks sipcore.Register what the request changes in the number's
// bindings; a non-zero refusal rejects it. The caller holds opMu, so the
// bindings planned on are still those when the changes are applied.
func (r *registrar) plan(req *sipmsg.Request, dev store.Device, flow flowRef) ([]change, sipcore.Refusal) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	current := r.byNumber[dev.Number]
	var few [4]sipcore.Binding // a number's bindings, without an allocation
	cur := few[:0]
	for _, b := range current {
		// Register reads no current Contact: parsing each stored one
		// again cost every refresh a header parse.
		cur = append(cur, b.ident())
	}
	onFlow := r.byFlow[flow.id]
	f := sipcore.Flow{ID: flow.id, UDP: flow.transport == "UDP"}
	if onFlow != nil {
		f.Bindings = onFlow.live
	}
	cs, refusal := sipcore.Register(req, sipcore.Registrant{Number: dev.Number, DeviceID: dev.ID, Kind: dev.Kind}, f, cur, r.limits, now)
	if refusal.Code != 0 {
		return nil, refusal
	}
	// Bindings on one flow share its flowRef; a flow whose address pair
	// differs under the same ID (a UDP source reaching another of our
	// sockets) gets its own.
	var fp *flowRef
	if first := onFlow.firstOrNil(); first != nil && *first.flow == flow {
		fp = first.flow
	} else {
		f := flow
		fp = &f
	}
	changes := make([]change, len(cs))
	for i, c := range cs {
		if c.Old >= 0 {
			changes[i].old = current[c.Old]
		}
		if c.New != nil {
			changes[i].new = newEntry(c.New, fp, now)
			if c.Old >= 0 && current[c.Old].flow.id == flow.id {
				changes[i].new.since = current[c.Old].since
			}
			if c.Old >= 0 && sameRow(current[c.Old], changes[i].new) {
				changes[i].new.leased = current[c.Old].leased
			}
		}
	}
	return changes, refusal
}

// applyLocked queues the location-table rows changes make, then applies
// them to memory: the REGISTER is answered from memory, the rows are
// written after. The caller holds opMu, so the queue holds each row's
// changes in the order memory saw them.
func (r *registrar) applyLocked(ctx context.Context, changes []change) error {
	now := r.now()
	var leaving []*entry
	for _, c := range changes {
		if c.old != nil {
			leaving = append(leaving, c.old)
		}
	}
	var ops []store.RegistrationChange
	leases := make([]int64, len(changes))
	for i, c := range changes {
		if c.old != nil && (c.new == nil || c.old.flow.id != c.new.flow.id) && !r.sharesRow(c.old, leaving) {
			ops = append(ops, r.rowDelete(c.old))
		}
		if c.new != nil && c.new.leased < c.new.Expires.UnixNano() {
			lease := c.new.Expires.Add(c.new.Expires.Sub(now))
			leases[i] = lease.UnixNano()
			ops = append(ops, store.RegistrationChange{Registration: store.Registration{
				Number: c.new.Number, DeviceID: c.new.DeviceID, Node: r.node, FlowID: c.new.flow.id,
				Contact: c.new.URI, Instance: c.new.Instance, ExpiresAt: lease, UpdatedAt: now,
			}})
		}
	}
	if err := r.w.enqueue(ctx, ops); err != nil {
		return fmt.Errorf("queue registration: %w", err)
	}
	for i, c := range changes {
		if leases[i] != 0 {
			c.new.leased = leases[i]
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
	r.gauge.Set(float64(n))
	return nil
}

// sameRow reports whether b, refreshed as n, keeps its location-table row
// as written: same flow, contact and instance.
func sameRow(b, n *entry) bool {
	return b.flow.id == n.flow.id && b.URI == n.URI && b.Instance == n.Instance &&
		b.Number == n.Number && b.DeviceID == n.DeviceID
}

// sharesRow reports whether another binding, not among except, has the
// same location-table row as b (number, device, node, flow): the row must
// stay while one does.
func (r *registrar) sharesRow(b *entry, except []*entry) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sharesRowLocked(b, except)
}

func (r *registrar) sharesRowLocked(b *entry, except []*entry) bool {
	f := r.byFlow[b.flow.id]
	if f == nil {
		return false
	}
	for _, o := range f.l {
		if o != nil && o != b && o.Number == b.Number && o.DeviceID == b.DeviceID && !slices.Contains(except, o) {
			return true
		}
	}
	return false
}

func (r *registrar) addLocked(b *entry) {
	r.byNumber[b.Number] = append(r.byNumber[b.Number], b)
	f := r.byFlow[b.flow.id]
	if f == nil {
		f = &flowEntries{}
		r.byFlow[b.flow.id] = f
	}
	f.add(b)
	r.count++
}

func (r *registrar) delLocked(b *entry) {
	// A number has few bindings (limits.MaxPerNumber): a scan is cheap.
	if l := slices.DeleteFunc(r.byNumber[b.Number], func(x *entry) bool { return x == b }); len(l) == 0 {
		delete(r.byNumber, b.Number)
	} else {
		r.byNumber[b.Number] = l
	}
	if f := r.byFlow[b.flow.id]; f != nil && f.del(b) && f.live == 0 {
		delete(r.byFlow, b.flow.id)
	}
	r.count--
}

// lookup returns the live bindings of a number, most recent first.
func (r *registrar) lookup(number string) []binding {
	var out []binding
	r.live(number, func(e *entry) { out = append(out, e.binding()) })
	return out
}

// registered is the number's live bindings as a 200 to a REGISTER lists
// them: the stored contacts, not parsed again.
func (r *registrar) registered(number string) []sipcore.Registered {
	var out []sipcore.Registered
	r.live(number, func(e *entry) { out = append(out, sipcore.Registered{Contact: e.contact, Expires: e.Expires}) })
	return out
}

// live calls f, under r.mu, with each live binding of number, the newest
// first.
func (r *registrar) live(number string, f func(*entry)) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.byNumber[number]
	for i := len(l) - 1; i >= 0; i-- {
		if e := l[i]; e.Expires.After(now) && e.flow.alive(r.t) {
			f(e)
		}
	}
}

// flowDevice returns the device a flow is registered for, if a live
// binding is bound to it.
func (r *registrar) flowDevice(flowID string) (number string, deviceID int64, ok bool) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.byFlow[flowID]
	if f == nil {
		return "", 0, false
	}
	for _, b := range f.l {
		if b != nil && b.Expires.After(now) {
			return b.Number, b.DeviceID, true
		}
	}
	return "", 0, false
}

// hasUDP reports whether a UDP binding uses addr.
func (r *registrar) hasUDP(addr netip.AddrPort) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.byFlow["UDP/"+addr.String()]
	return f != nil && f.live > 0
}

// dropFlow removes every binding of a closed flow.
func (r *registrar) dropFlow(flowID string) {
	r.mu.Lock()
	var gone []*entry
	if f := r.byFlow[flowID]; f != nil {
		for _, b := range f.l {
			if b != nil {
				gone = append(gone, b)
			}
		}
	}
	r.mu.Unlock()
	if len(gone) > 0 {
		r.remove(func(b *entry) bool { return slices.Contains(gone, b) }, "flow closed")
	}
}

// expire removes bindings past their expiry.
func (r *registrar) expire(now time.Time) {
	r.remove(func(b *entry) bool { return !b.Expires.After(now) }, "expired")
}

// rowDelete is the change that deletes b's location-table row.
func (r *registrar) rowDelete(b *entry) store.RegistrationChange {
	return store.RegistrationChange{Delete: true, Registration: store.Registration{
		Number: b.Number, DeviceID: b.DeviceID, Node: r.node, FlowID: b.flow.id}}
}

// close drops every binding and writes what the location writer holds
// (server shutdown).
func (r *registrar) close() {
	r.remove(func(*entry) bool { return true }, "shutdown")
	r.w.close()
}

func (r *registrar) remove(match func(*entry) bool, why string) {
	r.opMu.Lock()
	defer r.opMu.Unlock()
	var gone []*entry
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
	var rows []*entry
	for _, b := range gone {
		if !r.sharesRowLocked(b, nil) {
			rows = append(rows, b)
		}
	}
	r.mu.Unlock()
	if len(gone) == 0 {
		return
	}
	r.gauge.Set(float64(n))
	for _, b := range gone {
		r.log.Info("binding removed", "number", b.Number, "device_id", b.DeviceID, "contact", b.URI, "reason", why)
	}
	ops := make([]store.RegistrationChange, len(rows))
	for i, b := range rows {
		ops[i] = r.rowDelete(b)
	}
	// Bounded as the store call it replaced was: past it the rows stay
	// until their lease runs out, ignored once this node is gone.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.w.enqueue(ctx, ops); err != nil {
		r.log.Warn("registrations not removed from the location table", "rows", len(ops), "error", err)
	}
}
