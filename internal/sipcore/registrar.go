package sipcore

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// The registrar (RFC 3261 §10.3) binds a number to the flows its devices
// registered over (RFC 5626). Register decides what one REGISTER changes;
// the server applies the changes to memory and the location table.

// MaxContactsPerRequest bounds the Contacts of one REGISTER, against a
// client filling memory.
const MaxContactsPerRequest = 8

// Binding is one registered contact of a device.
type Binding struct {
	Number   string
	DeviceID int64
	Kind     string
	Contact  sipmsg.ContactHeader // as registered, without an expires parameter
	URI      string               // contact URI, the binding's identity with DeviceID
	Instance string               // +sip.instance
	RegID    string
	CallID   string
	CSeq     uint32
	Expires  time.Time
	FlowID   string // the flow requests for the binding go over
}

// Registrant is the authenticated device a REGISTER is for.
type Registrant struct {
	Number   string
	DeviceID int64
	Kind     string
}

// Flow is the flow a REGISTER arrived on, as the registrar sees it.
type Flow struct {
	ID  string
	UDP bool // a UDP source address rather than a connection
	// Bindings is how many bindings, across all numbers, use the flow now.
	Bindings int
}

// RegisterLimits bound what a REGISTER may ask for.
type RegisterLimits struct {
	MinExpires, MaxExpires, DefaultExpires int // seconds
	MaxPerNumber                           int // bindings of one number
	MaxUDPPerAddr                          int // bindings on one UDP source ip:port
}

// Change is one binding added, refreshed (both set) or removed (New nil).
// Old indexes the current bindings given to Register; -1 when new.
type Change struct {
	Old int
	New *Binding
}

// Refusal is a final non-2xx answer; the zero value means none.
type Refusal struct {
	Code    int
	Reason  string
	Headers []sipmsg.Header
}

func refuse(code int, reason string, hs ...sipmsg.Header) Refusal {
	return Refusal{Code: code, Reason: reason, Headers: hs}
}

// Register validates a REGISTER's Contacts and Expires and works out the
// changes to the number's current bindings (RFC 3261 §10.3 steps 6-7). A
// refusal with a non-zero Code rejects the request and changes nothing.
// Of the current bindings it reads what identifies them (device, URI,
// instance, reg-id, Call-ID, CSeq, flow), never their Contact: the
// registrar passes them without parsing their stored contacts again.
func Register(req *sipmsg.Request, dev Registrant, flow Flow, current []Binding, lim RegisterLimits, now time.Time) ([]Change, Refusal) {
	headerExpires := -1
	if h := req.GetHeader("Expires"); h != nil {
		v, ok := ParseDelta(h.Value())
		if !ok {
			return nil, refuse(400, "Malformed Expires Header")
		}
		headerExpires = v
	}
	var contacts []*sipmsg.ContactHeader
	for h := range Named(req.Headers(), "Contact") {
		if c, ok := h.(*sipmsg.ContactHeader); ok {
			contacts = append(contacts, c)
		}
	}
	var callID string
	if h := req.CallID(); h != nil {
		callID = h.Value()
	}
	var cseq uint32
	if h := req.CSeq(); h != nil {
		cseq = h.SeqNo
	}

	var changes []Change
	if len(contacts) == 1 && contacts[0].Address.Wildcard {
		if headerExpires != 0 {
			return nil, refuse(400, "Wildcard Contact Requires Expires: 0")
		}
		for i, b := range current {
			if b.DeviceID == dev.DeviceID {
				changes = append(changes, Change{Old: i})
			}
		}
		return changes, Refusal{}
	}
	if len(contacts) > MaxContactsPerRequest {
		return nil, refuse(403, "Forbidden (Too Many Contacts)")
	}
	added := 0
	for _, c := range contacts {
		if c.Address.Wildcard {
			return nil, refuse(400, "Wildcard Contact Must Be Alone")
		}
		if !SupportedScheme(c.Address.Scheme) {
			return nil, refuse(400, "Contact Must Be A SIP URI")
		}
		expires := lim.DefaultExpires
		if headerExpires >= 0 {
			expires = headerExpires
		}
		if v, ok := c.Params.Get("expires"); ok {
			e, ok := ParseDelta(v)
			if !ok {
				return nil, refuse(400, "Malformed Contact Expires")
			}
			expires = e
		}
		if expires > 0 && expires < lim.MinExpires {
			return nil, refuse(423, "Interval Too Brief", sipmsg.NewHeader("Min-Expires", strconv.Itoa(lim.MinExpires)))
		}
		expires = min(expires, lim.MaxExpires)

		// Shares the request's parsed address: a binding keeps only the
		// value written from it (the registrar's entry), not the header.
		stored := *c
		if c.Params.Has("expires") {
			stored.Params = c.Params.Clone()
			stored.Params.Remove("expires")
		}
		instance, _ := c.Params.Get("+sip.instance")
		regID, _ := c.Params.Get("reg-id")
		uri := c.Address.String()

		old := -1
		for i, b := range current {
			if b.DeviceID == dev.DeviceID && (b.URI == uri || instance != "" && b.Instance == instance && b.RegID == regID) {
				old = i
				break
			}
		}
		if old >= 0 && current[old].CallID == callID && cseq <= current[old].CSeq {
			return nil, refuse(500, "Out Of Order Registration", RetryAfter(1))
		}
		if expires == 0 {
			if old >= 0 {
				changes = append(changes, Change{Old: old})
			}
			continue
		}
		if old < 0 {
			added++
		}
		changes = append(changes, Change{Old: old, New: &Binding{
			Number: dev.Number, DeviceID: dev.DeviceID, Kind: dev.Kind, Contact: stored, URI: uri,
			Instance: instance, RegID: regID, CallID: callID, CSeq: cseq,
			Expires: now.Add(time.Duration(expires) * time.Second), FlowID: flow.ID,
		}})
	}
	if len(current)+added > lim.MaxPerNumber {
		return nil, refuse(403, "Forbidden (Too Many Registrations)")
	}
	if flow.UDP && udpBindingsOver(changes, current, flow, lim.MaxUDPPerAddr) {
		return nil, refuse(403, "Forbidden (Too Many Registrations At This Address)")
	}
	return changes, Refusal{}
}

// udpBindingsOver reports whether changes would leave more than max
// bindings, across all numbers, on the UDP flow (one source ip:port).
// Every binding is a fork target an INVITE is sent and retransmitted to,
// so one address must not collect many.
func udpBindingsOver(changes []Change, current []Binding, flow Flow, max int) bool {
	n := flow.Bindings
	for _, c := range changes {
		if c.Old >= 0 && current[c.Old].FlowID == flow.ID {
			n--
		}
		if c.New != nil {
			n++
		}
	}
	return n > max
}

// Registered is a live binding as the 200 to a REGISTER lists it.
type Registered struct {
	Contact string // the Contact value as stored: without an expires parameter
	Expires time.Time
}

// RegisterOK is the 200 to a REGISTER: every live binding of the number
// with its remaining time, the Date (RFC 3261 §20.17), and with outbound
// (RFC 5626 §6) the Flow-Timer telling the client how often to ping so
// its flow is not idled out. A Contact is written from its stored value,
// which Register took from a parsed header less its expires parameter, so
// appending the remaining time gives the header a parse and a new
// parameter would, without parsing every binding again.
func RegisterOK(req *sipmsg.Request, bindings []Registered, now time.Time, flowTimer time.Duration) *sipmsg.Response {
	res := Reply(req, 200, "OK")
	var buf [256]byte
	for _, b := range bindings {
		secs := int64(math.Ceil(b.Expires.Sub(now).Seconds()))
		v := strconv.AppendInt(append(append(buf[:0], b.Contact...), ";expires="...), secs, 10)
		res.AppendHeader(sipmsg.NewHeader("Contact", string(v)))
	}
	res.AppendHeader(sipmsg.NewHeader("Date", now.UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT")))
	if UsesOutbound(req) {
		res.AppendHeader(sipmsg.NewHeader("Require", "outbound"))
		res.AppendHeader(sipmsg.NewHeader("Flow-Timer", strconv.Itoa(int(flowTimer/time.Second))))
	}
	return res
}

// UsesOutbound reports whether a REGISTER asks for RFC 5626 outbound.
func UsesOutbound(req *sipmsg.Request) bool {
	c := req.Contact()
	if c == nil || !c.Params.Has("reg-id") || !c.Params.Has("+sip.instance") {
		return false
	}
	for _, h := range req.Headers() {
		if !foldEqual(h.Name(), "Supported") && !foldEqual(h.Name(), "k") {
			continue
		}
		if slices.Contains(OptionTags(h.Value()), "outbound") {
			return true
		}
	}
	return false
}

// ParseDelta parses delta-seconds (RFC 3261 §25.1); values beyond 2^32-1
// are taken as 2^32-1 (RFC 4475 §3.1.2.4 allows clamping).
func ParseDelta(v string) (int, bool) {
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

// RetryAfter is a Retry-After header.
func RetryAfter(seconds int) sipmsg.Header {
	return sipmsg.NewHeader("Retry-After", strconv.Itoa(seconds))
}
