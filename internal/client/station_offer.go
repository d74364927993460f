package client

import (
	"errors"
	"fmt"
	"strings"
)

// The directions of a relay call (X-Z5-Direction).
const (
	DirectionOutbound  = "outbound"  // the deaf user called a hearing number
	DirectionInbound   = "inbound"   // a hearing party called our user's number
	DirectionEmergency = "emergency" // the deaf user called 911
)

// The legs of a relay call as the station sees them: the deaf user's video
// leg and the hearing party's voice leg.
const (
	LegUser    = "user"
	LegHearing = "hearing"
)

// The headers the MCS describes an offered relay call with, and the one
// the station's second leg names the relay call by.
const (
	HeaderRelayCall = "X-Z5-Relay-Call"
	HeaderDirection = "X-Z5-Direction"
	HeaderDialed    = "X-Z5-Dialed"
	HeaderUser      = "X-Z5-User"
	HeaderCaller    = "X-Z5-Caller"
	HeaderLocation  = "X-Z5-Location"
	HeaderCallback  = "X-Z5-Callback"
)

// ErrNotRelayOffer: an INVITE to the station that is not an offered relay
// call (no X-Z5-Relay-Call, or a direction the station does not know).
var ErrNotRelayOffer = errors.New("not a relay call offer")

// RelayOffer is a queued relay call offered to this station.
type RelayOffer struct {
	RelayCall  string `json:"relay_call"` // the first leg's Call-ID
	Direction  string `json:"direction"`
	Caller     string `json:"caller"`                // calling number
	CallerName string `json:"caller_name,omitempty"` // From's display name
	Dialed     string `json:"dialed,omitempty"`      // the number dialled
	User       string `json:"user"`                  // the VRS user's number
	Location   string `json:"location,omitempty"`    // 911: registered location
	Callback   string `json:"callback,omitempty"`    // 911: callback number
}

// ParseRelayOffer reads an offer from the INVITE's headers (header gives a
// header's value, "" when absent) and its From user and display name. The
// caller is X-Z5-Caller, or From's user when the MCS left it out.
func ParseRelayOffer(header func(name string) string, fromUser, fromName string) (RelayOffer, error) {
	o := RelayOffer{
		RelayCall:  header(HeaderRelayCall),
		Direction:  strings.ToLower(header(HeaderDirection)),
		Caller:     header(HeaderCaller),
		CallerName: fromName,
		Dialed:     header(HeaderDialed),
		User:       header(HeaderUser),
		Location:   header(HeaderLocation),
		Callback:   header(HeaderCallback),
	}
	if o.Caller == "" {
		o.Caller = fromUser
	}
	if o.CallerName == o.Caller {
		o.CallerName = ""
	}
	switch {
	case o.RelayCall == "":
		return o, fmt.Errorf("%w: no %s header", ErrNotRelayOffer, HeaderRelayCall)
	case o.Direction != DirectionOutbound && o.Direction != DirectionInbound && o.Direction != DirectionEmergency:
		return o, fmt.Errorf("%w: %s %q", ErrNotRelayOffer, HeaderDirection, o.Direction)
	case o.User == "":
		return o, fmt.Errorf("%w: no %s header", ErrNotRelayOffer, HeaderUser)
	}
	return o, nil
}

// FirstLeg is who the offered call connects the station to: the deaf user
// (outbound, 911) or the hearing party (inbound, from the voice trunk).
func (o RelayOffer) FirstLeg() string {
	if o.Direction == DirectionInbound {
		return LegHearing
	}
	return LegUser
}

// SecondLeg is the call the station places once it answered: the number
// to call and which leg that is. Outbound it calls the dialled number (the
// hearing party, audio only, through the trunk), for 911 the PSAP route,
// inbound the deaf user's number (video). An outbound call through the
// relay access number has no dialled number yet: that is an error.
func (o RelayOffer) SecondLeg() (number, leg string, err error) {
	switch o.Direction {
	case DirectionEmergency:
		return "911", LegHearing, nil
	case DirectionInbound:
		return o.User, LegUser, nil
	default:
		if o.Dialed == "" {
			return "", LegHearing, errors.New("the caller dialled the relay access number: no number to call yet")
		}
		return o.Dialed, LegHearing, nil
	}
}

// SecondLegOutcome words why a second leg failed, from its SIP status:
// what the interpreter reads and tells the deaf user.
func SecondLegOutcome(status int) string {
	switch {
	case status == 486 || status == 600:
		return "busy"
	case status == 408 || status == 480 || status == 487:
		return "no answer"
	case status == 403 || status == 603 || status == 404 || status == 484 || status == 488:
		return "rejected"
	case status == 0 || status >= 500:
		return "network unavailable"
	}
	return "failed"
}
