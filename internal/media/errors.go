package media

import "errors"

// Sentinel errors callers branch on.
var (
	// ErrNoFrames means a media file holds nothing that can be sent.
	ErrNoFrames = errors.New("media: no frames")
	// ErrUnsupportedFormat means a file or payload is not in a format this
	// package handles (e.g. a WAV that is not 8 kHz mono μ-law).
	ErrUnsupportedFormat = errors.New("media: unsupported format")
	// ErrNoCommonCodec means an SDP offer or answer shares no codec with us.
	ErrNoCommonCodec = errors.New("media: no common codec")
	// ErrBadSDP means an SDP body could not be parsed or is inconsistent.
	ErrBadSDP = errors.New("media: bad sdp")
	// ErrBadConfig means a StreamConfig is incomplete or inconsistent.
	ErrBadConfig = errors.New("media: bad stream config")
	// ErrClosed is returned by a Sink written after Close.
	ErrClosed = errors.New("media: closed")
)
