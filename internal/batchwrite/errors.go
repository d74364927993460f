package batchwrite

import "errors"

var (
	// ErrClosed: Put after Close (nothing was queued), or items given up
	// because Close's flush time was up before they were tried.
	ErrClosed = errors.New("writer closed")
	// ErrFull: Put found no room within Config.FullWait.
	ErrFull = errors.New("queue full")
	// ErrLost: Wait's items were not all written; some were given up.
	ErrLost = errors.New("queued items given up")
)
