// Package sipreg is the REGISTER a Z5 phone sends over its outbound flow
// (RFC 5626): its Contact, the request's headers and the round that
// answers one digest challenge. The client and the web phone's user agent
// register the same way; a leaf on sipgo alone, so the client links no
// server code.
package sipreg

import (
	"context"
	"fmt"
	"strconv"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
)

// Binding is what one REGISTER says.
type Binding struct {
	Number, Domain string // the address of record, sip:Number@Domain
	CallID         string
	CSeq           uint32
	Contact        sipmsg.ContactHeader
	Expires        int    // seconds; 0 un-registers
	License        string // the X-Z5-License token
}

// Contact is a phone's Contact on its outbound flow (RFC 5626): its
// number at the address the flow's connection has (host, port), the
// flow's transport, ";ob", and the instance ID with reg-id 1.
func Contact(number, host string, port int, transport, instance string) sipmsg.ContactHeader {
	c := sipmsg.ContactHeader{
		Address: sipmsg.Uri{Scheme: "sip", User: number, Host: host, Port: port, UriParams: sipmsg.NewParams()},
		Params:  sipmsg.NewParams(),
	}
	c.Address.UriParams.Add("transport", transport)
	c.Address.UriParams.Add("ob", "")
	c.Params.Add("+sip.instance", `"<`+instance+`>"`)
	c.Params.Add("reg-id", "1")
	return c
}

// Fill replaces the To, From (a fresh tag), Call-ID and CSeq headers req
// already has (sipgo's ReplaceHeader adds none it lacks), and appends
// Contact, Expires, Supported (outbound, path) and X-Z5-License.
func Fill(req *sipmsg.Request, b Binding) {
	to := &sipmsg.ToHeader{Address: sipmsg.Uri{Scheme: "sip", User: b.Number, Host: b.Domain}}
	req.ReplaceHeader(to)
	from := &sipmsg.FromHeader{Address: to.Address, Params: sipmsg.NewParams()}
	from.Params.Add("tag", sipmsg.GenerateTagN(16))
	req.ReplaceHeader(from)
	cid := sipmsg.CallIDHeader(b.CallID)
	req.ReplaceHeader(&cid)
	req.ReplaceHeader(&sipmsg.CSeqHeader{SeqNo: b.CSeq, MethodName: sipmsg.REGISTER})
	contact := b.Contact
	req.AppendHeader(&contact)
	req.AppendHeader(sipmsg.NewHeader("Expires", strconv.Itoa(b.Expires)))
	req.AppendHeader(sipmsg.NewHeader("Supported", "outbound, path"))
	req.AppendHeader(sipmsg.NewHeader("X-Z5-License", b.License))
}

// Send sends req and, when the registrar challenges (401 or 407), sends it
// again with the digest answer. It returns the last response and the CSeq
// req ended with, which the digest round raises: the caller's next request
// must go above it.
func Send(ctx context.Context, cl *sipgo.Client, req *sipmsg.Request, auth sipgo.DigestAuth) (*sipmsg.Response, uint32, error) {
	res, err := cl.Do(ctx, req)
	if err != nil {
		return nil, 0, fmt.Errorf("REGISTER: %w", err)
	}
	if res.StatusCode == sipmsg.StatusUnauthorized || res.StatusCode == sipmsg.StatusProxyAuthRequired {
		res, err = cl.DoDigestAuth(ctx, req, res, auth)
		if err != nil {
			return nil, 0, fmt.Errorf("REGISTER with digest: %w", err)
		}
	}
	var cseq uint32
	if cs := req.CSeq(); cs != nil {
		cseq = cs.SeqNo
	}
	return res, cseq, nil
}
