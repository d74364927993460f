package relay

import (
	"errors"
	"fmt"
)

var (
	// ErrNoPorts means the port range is exhausted; callers answer 503.
	ErrNoPorts = errors.New("relay: no free ports in range")
	// ErrQuota means the customer or source the ports would be charged to
	// holds its share of the range already; callers answer 503 with a
	// Retry-After (the ports come back when its calls end), not 403 or
	// 486: nothing is wrong with the request or the callee.
	ErrQuota = errors.New("relay: port quota of the customer or source reached")
	// ErrBadSDP wraps every rejection of a session description; callers
	// answer 488 (or 400) instead of 503.
	ErrBadSDP = errors.New("relay: bad sdp")
	// ErrSRTPRequired refuses a description with a stream the relay
	// would carry unencrypted while Config.RequireSRTP is set. It wraps
	// ErrBadSDP; callers answer 488 Not Acceptable Here (Encryption
	// Required).
	ErrSRTPRequired = fmt.Errorf("relay: media without SRTP refused by policy: %w", ErrBadSDP)
	// ErrClosed is returned by a call or relay that has been closed.
	ErrClosed = errors.New("relay: closed")
)
