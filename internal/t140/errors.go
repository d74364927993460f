package t140

import "errors"

var (
	// ErrBadPacket is an RTP packet or RED payload that does not parse.
	ErrBadPacket = errors.New("t140: malformed packet")
	// ErrBadConfig is an encoder or decoder set up with impossible values.
	ErrBadConfig = errors.New("t140: bad configuration")
)
