package firewall

import "errors"

// ErrUnknownFormat is returned by Render for a format not in Formats; the
// message lists the valid ones.
var ErrUnknownFormat = errors.New("unknown firewall rule format")
