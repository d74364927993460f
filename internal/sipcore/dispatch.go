package sipcore

import (
	"slices"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/store"
)

// Handler names what deals with a request that passed the checks.
type Handler int

const (
	Refuse        Handler = iota // answer the Refusal
	Ignore                       // an ACK outside any dialog: nothing to do
	InDialogAck                  // an ACK inside a dialog
	Registrar                    // REGISTER
	InDialog                     // a request inside a dialog (To tag)
	Options                      // OPTIONS to the server itself
	Invite                       // an initial INVITE to a number
	ForwardSimple                // OPTIONS or MESSAGE to a number
)

// Local says which names and Vias are this server's own.
type Local struct {
	// OurHost reports whether a URI host names this node, its domain or
	// its addresses.
	OurHost func(host string) bool
	// OwnVia reports whether a Via is this node's: the request looped.
	OwnVia func(v *sipmsg.ViaHeader) bool
}

// Allowed are the methods the server handles, for Allow.
var Allowed = []sipmsg.RequestMethod{
	sipmsg.INVITE, sipmsg.ACK, sipmsg.CANCEL, sipmsg.BYE, sipmsg.REGISTER, sipmsg.OPTIONS,
	sipmsg.INFO, sipmsg.UPDATE, sipmsg.PRACK, sipmsg.MESSAGE, sipmsg.NOTIFY, sipmsg.REFER,
}

// dialogOnly are methods that exist only inside a dialog.
var dialogOnly = []sipmsg.RequestMethod{sipmsg.BYE, sipmsg.INFO, sipmsg.UPDATE, sipmsg.PRACK, sipmsg.NOTIFY, sipmsg.REFER}

// known are methods not served outside a dialog: 405 rather than 501.
var known = []sipmsg.RequestMethod{sipmsg.SUBSCRIBE, sipmsg.PUBLISH}

// AllowHeader lists Allowed.
func AllowHeader() sipmsg.Header {
	s := make([]string, len(Allowed))
	for i, m := range Allowed {
		s[i] = string(m)
	}
	return sipmsg.NewHeader("Allow", strings.Join(s, ", "))
}

// Route validates a request (RFC 3261 §16.3) and says what handles it, or
// the refusal to answer when Handler is Refuse.
func Route(req *sipmsg.Request, local Local) (Handler, Refusal) {
	tag := ToTag(req)
	if req.IsAck() {
		if tag != "" {
			return InDialogAck, Refusal{}
		}
		return Ignore, Refusal{}
	}
	if req.IsCancel() {
		// A CANCEL that matches a transaction is answered before this.
		return Refuse, refuse(481, "Call/Transaction Does Not Exist")
	}
	if r := UnsupportedRequire(req, "Proxy-Require"); r.Code != 0 {
		return Refuse, r
	}
	if !SupportedScheme(req.Recipient.Scheme) {
		return Refuse, refuse(416, "Unsupported URI Scheme")
	}
	for h := range Named(req.Headers(), "Via") {
		if v, ok := h.(*sipmsg.ViaHeader); ok && local.OwnVia(v) {
			return Refuse, refuse(482, "Loop Detected")
		}
	}
	toSelf := IsSelf(req.Recipient, local)
	terminates := req.Method == sipmsg.REGISTER || req.Method == sipmsg.OPTIONS && toSelf && tag == ""
	if mf := req.MaxForwards(); !terminates && mf != nil && mf.Val() == 0 {
		return Refuse, refuse(483, "Too Many Hops")
	}
	switch {
	case req.Method == sipmsg.REGISTER:
		return Registrar, Refusal{}
	case tag != "":
		return InDialog, Refusal{}
	case req.Method == sipmsg.OPTIONS && toSelf:
		return Options, Refusal{}
	case !slices.Contains(Allowed, req.Method) && !slices.Contains(known, req.Method):
		return Refuse, refuse(501, "Not Implemented", AllowHeader())
	case !local.OurHost(req.Recipient.Host):
		return Refuse, refuse(403, "Forbidden (Relaying Denied)")
	case req.Method == sipmsg.INVITE:
		return Invite, Refusal{}
	case req.Method == sipmsg.OPTIONS || req.Method == sipmsg.MESSAGE:
		return ForwardSimple, Refusal{}
	case slices.Contains(dialogOnly, req.Method):
		return Refuse, refuse(481, "Call/Transaction Does Not Exist")
	}
	return Refuse, refuse(405, "Method Not Allowed", AllowHeader())
}

// IsSelf reports whether a Request-URI addresses the server itself rather
// than a user: no user part (or one that is not a number) at our host.
func IsSelf(u sipmsg.Uri, local Local) bool {
	if !local.OurHost(u.Host) {
		return false
	}
	_, isNumber := TargetNumber(u.User)
	return u.User == "" || !isNumber
}

// TargetNumber extracts a 10-digit number from a Request-URI user part:
// "5551230002", "+15551230002", "1-555-123-0002".
//
// An interpreter station's address ("ca-1001", store.StationPattern) is a
// target too: stations register and are reached like numbers.
func TargetNumber(user string) (string, bool) {
	user, _, _ = strings.Cut(user, ";") // user parameters (RFC 3261 §19.1.1)
	if store.StationPattern.MatchString(user) {
		return user, true
	}
	var digits []byte
	for _, c := range []byte(user) {
		switch {
		case c >= '0' && c <= '9':
			digits = append(digits, c)
		case c == '+' || c == '-' || c == '.' || c == '(' || c == ')' || c == ' ':
		default:
			return "", false
		}
	}
	if len(digits) == 11 && digits[0] == '1' {
		digits = digits[1:]
	}
	n := string(digits)
	return n, store.NumberPattern.MatchString(n)
}

// ToTag is the To header's tag ("" outside a dialog).
func ToTag(m interface{ To() *sipmsg.ToHeader }) string {
	to := m.To()
	if to == nil {
		return ""
	}
	t, _ := to.Params.Get("tag")
	return t
}
