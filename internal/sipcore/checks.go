package sipcore

import (
	"iter"
	"slices"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"
)

// SupportedOptions are the option tags the server implements.
var SupportedOptions = []string{"outbound"}

// SupportedScheme reports whether a URI scheme is routed.
func SupportedScheme(s string) bool {
	s = strings.ToLower(s)
	return s == "sip" || s == "sips"
}

// Named yields the headers of hs called name, matched as sipgo's
// GetHeaders matches them (ASCII case folded), without building a slice
// of them: every REGISTER has several headers looked up this way.
func Named(hs []sipmsg.Header, name string) iter.Seq[sipmsg.Header] {
	return func(yield func(sipmsg.Header) bool) {
		for _, h := range hs {
			if foldEqual(h.Name(), name) && !yield(h) {
				return
			}
		}
	}
}

// foldEqual reports whether a and b are equal with ASCII letters folded.
// Unlike strings.EqualFold it does not fold non-ASCII letters (the Kelvin
// sign is not a "k").
func foldEqual(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// OptionTags splits a Require, Proxy-Require or Supported value.
func OptionTags(v string) []string {
	var out []string
	for _, t := range strings.Split(v, ",") {
		if t = strings.ToLower(strings.TrimSpace(t)); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// UnsupportedRequire answers 420 when the Require or Proxy-Require header
// (header) lists an option tag not supported (RFC 3261 §8.2.2.3, §16.3).
func UnsupportedRequire(req *sipmsg.Request, header string) Refusal {
	var unsupported []string
	for h := range Named(req.Headers(), header) {
		for _, tag := range OptionTags(h.Value()) {
			if !slices.Contains(SupportedOptions, tag) && !slices.Contains(unsupported, tag) {
				unsupported = append(unsupported, tag)
			}
		}
	}
	if len(unsupported) == 0 {
		return Refusal{}
	}
	return refuse(420, "Bad Extension", sipmsg.NewHeader("Unsupported", strings.Join(unsupported, ", ")))
}
