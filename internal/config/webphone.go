package config

import (
	"fmt"
	"time"
)

// WebPhone bounds the browser phone the MCS serves on its HTTPS port: the
// tabs it keeps (each a SIP registration and, in a call, a WebRTC
// connection and relay ports), the signalling messages it reads, and how
// long a quiet tab is kept.
type WebPhone struct {
	// Disabled turns the web phone off: "/" and its WebSocket answer 404.
	Disabled bool `toml:"disabled"`
	// MaxTabs is the open tabs one MCS node serves at once.
	MaxTabs int `toml:"max_tabs"`
	// MaxTabsPerNumber is the open tabs of one phone number.
	MaxTabsPerNumber int `toml:"max_tabs_per_number"`
	// MaxMessage is the largest signalling message (bytes) a tab may send;
	// an SDP offer is a few kilobytes.
	MaxMessage int `toml:"max_message"`
	// AuthTimeout is how long a new WebSocket may take to present its
	// token.
	AuthTimeout time.Duration `toml:"auth_timeout"`
	// IdleTimeout ends a tab that sent nothing (the page pings every 20 s)
	// for this long.
	IdleTimeout time.Duration `toml:"idle_timeout"`
}

func (w *WebPhone) applyDefaults() {
	if w.MaxTabs == 0 {
		w.MaxTabs = 500
	}
	if w.MaxTabsPerNumber == 0 {
		w.MaxTabsPerNumber = 4
	}
	if w.MaxMessage == 0 {
		w.MaxMessage = 64 << 10
	}
	if w.AuthTimeout == 0 {
		w.AuthTimeout = 10 * time.Second
	}
	if w.IdleTimeout == 0 {
		w.IdleTimeout = 90 * time.Second
	}
}

func (w *WebPhone) validate() Errors {
	var errs Errors
	add := func(key, format string, args ...any) {
		errs = append(errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if w.MaxTabs < 1 || w.MaxTabs > 100000 {
		add("webphone.max_tabs", "%d: must be 1 to 100000", w.MaxTabs)
	}
	if w.MaxTabsPerNumber < 1 || w.MaxTabsPerNumber > 64 {
		add("webphone.max_tabs_per_number", "%d: must be 1 to 64", w.MaxTabsPerNumber)
	}
	if w.MaxMessage < 4096 || w.MaxMessage > 1<<20 {
		add("webphone.max_message", "%d: must be 4096 to 1048576 bytes", w.MaxMessage)
	}
	if w.AuthTimeout < time.Second || w.AuthTimeout > time.Minute {
		add("webphone.auth_timeout", "%s: must be 1s to 1m", w.AuthTimeout)
	}
	if w.IdleTimeout < 30*time.Second || w.IdleTimeout > time.Hour {
		add("webphone.idle_timeout", "%s: must be 30s to 1h", w.IdleTimeout)
	}
	return errs
}

// DefaultWebPhone is the [webphone] section with every default filled in.
func DefaultWebPhone() WebPhone {
	var w WebPhone
	w.applyDefaults()
	return w
}
