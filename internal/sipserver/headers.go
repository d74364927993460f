package sipserver

import (
	"strconv"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"
)

// Helpers on headers.

func fromTag(req *sipmsg.Request) string {
	t, _ := req.From().Params.Get("tag")
	return t
}

func fromAsTo(f *sipmsg.FromHeader) sipmsg.ToHeader {
	return f.AsTo()
}

func cloneTo(t *sipmsg.ToHeader) sipmsg.ToHeader {
	return *sipmsg.HeaderClone(t).(*sipmsg.ToHeader)
}

func contactURI(req *sipmsg.Request) sipmsg.Uri {
	if c := req.Contact(); c != nil {
		return *c.Address.Clone()
	}
	return *req.From().Address.Clone()
}

func isSDP(req *sipmsg.Request) bool { return isSDPType(req.ContentType()) }

func isSDPType(ct *sipmsg.ContentTypeHeader) bool {
	if ct == nil {
		return false
	}
	v, _, _ := strings.Cut(ct.Value(), ";")
	return strings.EqualFold(strings.TrimSpace(v), "application/sdp")
}

func itoa(n int) string { return strconv.Itoa(n) }
