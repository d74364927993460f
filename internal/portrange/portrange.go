// Package portrange is the inclusive UDP/TCP port range written
// "10000-65535": the deployment config's RTP range, the profile's, and the
// ports of an outbound firewall rule. A leaf, so the client reads ranges
// without linking the server's config.
package portrange

import (
	"fmt"
	"strconv"
	"strings"
)

// Range is an inclusive port range; Min == Max is a single port.
type Range struct {
	Min, Max int
}

// Single is the range of one port.
func Single(port int) Range { return Range{Min: port, Max: port} }

// UnmarshalText parses "MIN-MAX" or a single port.
func (r *Range) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	lo, hi, found := strings.Cut(s, "-")
	a, err := strconv.Atoi(strings.TrimSpace(lo))
	if err != nil {
		return fmt.Errorf("port range %q: %w", s, err)
	}
	z := a
	if found {
		if z, err = strconv.Atoi(strings.TrimSpace(hi)); err != nil {
			return fmt.Errorf("port range %q: %w", s, err)
		}
	}
	r.Min, r.Max = a, z
	return nil
}

// MarshalText writes "MIN-MAX".
func (r Range) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

func (r Range) String() string {
	if r.Min == r.Max {
		return strconv.Itoa(r.Min)
	}
	return fmt.Sprintf("%d-%d", r.Min, r.Max)
}

// Size is the number of ports in the range.
func (r Range) Size() int { return r.Max - r.Min + 1 }
