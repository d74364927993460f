package config

import "time"

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
	orDefault(&w.MaxTabs, 500)
	orDefault(&w.MaxTabsPerNumber, 4)
	orDefault(&w.MaxMessage, 64<<10)
	orDefault(&w.AuthTimeout, 10*time.Second)
	orDefault(&w.IdleTimeout, 90*time.Second)
}

func (w *WebPhone) validate() Errors {
	var c checks
	c.within("webphone.max_tabs", w.MaxTabs, 1, 100000)
	c.within("webphone.max_tabs_per_number", w.MaxTabsPerNumber, 1, 64)
	c.within("webphone.max_message", w.MaxMessage, 4096, 1<<20)
	c.durWithin("webphone.auth_timeout", w.AuthTimeout, time.Second, time.Minute)
	c.durWithin("webphone.idle_timeout", w.IdleTimeout, 30*time.Second, time.Hour)
	return c.errs
}

// DefaultWebPhone is the [webphone] section with every default filled in.
func DefaultWebPhone() WebPhone {
	var w WebPhone
	w.applyDefaults()
	return w
}
