package sipserver

import (
	"bytes"
	"iter"
	"strconv"
	"strings"

	"github.com/z5vrs/z5/internal/sipcore"
)

// checkRaw rejects what sipgo's parser lets through in a message's header
// section (start line, header fields, final CRLF) but RFC 3261 §25 does
// not allow: a NUL or other control byte (but HT, or one escaped in a
// quoted string), a header name that is not a token (empty, containing a
// space, or non-ASCII such as invalid UTF-8), a header line without a
// colon, a continuation line before the first header, and a Request-URI
// or Via port beyond 65535. Such a message could be read differently by the next
// element than by us, so it is answered 400 rather than repaired.
func checkRaw(hdr []byte) *sipError {
	eol := bytes.Index(hdr, []byte("\r\n"))
	if eol < 0 {
		return nil // the framing reports it
	}
	start := hdr[:eol]
	if hasControl(start) {
		return &sipError{400, "Malformed Request-Line"}
	}
	if !bytes.HasPrefix(start, []byte("SIP/")) && bytes.Count(start, []byte(" ")) == 2 {
		// Method SP Request-URI SP SIP-Version
		_, uri, _ := bytes.Cut(start, []byte(" "))
		uri, _, _ = bytes.Cut(uri, []byte(" "))
		if !validPort(uriPort(string(uri))) {
			return &sipError{400, "Malformed Request-URI"}
		}
	}
	rest := hdr[eol+2:]
	first := true
	var name []byte // as written; headerName(name) only for an error
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		if len(line) == 0 {
			break // end of the header section
		}
		if line[0] == ' ' || line[0] == '\t' {
			if first {
				return &sipError{400, "Malformed Header Section"}
			}
			if badControl(line) {
				return &sipError{400, "Malformed " + canonicalName(headerName(name)) + " Header"}
			}
			continue
		}
		first = false
		n, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return &sipError{400, "Malformed Header Section"}
		}
		// HCOLON allows spaces and tabs between the name and the colon.
		n = bytes.TrimRight(n, " \t")
		if !isToken(n) {
			return &sipError{400, "Malformed Header Name"}
		}
		name = n
		if badControl(value) {
			return &sipError{400, "Malformed " + canonicalName(headerName(name)) + " Header"}
		}
		if isHeader(n, "via", 'v') && !viaPortsValid(value) {
			return &sipError{400, "Malformed Via Header"}
		}
	}
	return nil
}

// hasControl reports a control byte other than HT: NUL, CR or LF out of
// place, DEL.
func hasControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

// badControl reports a control byte in a header value other than HT or
// one escaped in a quoted string (quoted-pair, RFC 3261 §25.1, allows
// every byte but CR and LF after a backslash).
func badControl(v []byte) bool {
	quoted := false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case quoted && c == '\\' && i+1 < len(v) && v[i+1] != '\r' && v[i+1] != '\n':
			i++
		case c == '"':
			quoted = !quoted
		case c < 0x20 && c != '\t' || c == 0x7f:
			return true
		}
	}
	return false
}

// validPort accepts an absent port ("") or 0..65535 in decimal.
func validPort(p string) bool {
	if p == "" {
		return true
	}
	if len(p) > 5 || strings.Trim(p, "0123456789") != "" {
		return false
	}
	n, err := strconv.Atoi(p)
	return err == nil && n <= 65535
}

// uriPort returns the port of a SIP URI's hostport as written, "" when
// there is none (or the URI is not sip/sips: the parser judges it).
func uriPort(uri string) string {
	scheme, rest, ok := strings.Cut(uri, ":")
	if !ok || !sipcore.SupportedScheme(scheme) {
		return ""
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		rest = rest[at+1:]
	}
	if i := strings.IndexAny(rest, ";?"); i >= 0 {
		rest = rest[:i]
	}
	return hostPort(rest)
}

// hostPort returns the port of "host[:port]" ("[v6]:port" for IPv6).
func hostPort(hp string) string {
	if strings.HasPrefix(hp, "[") {
		if i := strings.IndexByte(hp, ']'); i >= 0 {
			hp = hp[i+1:]
			_, p, _ := strings.Cut(hp, ":")
			return p
		}
		return ""
	}
	if strings.Count(hp, ":") != 1 {
		return ""
	}
	_, p, _ := strings.Cut(hp, ":")
	return p
}

// viaPortsValid checks the sent-by port of each Via value in a header
// field: "SIP/2.0/TCP host:port;params".
func viaPortsValid(v []byte) bool {
	for val := range splitQuoted(v, ',') {
		val = bytes.TrimSpace(val)
		// sent-protocol, LWS, sent-by
		i := bytes.IndexAny(val, " \t")
		if i < 0 {
			continue
		}
		sentBy := bytes.TrimSpace(val[i:])
		if j := bytes.IndexByte(sentBy, ';'); j >= 0 {
			sentBy = sentBy[:j]
		}
		if !validPort(strings.TrimSpace(hostPort(string(bytes.TrimSpace(sentBy))))) {
			return false
		}
	}
	return true
}

// splitQuoted yields the parts of s between each sep outside double
// quotes: every REGISTER's Via is checked, and a slice of its parts was
// an allocation each time.
func splitQuoted(s []byte, sep byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		quoted, from := false, 0
		for i := 0; i < len(s); i++ {
			switch {
			case s[i] == '"':
				quoted = !quoted
			case s[i] == sep && !quoted:
				if !yield(s[from:i]) {
					return
				}
				from = i + 1
			}
		}
		yield(s[from:])
	}
}
