package sipcore

import (
	"math/rand/v2"
	"net"
	"strconv"

	sipmsg "github.com/emiago/sipgo/sip"
)

// Reply is the response to a REGISTER: sipgo's NewResponseFromRequest
// (RFC 3261 §8.2.6.2) without its clones. The response shares the
// request's Via, From, Call-ID and CSeq headers, which neither message
// changes once built (sipgo's rule: a header is cloned before it is
// changed), and copies only what it changes: the To, which gains a tag,
// and a Via whose empty rport it fills (RFC 3581 §4). Every registration
// is answered twice (a 401, then a 200), and the clones were a tenth of
// the allocations of each. A registrar answers a REGISTER itself and
// never forwards it, so no proxy changes the request's headers after;
// any other request gets NewResponseFromRequest's response.
func Reply(req *sipmsg.Request, code int, reason string) *sipmsg.Response {
	if req.Method != sipmsg.REGISTER {
		return sipmsg.NewResponseFromRequest(req, code, reason, nil)
	}
	res := sipmsg.NewResponse(code, reason)
	res.SipVersion = req.SipVersion
	top := true
	for _, h := range req.Headers() {
		switch h := h.(type) {
		case *sipmsg.ViaHeader:
			if rport, ok := h.Params.Get("rport"); top && ok && rport == "" {
				h = h.Clone()
				host, port, _ := net.SplitHostPort(req.Source())
				h.Params.Add("rport", port)
				h.Params.Add("received", host)
			}
			top = false
			res.AppendHeader(h)
		}
	}
	if h := req.From(); h != nil {
		res.AppendHeader(h)
	}
	if h := req.To(); h != nil {
		if code != 100 && !h.Params.Has("tag") {
			to := *h
			// A new array: the request's parameters stay as they were.
			to.Params = append(h.Params[:len(h.Params):len(h.Params)], sipmsg.HeaderKV{K: "tag", V: newTag()})
			h = &to
		}
		res.AppendHeader(h)
	}
	if h := req.CallID(); h != nil {
		res.AppendHeader(h)
	}
	if h := req.CSeq(); h != nil {
		res.AppendHeader(h)
	}
	if code == 100 {
		for h := range Named(req.Headers(), "Timestamp") {
			res.AppendHeader(h)
		}
	}
	res.SetBody(nil)
	res.SetTransport(req.Transport())
	res.SetDestination(req.Source())
	return res
}

// newTag is a To tag: 64 random bits (RFC 3261 §19.3 asks for 32) in
// hex. Not sipgo's GenerateTagN, whose letters now and then spell a
// header name: SIPp took a tag holding "CSeq" for the CSeq header and
// failed the call.
func newTag() string {
	return strconv.FormatUint(rand.Uint64(), 16)
}
