package relay

import "errors"

var (
	// ErrNoPorts means the port range is exhausted; callers answer 503.
	ErrNoPorts = errors.New("relay: no free ports in range")
	// ErrBadSDP wraps every rejection of a session description; callers
	// answer 488 (or 400) instead of 503.
	ErrBadSDP = errors.New("relay: bad sdp")
	// ErrClosed is returned by a call or relay that has been closed.
	ErrClosed = errors.New("relay: closed")
)
