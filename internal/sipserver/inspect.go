package sipserver

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/sipcore"
)

// branchPrefix starts the Via branch of every request this server sends, so
// a response can be recognised as ours before sipgo matches it.
const branchPrefix = sipmsg.RFC3261BranchMagicCookie + "Z5"

// inspector decides what happens to one framed message before sipgo sees
// it: deliver (possibly rewritten), answer with an error, or drop.
type inspector struct {
	parser     *sipmsg.Parser
	maxHeaders int
}

// verdict is the outcome of inspecting one message.
type verdict struct {
	deliver []byte // bytes to hand to sipgo; nil: nothing
	reply   []byte // response to send back to the sender; nil: none
	reason  string // why the message was not delivered as is
}

// inspectFrame inspects a complete message framed from a stream.
func (in *inspector) inspectFrame(b []byte) verdict {
	hdrEnd := bytes.Index(b, crlfcrlf) + len(crlfcrlf)
	return in.inspectMessage(b, hdrEnd, false)
}

// inspectDatagram inspects one UDP datagram.
func (in *inspector) inspectDatagram(b []byte) verdict {
	hdrEnd, err := frameDatagram(b, in.maxHeaders)
	if err != nil {
		return reject(b, err.(*sipError))
	}
	return in.inspectMessage(b, hdrEnd, true)
}

// reject answers a message that cannot be processed, if enough of it can be
// read to address a response (RFC 3261 §8.2.6), else drops it.
func reject(b []byte, e *sipError) verdict {
	hdr := b
	if i := bytes.Index(b, crlfcrlf); i >= 0 {
		hdr = b[:i+2]
	}
	return verdict{reply: salvageResponse(startLine(hdr), splitHeaders(hdr), e.code, e.reason), reason: e.reason}
}

func (in *inspector) inspectMessage(b []byte, hdrEnd int, udp bool) verdict {
	if e := checkRaw(b[:hdrEnd]); e != nil {
		return reject(b, e)
	}
	msg, err := in.parser.ParseSIP(b)
	if err != nil {
		return reject(b, classifyParseError(b[:hdrEnd]))
	}
	switch m := msg.(type) {
	case *sipmsg.Response:
		// Only responses to requests we sent can match a transaction;
		// anything else is a stray (RFC 3261 §18.1.2) and never answered.
		if via := m.Via(); via == nil || !ownBranch(via) {
			return verdict{reason: "stray response"}
		}
		return verdict{deliver: b}
	case *sipmsg.Request:
		if e := checkRequest(m, splitHeaders(b[:hdrEnd])); e != nil {
			return reject(b, e)
		}
		var params string
		if udp && !m.Via().Params.Has("rport") {
			// Answer to the packet's source port whatever the Via says
			// (RFC 3581 behaviour for everyone): a forged Via must not
			// aim our responses elsewhere, and sipgo would otherwise open
			// a new socket per Via address.
			params += ";rport"
		}
		branch := rfc2543Branch(m)
		if branch != "" {
			params += ";branch=" + branch
		}
		if params == "" {
			return verdict{deliver: b}
		}
		if out, ok := in.rewriteTopVia(b, hdrEnd, params, branch); ok {
			return verdict{deliver: out, reason: "rewritten"}
		}
		return reject(b, &sipError{400, "Malformed Via Header"})
	}
	return verdict{reason: "not a SIP message"}
}

// ownBranch reports whether a Via carries a branch this server generated.
func ownBranch(via *sipmsg.ViaHeader) bool {
	b, _ := via.Params.Get("branch")
	return strings.HasPrefix(b, branchPrefix)
}

// singleHeaders may appear at most once (RFC 3261 §7.3, §20).
var singleHeaders = []string{"call-id", "cseq", "from", "to", "max-forwards", "content-type", "expires"}

// checkRequest validates what sipgo's parser accepts but a request must
// still satisfy (RFC 3261 §8.2, §16.3).
func checkRequest(req *sipmsg.Request, hs []rawHeader) *sipError {
	if req.SipVersion != "SIP/2.0" {
		return &sipError{505, "Version Not Supported"}
	}
	counts := map[string]int{}
	for _, h := range hs {
		counts[h.name]++
	}
	for _, name := range singleHeaders {
		if counts[name] > 1 {
			return &sipError{400, "Duplicate " + canonicalName(name) + " Header"}
		}
	}
	switch {
	case req.Via() == nil:
		return &sipError{400, "Missing Via Header"}
	case req.From() == nil:
		return &sipError{400, "Missing From Header"}
	case req.To() == nil:
		return &sipError{400, "Missing To Header"}
	case req.CallID() == nil:
		return &sipError{400, "Missing Call-ID Header"}
	case req.CSeq() == nil:
		return &sipError{400, "Missing CSeq Header"}
	}
	// sipgo upper-cases the request-line method but not CSeq's, so the two
	// are compared without case.
	if !strings.EqualFold(string(req.CSeq().MethodName), string(req.Method)) {
		return &sipError{400, "CSeq Method Does Not Match"}
	}
	if req.CSeq().SeqNo > 1<<31-1 {
		return &sipError{400, "CSeq Out Of Range"}
	}
	for _, h := range hs {
		if (h.name == "from" || h.name == "to") && !validDisplayName(h.value) {
			return &sipError{400, "Malformed " + canonicalName(h.name) + " Header"}
		}
	}
	return nil
}

// validDisplayName checks the unquoted display-name of a name-addr:
// display-name = *(token LWS) / quoted-string (RFC 3261 §25.1).
func validDisplayName(v string) bool {
	if strings.HasPrefix(v, `"`) {
		return true // quoted: the parser checked the quotes
	}
	i := strings.IndexByte(v, '<')
	if i < 0 {
		return true // addr-spec form
	}
	for _, c := range []byte(v[:i]) {
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

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !isTokenChar(c) {
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

// classifyParseError turns a parse failure into the most precise answer:
// 505 for another SIP version, 416 for a well-formed but unsupported
// Request-URI scheme, else 400 naming the part that is malformed.
func classifyParseError(hdr []byte) *sipError {
	start := startLine(hdr)
	if strings.HasPrefix(start, "SIP/") {
		return &sipError{400, "Malformed Response"} // never answered
	}
	parts := strings.Split(start, " ")
	if len(parts) != 3 || !isToken(parts[0]) {
		return &sipError{400, "Malformed Request-Line"}
	}
	if v := parts[2]; v != "SIP/2.0" {
		if strings.HasPrefix(v, "SIP/") {
			return &sipError{505, "Version Not Supported"}
		}
		return &sipError{400, "Malformed Request-Line"}
	}
	scheme, _, ok := strings.Cut(parts[1], ":")
	if !ok || !isScheme(scheme) {
		return &sipError{400, "Malformed Request-URI"}
	}
	if !sipcore.SupportedScheme(scheme) {
		return &sipError{416, "Unsupported URI Scheme"}
	}
	var u sipmsg.Uri
	if err := sipmsg.ParseUri(parts[1], &u); err != nil {
		return &sipError{400, "Malformed Request-URI"}
	}
	hp := sipmsg.HeadersParser(sipmsg.DefaultHeadersParser())
	for _, h := range splitHeaders(hdr) {
		if _, err := hp.ParseHeader(nil, []byte(h.name+": "+h.value)); err != nil {
			return &sipError{400, "Malformed " + canonicalName(h.name) + " Header"}
		}
		if h.name == "cseq" || h.name == "max-forwards" {
			// sipgo's parser reads these lazily; check the ranges here.
			if !validNumberHeader(h) {
				return &sipError{400, "Malformed " + canonicalName(h.name) + " Header"}
			}
		}
	}
	return &sipError{400, "Malformed Message"}
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

// salvageResponse builds a response to a request that could not be parsed
// or accepted, from its raw Via, From, To, Call-ID and CSeq (RFC 3261
// §8.2.6). It returns nil, meaning drop, for responses, ACKs and requests
// too broken to address (no usable Via or CSeq).
func salvageResponse(start string, hs []rawHeader, code int, reason string) []byte {
	if strings.HasPrefix(start, "SIP/") {
		return nil
	}
	method, _, _ := strings.Cut(start, " ")
	if method == "" || strings.EqualFold(method, "ACK") {
		return nil
	}
	var vias []string
	var from, to, callID, cseq string
	for _, h := range hs {
		if !cleanValue(h.value) && (h.name == "via" || h.name == "call-id") {
			// A control byte (a NUL in a Via host or the Call-ID) made
			// the request malformed; the client matches our answer by
			// branch, so the value is echoed without it.
			h.value = strings.Map(func(r rune) rune {
				if r < 0x20 && r != '\t' || r == 0x7f {
					return -1
				}
				return r
			}, h.value)
		}
		if !cleanValue(h.value) || h.value == "" {
			if h.name == "via" || h.name == "cseq" {
				return nil
			}
			continue
		}
		switch h.name {
		case "via":
			vias = append(vias, h.value)
		case "from":
			from = first(from, saneAddress("from", h.value))
		case "to":
			to = first(to, saneAddress("to", h.value))
		case "call-id":
			callID = first(callID, h.value)
		case "cseq":
			cseq = first(cseq, h.value)
		}
	}
	if len(vias) == 0 || cseq == "" {
		return nil
	}
	var b strings.Builder
	b.WriteString("SIP/2.0 ")
	b.WriteString(strconv.Itoa(code))
	b.WriteString(" ")
	b.WriteString(reason)
	b.WriteString("\r\n")
	for _, v := range vias {
		b.WriteString("Via: " + v + "\r\n")
	}
	if from != "" {
		b.WriteString("From: " + from + "\r\n")
	}
	if to != "" {
		if !hasTag(to) {
			to += ";tag=" + randomToken(8)
		}
		b.WriteString("To: " + to + "\r\n")
	}
	if callID != "" {
		b.WriteString("Call-ID: " + callID + "\r\n")
	}
	b.WriteString("CSeq: " + cseq + "\r\n")
	b.WriteString("Content-Length: 0\r\n\r\n")
	out := []byte(b.String())
	// A response the client could not parse helps nobody: when the
	// echoed Via or CSeq is itself malformed, drop instead.
	if _, err := sipmsg.ParseMessage(out); err != nil {
		return nil
	}
	return out
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

// randomToken returns n random bytes in hex.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// rfc2543Branch returns a branch for a request that sipgo cannot key a
// transaction for, one with neither an RFC 3261 branch nor a From tag (an
// RFC 2543 client, RFC 4475 §3.4.1), else "". It is derived from the
// fields RFC 3261 §17.2.3 matches such requests by, so retransmissions,
// the ACK and the CANCEL all land in the same transaction.
func rfc2543Branch(req *sipmsg.Request) string {
	via := req.Via()
	branch, _ := via.Params.Get("branch")
	if strings.HasPrefix(branch, sipmsg.RFC3261BranchMagicCookie) && len(branch) > len(sipmsg.RFC3261BranchMagicCookie) {
		return ""
	}
	if req.From().Params.Has("tag") {
		return "" // sipgo matches RFC 2543 requests by From tag itself
	}
	h := sha256.New()
	for _, s := range []string{
		req.Recipient.String(), req.From().Address.String(), req.To().Address.String(),
		req.CallID().Value(), strconv.FormatUint(uint64(req.CSeq().SeqNo), 10), via.SentBy(),
	} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return sipmsg.RFC3261BranchMagicCookie + "-2543-" + hex.EncodeToString(h.Sum(nil)[:12])
}

// rewriteTopVia appends params to the first value of the top Via header,
// in the bytes as they came (sipgo's re-serialisation of a message is not
// always parseable by sipgo itself). When the branch param was already
// present (malformed), the text edit leaves two and the parsed message is
// re-serialised instead. The result must parse with the wanted Via.
func (in *inspector) rewriteTopVia(b []byte, hdrEnd int, params, branch string) ([]byte, bool) {
	check := func(out []byte) bool {
		msg, err := in.parser.ParseSIP(out)
		if err != nil {
			return false
		}
		req, ok := msg.(*sipmsg.Request)
		if !ok || req.Via() == nil {
			return false
		}
		got, _ := req.Via().Params.Get("branch")
		return (branch == "" || got == branch) && (!strings.Contains(params, ";rport") || req.Via().Params.Has("rport"))
	}
	if at := topViaEnd(b[:hdrEnd]); at > 0 {
		out := make([]byte, 0, len(b)+len(params))
		out = append(out, b[:at]...)
		out = append(out, params...)
		out = append(out, b[at:]...)
		if check(out) {
			return out, true
		}
	}
	msg, err := in.parser.ParseSIP(b)
	if err != nil {
		return nil, false
	}
	req := msg.(*sipmsg.Request)
	via := req.Via()
	if strings.Contains(params, ";rport") {
		via.Params.Add("rport", "")
	}
	if branch != "" {
		via.Params.Add("branch", branch)
	}
	out := []byte(req.String())
	return out, check(out)
}

// topViaEnd returns the offset just after the first value of the first Via
// header in a header section, or 0: the first comma outside quotes, or the
// end of the (possibly folded) header field.
func topViaEnd(hdr []byte) int {
	i := bytes.Index(hdr, []byte("\r\n")) + 2 // skip the start line
	for i > 1 && i < len(hdr) {
		j := bytes.Index(hdr[i:], []byte("\r\n"))
		if j <= 0 {
			return 0
		}
		line := hdr[i : i+j]
		name, _, ok := bytes.Cut(line, []byte(":"))
		if n := strings.ToLower(strings.TrimSpace(string(name))); ok && (n == "via" || n == "v") {
			colon := i + bytes.IndexByte(line, ':')
			quoted := false
			for k := colon + 1; k < len(hdr); k++ {
				switch c := hdr[k]; {
				case c == '"':
					quoted = !quoted
				case c == ',' && !quoted:
					return k
				case c == '\r' && k+2 < len(hdr) && hdr[k+1] == '\n' && hdr[k+2] != ' ' && hdr[k+2] != '\t':
					return k // end of the field (not a fold)
				}
			}
			return 0
		}
		i += j + 2
	}
	return 0
}

// stampResponse adds the Server header to an outgoing response that lacks
// one and returns its status code (0 for requests and keepalives). sipgo
// writes some responses itself (100 Trying, 487 after CANCEL, 200 to
// CANCEL), so the header is added where every response passes: the write.
func stampResponse(b []byte, server string) ([]byte, int) {
	if len(b) < 12 || !bytes.HasPrefix(b, []byte("SIP/2.0 ")) {
		return b, 0
	}
	code, err := strconv.Atoi(string(b[8:11]))
	if err != nil {
		return b, 0
	}
	eol := bytes.Index(b, []byte("\r\n"))
	end := bytes.Index(b, crlfcrlf)
	if eol < 0 || end < 0 {
		return b, code
	}
	if hasHeader(b[eol:end+2], "server") {
		return b, code
	}
	out := make([]byte, 0, len(b)+len(server)+10)
	out = append(out, b[:eol+2]...)
	out = append(out, "Server: "...)
	out = append(out, server...)
	out = append(out, "\r\n"...)
	out = append(out, b[eol+2:]...)
	return out, code
}

// hasHeader reports whether a header block (starting with CRLF) has a
// header called name (lower case).
func hasHeader(block []byte, name string) bool {
	for len(block) > 0 {
		i := bytes.Index(block, []byte("\r\n"))
		if i < 0 {
			return false
		}
		block = block[i+2:]
		j := bytes.IndexByte(block, ':')
		k := bytes.Index(block, []byte("\r\n"))
		if j >= 0 && (k < 0 || j < k) && strings.EqualFold(strings.TrimSpace(string(block[:j])), name) {
			return true
		}
	}
	return false
}
