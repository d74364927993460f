package sipserver

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"
)

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
