package sipcore

import (
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/store"
)

// Relay calls: where an initial INVITE goes once its sender is known.
// A call between two of our numbers is point to point; a call from one of
// our numbers to any other NANP number, to 911 or to the relay access
// number is queued for an interpreter; a call from the voice trunk to one
// of our numbers is queued too ("inbound"); an interpreter station's call
// carrying X-Z5-Relay-Call is the second leg of the relay call it serves.

// Header fields between the MCS and interpreter stations.
const (
	HdrRelayCall     = "X-Z5-Relay-Call" // the first leg's Call-ID
	HdrDirection     = "X-Z5-Direction"
	HdrDialed        = "X-Z5-Dialed"
	HdrUser          = "X-Z5-User"
	HdrCaller        = "X-Z5-Caller"
	HdrLocation      = "X-Z5-Location" // 911 only
	HdrCallback      = "X-Z5-Callback" // 911 only
	HdrQueuePosition = "X-Z5-Queue-Position"
	// HdrRequeue is the token in the BYE to a caller whose interpreter
	// vanished mid-call; the caller's next INVITE carries it back to be
	// queued at the front.
	HdrRequeue = "X-Z5-Requeue"
)

// RelayHeaders are the header fields only the MCS sets: removed from what
// a client sends before the MCS adds its own (X-Z5-Relay-Call on a
// station's second leg is read first).
var RelayHeaders = []string{HdrRelayCall, HdrDirection, HdrDialed, HdrUser, HdrCaller, HdrLocation, HdrCallback, HdrQueuePosition, HdrRequeue}

// Ends of a relay call that never reached an interpreter.
const (
	EndAbandoned       = "abandoned"        // the caller hung up in the queue
	EndQueueTimeout    = "queue-timeout"    // no interpreter answered within acd.max_wait
	EndInterpreterLost = "interpreter-lost" // the interpreter's connection closed mid-call
)

// Emergency is the number dialled for 911.
const Emergency = "911"

// CallKind is how an initial INVITE is routed.
type CallKind int

const (
	KindRefuse         CallKind = iota // answer the Refusal
	KindPointToPoint                   // to one of our numbers, as before relay calls
	KindQueueOutbound                  // to a hearing party, through an interpreter
	KindQueueEmergency                 // 911, through an interpreter, first in the queue
	KindTrunkInbound                   // from the voice trunk to one of our numbers
	KindSecondLeg                      // a station's leg of the relay call it serves
)

// InviteFacts are what the proxy knows about an INVITE besides its text.
type InviteFacts struct {
	// FromTrunk: the request came from a source in trunk.allow over a
	// connection no device registered on, without credentials.
	FromTrunk bool
	// CallerStation: the identified caller is an interpreter station.
	CallerStation bool
	// Ours reports whether a number is one of ours (a store row).
	Ours func(number string) bool
	// RelayAccess is the relay access number ("" when none).
	RelayAccess string
}

// Classified is ClassifyInvite's answer.
type Classified struct {
	Kind    CallKind
	Target  string // the number (or station) the Request-URI names; "911"
	Dialed  string // the number dialled for the hearing party ("" for the relay access number)
	Relay   string // KindSecondLeg: the relay call's first-leg Call-ID
	Refusal Refusal
}

// ClassifyInvite routes an initial INVITE whose sender is known (a device
// of ours, or the trunk).
func ClassifyInvite(req *sipmsg.Request, f InviteFacts) Classified {
	user, _, _ := strings.Cut(req.Recipient.User, ";")
	relayCall := ""
	if h := req.GetHeader(HdrRelayCall); h != nil {
		relayCall = strings.TrimSpace(h.Value())
	}
	target, isNumber := TargetNumber(user)
	if user == Emergency {
		target, isNumber = Emergency, true
	}
	refuse := func(code int, reason string, hs ...sipmsg.Header) Classified {
		return Classified{Kind: KindRefuse, Target: target, Refusal: Refusal{Code: code, Reason: reason, Headers: hs}}
	}
	station := isNumber && store.StationPattern.MatchString(target)
	if f.FromTrunk {
		// The carrier reaches our users only; never a station, never out
		// again through the trunk (no toll fraud through us).
		if !isNumber || station || target == Emergency || !f.Ours(target) {
			return refuse(404, "Not Found")
		}
		return Classified{Kind: KindTrunkInbound, Target: target}
	}
	if relayCall != "" {
		if !f.CallerStation {
			return refuse(403, "Forbidden (Not An Interpreter Station)")
		}
		if !isNumber || station {
			return refuse(404, "Not Found")
		}
		return Classified{Kind: KindSecondLeg, Target: target, Relay: relayCall}
	}
	switch {
	case !isNumber:
		return refuse(404, "Not Found")
	case station:
		// Stations take queued calls only: a direct call would skip the
		// queue and the relay call record.
		return refuse(403, "Forbidden (Interpreter Stations Take Queued Calls Only)")
	case f.CallerStation:
		// A station calls out only as the second leg of its relay call.
		return refuse(403, "Forbidden (Relay Call Header Required)")
	case target == Emergency:
		return Classified{Kind: KindQueueEmergency, Target: target, Dialed: Emergency}
	case f.RelayAccess != "" && target == f.RelayAccess:
		return Classified{Kind: KindQueueOutbound, Target: target}
	case f.Ours(target):
		return Classified{Kind: KindPointToPoint, Target: target}
	case !Dialable(target):
		return refuse(404, "Not Found")
	}
	return Classified{Kind: KindQueueOutbound, Target: target, Dialed: target}
}

// Dialable reports whether a 10-digit number can exist in the North
// American Numbering Plan: its area code is no N11 service code and no
// N9X code (held back for expanding the plan), its exchange no N11. A
// number that cannot exist is refused (404) rather than queued for an
// interpreter who could never reach it.
func Dialable(n string) bool {
	if len(n) != 10 || !store.NumberPattern.MatchString(n) {
		return false
	}
	n11 := func(c string) bool { return c[1] == '1' && c[2] == '1' }
	return !n11(n[0:3]) && n[1] != '9' && !n11(n[3:6])
}

// TrunkPretender reports whether an INVITE without credentials, from a
// source outside trunk.allow and over no registered flow, claims to be the
// carrier: its From names the trunk's host, or a calling number that is
// not ours (no device of ours could answer a digest challenge for it, and
// the carrier is the only other party that sends such calls). It is
// refused (403) rather than challenged.
func TrunkPretender(req *sipmsg.Request, trunkHost string, ours func(string) bool) bool {
	if req.GetHeader("Proxy-Authorization") != nil || req.GetHeader("Authorization") != nil {
		return false
	}
	from := req.From()
	if from == nil {
		return false
	}
	if trunkHost != "" && strings.EqualFold(strings.Trim(from.Address.Host, "[]"), trunkHost) {
		return true
	}
	n, isNumber := TargetNumber(from.Address.User)
	if !isNumber {
		// A SIP user name, not a number: a device's digest user; let the
		// challenge decide.
		return false
	}
	return !ours(n)
}

// AudioOnly turns an SDP offer for the voice trunk into an audio-only one:
// every other media line is kept but refused (port 0, RFC 3264 §8.2), so
// the answer still lines up with the offerer's media lines and the relay
// allocates no ports for them.
func AudioOnly(sdp []byte) []byte {
	lines := strings.SplitAfter(string(sdp), "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "m=") || strings.HasPrefix(l, "m=audio ") {
			continue
		}
		f := strings.SplitN(l, " ", 3)
		if len(f) == 3 {
			lines[i] = f[0] + " 0 " + f[2]
		}
	}
	return []byte(strings.Join(lines, ""))
}
