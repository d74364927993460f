package sipserver

import (
	"bytes"
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
	// msg is deliver parsed, when the message was delivered as it came;
	// nil when it was rewritten (or not delivered).
	msg    sipmsg.Message
	reply  []byte // response to send back to the sender; nil: none
	reason string // why the message was not delivered as is
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
		return verdict{deliver: b, msg: m}
	case *sipmsg.Request:
		if e := checkRequest(m, b[:hdrEnd]); e != nil {
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
			return verdict{deliver: b, msg: m}
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

// singleHeaders may appear at most once (RFC 3261 §7.3, §20), with their
// compact forms.
var singleHeaders = [...]struct {
	name    string
	compact byte
}{{"call-id", 'i'}, {"cseq", 0}, {"from", 'f'}, {"to", 't'}, {"max-forwards", 0}, {"content-type", 'c'}, {"expires", 0}}

// checkRequest validates what sipgo's parser accepts but a request must
// still satisfy (RFC 3261 §8.2, §16.3).
func checkRequest(req *sipmsg.Request, hdr []byte) *sipError {
	if req.SipVersion != "SIP/2.0" {
		return &sipError{505, "Version Not Supported"}
	}
	var counts [len(singleHeaders)]int
	badName := ""
	for name, value := range fields(hdr) {
		for i, h := range singleHeaders {
			if isHeader(name, h.name, h.compact) {
				counts[i]++
				if (h.name == "from" || h.name == "to") && badName == "" && !validDisplayName(value) {
					badName = h.name
				}
			}
		}
	}
	for i, h := range singleHeaders {
		if counts[i] > 1 {
			return &sipError{400, "Duplicate " + canonicalName(h.name) + " Header"}
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
	if badName != "" {
		return &sipError{400, "Malformed " + canonicalName(badName) + " Header"}
	}
	return nil
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
