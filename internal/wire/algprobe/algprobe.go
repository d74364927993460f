// Package algprobe is the wire format of the SIP ALG check, which both ends
// speak: `z5 check` sends the MCS an OPTIONS over TCP carrying
// "X-Z5-Probe: alg", with its own address in Via and Contact and an SDP
// body; the MCS echoes what it received in X-Z5-Echo-* headers and the
// response body. A firewall's SIP ALG (or "SIP inspection") rewrites those
// addresses on the way; the client compares and reports the rewrite.
//
// The client's side lives in internal/netcheck, the server's in
// internal/sipserver; this package holds only what both must agree on and
// the server's pure reply, so neither links the other.
package algprobe

import (
	"slices"
	"strconv"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"
)

// Header names and the echo's content type.
const (
	HeaderProbe       = "X-Z5-Probe"
	HeaderEchoVia     = "X-Z5-Echo-Via"
	HeaderEchoContact = "X-Z5-Echo-Contact"
	// HeaderEchoLength is the size of the body the MCS received, so the
	// client can tell a body the server did not echo from one an ALG
	// rewrote.
	HeaderEchoLength = "X-Z5-Echo-Length"
	// EchoContentType labels the echoed body: not application/sdp, so an
	// ALG on the way back leaves it alone.
	EchoContentType = "application/x-z5-echo"
	// ProbeALG is the value of HeaderProbe that asks for the echo.
	ProbeALG = "alg"

	// MaxEchoBody and MaxEchoHeader cap what the server reflects.
	MaxEchoBody   = 2048
	MaxEchoHeader = 512
)

// EchoReply is the MCS side of the ALG check, for the SIP server's OPTIONS
// handler: for an OPTIONS received over a reliable transport with
// "X-Z5-Probe: alg" it returns the headers to add to the 200 response (the
// top Via and the Contact as received, the body's length, and a
// Content-Type when there is a body) and the body to send, the request's
// own. ok is false for any other request, over UDP (no reflection of
// spoofed datagrams), or when a value exceeds the size caps; answer such a
// request as usual. The response is never much larger than the request.
func EchoReply(req *sipmsg.Request) (headers []sipmsg.Header, body []byte, ok bool) {
	if req == nil || req.Method != sipmsg.OPTIONS || !sipmsg.IsReliable(req.Transport()) {
		return nil, nil, false
	}
	h := req.GetHeader(HeaderProbe)
	if h == nil || !strings.EqualFold(strings.TrimSpace(h.Value()), ProbeALG) {
		return nil, nil, false
	}
	via := req.Via()
	if via == nil {
		return nil, nil, false
	}
	viaV := via.Value()
	contactV := ""
	if ct := req.Contact(); ct != nil {
		contactV = ct.Value()
	}
	b := req.Body()
	if !headerSafe(viaV) || (contactV != "" && !headerSafe(contactV)) || len(b) > MaxEchoBody {
		return nil, nil, false
	}
	headers = []sipmsg.Header{sipmsg.NewHeader(HeaderEchoVia, viaV)}
	if contactV != "" {
		headers = append(headers, sipmsg.NewHeader(HeaderEchoContact, contactV))
	}
	headers = append(headers, sipmsg.NewHeader(HeaderEchoLength, strconv.Itoa(len(b))))
	if len(b) > 0 {
		headers = append(headers, sipmsg.NewHeader("Content-Type", EchoContentType))
		body = slices.Clone(b)
	}
	return headers, body, true
}

// headerSafe: a value we may put back in a header line: bounded, no
// control characters (so nothing can be injected into the response).
func headerSafe(v string) bool {
	if v == "" || len(v) > MaxEchoHeader {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] == 0x7f {
			return false
		}
	}
	return true
}
