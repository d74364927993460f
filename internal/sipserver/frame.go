package sipserver

import (
	"bytes"
	"iter"
	"strings"
)

// Framing of SIP messages ahead of sipgo. sipgo's stream parser frames
// messages too, but on a framing or parse error it closes the connection
// without a word (UDP: drops silently), and it has no header-count limit or
// slow-sender deadline. So every message is framed and inspected here first,
// answered with a precise 4xx/5xx when it is bad, and only messages that
// passed reach sipgo.
//
// A message on a stream (RFC 3261 §7.5, §18.3):
//
//	start-line CRLF *( message-header CRLF ) CRLF [ message-body ]
//
// where Content-Length (compact "l") is mandatory and gives the body size.

// sipError is a rejection with the status and reason phrase to answer with.
type sipError struct {
	code   int
	reason string
}

func (e *sipError) Error() string { return e.reason }

var (
	errTooLarge          = &sipError{513, "Message Too Large"}
	errNoContentLength   = &sipError{400, "Missing Content-Length"}
	errBadContentLength  = &sipError{400, "Malformed Content-Length"}
	errConflictingLength = &sipError{400, "Conflicting Content-Length"}
	errTooManyHeaders    = &sipError{400, "Too Many Headers"}
	errLengthExceedsBody = &sipError{400, "Content-Length Exceeds Body"}
	errNoHeaderEnd       = &sipError{400, "Malformed Header Section"}
)

var crlfcrlf = []byte("\r\n\r\n")

// frameStream finds the first complete message in b, which begins at a
// message start (leading CRLFs removed). scanned is how many bytes of b a
// previous call already searched for the end of the header section, so a
// slow sender's bytes are not scanned again and again. It returns the
// message length, or 0 and the new scanned offset when more bytes are
// needed. An error means the stream cannot be framed any further.
func frameStream(b []byte, scanned, maxSize, maxHeaders int) (n, newScanned int, err error) {
	from := max(0, scanned-3)
	i := bytes.Index(b[from:], crlfcrlf)
	if i < 0 {
		if len(b) > maxSize {
			return 0, 0, errTooLarge
		}
		return 0, len(b), nil
	}
	hdrEnd := from + i + len(crlfcrlf)
	if hdrEnd > maxSize {
		return 0, 0, errTooLarge
	}
	cl, err := scanHeaders(b[:hdrEnd], maxHeaders)
	if err != nil {
		return 0, 0, err
	}
	if cl < 0 {
		return 0, 0, errNoContentLength
	}
	if hdrEnd+cl > maxSize {
		return 0, 0, errTooLarge
	}
	if len(b) < hdrEnd+cl {
		// The header section is complete; keep scanned just before its
		// end so the next call finds it again at once.
		return 0, from + i, nil
	}
	return hdrEnd + cl, 0, nil
}

// frameDatagram checks a UDP datagram's header section and Content-Length
// (RFC 3261 §18.3: a longer body is truncated, a shorter one is an error).
// It returns the header section length.
func frameDatagram(b []byte, maxHeaders int) (hdrEnd int, err error) {
	i := bytes.Index(b, crlfcrlf)
	if i < 0 {
		return 0, errNoHeaderEnd
	}
	hdrEnd = i + len(crlfcrlf)
	cl, err := scanHeaders(b[:hdrEnd], maxHeaders)
	if err != nil {
		return 0, err
	}
	if cl > len(b)-hdrEnd {
		return 0, errLengthExceedsBody
	}
	return hdrEnd, nil
}

// scanHeaders counts the header fields of a header section (start line and
// final CRLF included) and returns the Content-Length value, -1 when absent.
func scanHeaders(hdr []byte, maxHeaders int) (contentLength int, err error) {
	contentLength = -1
	count := 0
	var lengthSeen []byte
	for name, v := range fields(hdr) {
		count++
		if count > maxHeaders {
			return 0, errTooManyHeaders
		}
		if !isHeader(name, "content-length", 'l') {
			continue
		}
		if len(v) == 0 || len(v) > 9 || len(bytes.Trim(v, "0123456789")) != 0 {
			return 0, errBadContentLength
		}
		if lengthSeen != nil && !bytes.Equal(bytes.TrimLeft(lengthSeen, "0"), bytes.TrimLeft(v, "0")) {
			return 0, errConflictingLength
		}
		lengthSeen = v
		contentLength = atoiDigits(v)
	}
	return contentLength, nil
}

// folded reports whether a header section has a continuation line.
// One pass over the line ends, where a search for each of the two
// continuations was two.
func folded(hdr []byte) bool {
	for {
		i := bytes.Index(hdr, []byte("\r\n"))
		if i < 0 || i+2 >= len(hdr) {
			return false
		}
		if c := hdr[i+2]; c == ' ' || c == '\t' {
			return true
		}
		hdr = hdr[i+2:]
	}
}

// fields ranges over the header fields of a header section (start line
// first), each name and value trimmed; lines without a colon are skipped
// (the parser reports them). A section without continuation lines, nearly
// every one, is read in place; one with them goes through splitHeaders,
// which joins them (a copy), and its names come lower-cased and expanded.
// Every message is framed and inspected through it.
func fields(hdr []byte) iter.Seq2[[]byte, []byte] {
	return func(yield func(name, value []byte) bool) {
		if folded(hdr) {
			for _, h := range splitHeaders(hdr) {
				if !yield([]byte(h.name), []byte(h.value)) {
					return
				}
			}
			return
		}
		i := bytes.Index(hdr, []byte("\r\n"))
		if i < 0 {
			return
		}
		rest := hdr[i+2:]
		for len(rest) > 0 {
			var line []byte
			line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
			if len(line) == 0 {
				return // end of the header section
			}
			name, value, ok := bytes.Cut(line, []byte(":"))
			if ok && !yield(bytes.TrimSpace(name), bytes.TrimSpace(value)) {
				return
			}
		}
	}
}

// isHeader reports whether n, a header name as written (trimmed), names
// the header long (lower case), or is its compact form short (0: none):
// headerName(n) == long, without its lookup.
func isHeader(n []byte, long string, short byte) bool {
	if len(n) == 1 {
		return short != 0 && n[0]|0x20 == short
	}
	if len(n) != len(long) {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != long[i] {
			return false
		}
	}
	return true
}

func atoiDigits[T ~string | ~[]byte](s T) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// rawHeader is one header field as it appears on the wire, with folded
// lines joined, its name lower-cased and expanded from the compact form.
type rawHeader struct {
	name  string
	value string
}

// compactNames are RFC 3261 §7.3.3 and later compact header names.
var compactNames = map[string]string{
	"a": "accept-contact", "b": "referred-by", "c": "content-type",
	"d": "request-disposition", "e": "content-encoding", "f": "from",
	"i": "call-id", "j": "reject-contact", "k": "supported",
	"l": "content-length", "m": "contact", "o": "event", "r": "refer-to",
	"s": "subject", "t": "to", "u": "allow-events", "v": "via",
	"x": "session-expires", "y": "identity",
}

// knownNames maps the lower-case names of common headers, compact forms
// included, to the name headerName returns, so that those need no copy.
var knownNames = func() map[string]string {
	m := map[string]string{}
	for short, long := range compactNames {
		m[short], m[long] = long, long
	}
	for _, n := range []string{"call-id", "cseq", "max-forwards", "expires", "user-agent", "server",
		"authorization", "proxy-authorization", "www-authenticate", "proxy-authenticate",
		"route", "record-route", "require", "proxy-require", "allow", "accept", "date",
		"min-expires", "retry-after", "p-asserted-identity", "organization", "path", "unsupported"} {
		m[n] = n
	}
	return m
}()

// headerName is a header name (trimmed) lower-cased and expanded from its
// compact form: strings.ToLower, then compactNames.
func headerName[T ~string | ~[]byte](n T) string {
	var buf [24]byte
	if len(n) <= len(buf) {
		ascii := true
		for i := 0; i < len(n); i++ {
			c := n[i]
			if c >= 0x80 {
				ascii = false
				break
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			buf[i] = c
		}
		if ascii {
			if long, ok := knownNames[string(buf[:len(n)])]; ok {
				return long
			}
		}
	}
	name := strings.ToLower(string(n))
	if long, ok := compactNames[name]; ok {
		name = long
	}
	return name
}

// startLine returns the first line of a message.
func startLine(b []byte) string {
	if i := bytes.Index(b, []byte("\r\n")); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}

// splitHeaders splits a header section (start line first) into header
// fields. Lines without a colon are skipped: the parser reports them.
func splitHeaders(hdr []byte) []rawHeader {
	i := bytes.Index(hdr, []byte("\r\n"))
	if i < 0 {
		return nil
	}
	// One copy of the section; the values are slices of it.
	rest := string(hdr[i+2:])
	out := make([]rawHeader, 0, strings.Count(rest, "\r\n"))
	for len(rest) > 0 {
		var line string
		line, rest, _ = strings.Cut(rest, "\r\n")
		if len(line) == 0 {
			break // end of the header section
		}
		if (line[0] == ' ' || line[0] == '\t') && len(out) > 0 {
			// Folded continuation (RFC 3261 §7.3.1): one SP replaces it.
			last := &out[len(out)-1]
			last.value = strings.TrimSpace(last.value + " " + strings.TrimSpace(line))
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		out = append(out, rawHeader{name: headerName(strings.TrimSpace(name)), value: strings.TrimSpace(value)})
	}
	return out
}
