package config

import (
	"fmt"
	"strings"
	"time"
)

// orDefault fills *p with v when the file left the key out (its zero
// value). A key whose zero is meaningful needs its own test instead.
func orDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// checks collects one section's validation errors; each message starts
// with the value the file gave, so the line it points at says what to
// change.
type checks struct{ errs Errors }

func (c *checks) add(key, format string, args ...any) {
	c.errs = append(c.errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (c *checks) atLeast(key string, v, lo int) {
	if v < lo {
		c.add(key, "%d: must be at least %d", v, lo)
	}
}

func (c *checks) within(key string, v, lo, hi int) {
	if v < lo || v > hi {
		c.add(key, "%d: must be %d to %d", v, lo, hi)
	}
}

// rate is a per-source rate limit, where -1 turns the limit off.
func (c *checks) rate(key string, v int) {
	if v < -1 {
		c.add(key, "%d: must be positive, or -1 for no limit", v)
	}
}

func (c *checks) durAtLeast(key string, d, lo time.Duration) {
	if d < lo {
		c.add(key, "%s: must be at least %s", shortDuration(d), shortDuration(lo))
	}
}

func (c *checks) durWithin(key string, d, lo, hi time.Duration) {
	if d < lo || d > hi {
		c.add(key, "%s: must be %s to %s", shortDuration(d), shortDuration(lo), shortDuration(hi))
	}
}

// networks: addresses or CIDR networks.
func (c *checks) networks(key string, vs []string) {
	for _, v := range vs {
		if _, err := parsePrefixOrAddr(v); err != nil {
			c.add(key, "%s", err)
		}
	}
}

// shortDuration writes a duration as a config file would: "1m", not
// "1m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
