package sipcore

import (
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
	for _, h := range req.GetHeaders(header) {
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
