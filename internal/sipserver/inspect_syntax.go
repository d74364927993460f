package sipserver

import (
	"bytes"
	"strconv"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"
)

// validDisplayName checks the unquoted display-name of a name-addr:
// display-name = *(token LWS) / quoted-string (RFC 3261 §25.1).
func validDisplayName(v []byte) bool {
	if len(v) > 0 && v[0] == '"' {
		return true // quoted: the parser checked the quotes
	}
	i := bytes.IndexByte(v, '<')
	if i < 0 {
		return true // addr-spec form
	}
	for _, c := range v[:i] {
		if !isTokenChar(c) && c != ' ' && c != '\t' {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("-.!%*_+`'~", c) >= 0
}

func isToken[T ~string | ~[]byte](s T) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// isScheme checks scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
func isScheme(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func validNumberHeader(h rawHeader) bool {
	v := h.value
	if h.name == "cseq" {
		v, _, _ = strings.Cut(v, " ")
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	return err == nil && (h.name != "cseq" || n <= 1<<31-1)
}

// canonicalName writes a lower-case header name the way RFC 3261 does.
func canonicalName(n string) string {
	switch n {
	case "call-id":
		return "Call-ID"
	case "cseq":
		return "CSeq"
	case "www-authenticate":
		return "WWW-Authenticate"
	}
	parts := strings.Split(n, "-")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "-")
}

// cleanValue reports whether a header value can be echoed in a response:
// no control characters besides HT.
func cleanValue(v string) bool {
	for _, c := range []byte(v) {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// saneAddress returns a From/To value fit to echo: as sent when it parses,
// else reduced to its <URI> and tag, else nothing. An error response must
// itself be parseable.
func saneAddress(name, v string) string {
	hp := sipmsg.HeadersParser(sipmsg.DefaultHeadersParser())
	if _, err := hp.ParseHeader(nil, []byte(name+": "+v)); err == nil {
		return v
	}
	i := strings.IndexByte(v, '<')
	j := strings.IndexByte(v, '>')
	if i < 0 || j < i {
		return ""
	}
	out := v[i : j+1]
	if k := strings.Index(strings.ToLower(v[j:]), ";tag="); k >= 0 {
		tag := v[j+k+5:]
		if e := strings.IndexAny(tag, "; \t"); e >= 0 {
			tag = tag[:e]
		}
		if isToken(tag) {
			out += ";tag=" + tag
		}
	}
	if _, err := hp.ParseHeader(nil, []byte(name+": "+out)); err != nil {
		return ""
	}
	return out
}

func first(have, v string) string {
	if have != "" {
		return have
	}
	return v
}

// hasTag reports whether a raw To/From value carries a tag parameter
// outside its <URI>.
func hasTag(v string) bool {
	if i := strings.LastIndexByte(v, '>'); i >= 0 {
		v = v[i:]
	}
	return strings.Contains(strings.ToLower(v), ";tag=")
}
