package netcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/wire/algprobe"
)

// maxSIPResponse bounds what the SIP probe reads.
const maxSIPResponse = 16 << 10

// probeSIP sends one OPTIONS over TCP to the MCS address and port of r:
// any SIP response proves the rule. The same OPTIONS carries the ALG probe.
func (c *checker) probeSIP(ctx context.Context, r Rule) (Result, *algObservation) {
	dest := netip.AddrPortFrom(r.Dest, uint16(r.Ports.Min))
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	start := time.Now()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", dest.String())
	if err != nil {
		return result(r, StatusBlocked, time.Since(start), "TCP to "+dest.String()+": "+why(err, c.opts.Timeout)), nil
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	local, _ := netip.ParseAddrPort(conn.LocalAddr().String())
	req, sent := c.optionsRequest(dest, local)
	if _, err := conn.Write([]byte(req.String())); err != nil {
		return result(r, StatusBlocked, time.Since(start), "TCP connected, but sending the OPTIONS failed: "+why(err, c.opts.Timeout)), nil
	}
	res, err := readResponse(conn)
	elapsed := time.Since(start)
	if err != nil {
		detail := "TCP connected, but no SIP answer: " + why(err, c.opts.Timeout) + " (a SIP-aware firewall or ALG may drop SIP)"
		if errors.Is(err, errNotSIP) {
			detail = "TCP connected, but the answer was not SIP: a proxy or another service answered"
		}
		return result(r, StatusBlocked, elapsed, detail), nil
	}
	obs := &algObservation{name: r.Name}
	obs.echoed, obs.rewritten = compareEcho(sent, res)
	res0 := c.timed(r, elapsed, fmt.Sprintf("OPTIONS answered %d %s", res.StatusCode, res.Reason))
	if len(obs.rewritten) > 0 {
		res0.Fix = "disable SIP ALG / SIP inspection on the firewall"
	}
	return res0, obs
}

// probeSDP is the ALG probe's body. Only its text matters: nothing is ever
// sent to the addresses in it. The session address is the client's own
// (what an ALG rewrites); the media line carries a private-looking one
// some ALGs also rewrite.
func probeSDP(local netip.Addr) []byte {
	fam := "IP4"
	if local.Is6() && !local.Is4In6() {
		fam = "IP6"
	}
	return []byte("v=0\r\n" +
		"o=z5-check 1 1 IN " + fam + " " + local.String() + "\r\n" +
		"s=z5 check\r\n" +
		"c=IN " + fam + " " + local.String() + "\r\n" +
		"t=0 0\r\n" +
		"m=audio 49170 RTP/AVP 0\r\n" +
		"c=IN IP4 10.1.2.3\r\n" +
		"a=rtpmap:0 PCMU/8000\r\n")
}

// optionsRequest builds the OPTIONS to dest from local.
func (c *checker) optionsRequest(dest, local netip.AddrPort) (*sipmsg.Request, sentProbe) {
	host := local.Addr().Unmap()
	ruri := sipmsg.Uri{Scheme: "sip", Host: dest.Addr().String(), Port: int(dest.Port()), UriParams: sipmsg.NewParams()}
	ruri.UriParams.Add("transport", "tcp")
	req := sipmsg.NewRequest(sipmsg.OPTIONS, ruri)
	via := &sipmsg.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "TCP",
		Host: host.String(), Port: int(local.Port()), Params: sipmsg.NewParams()}
	via.Params.Add("branch", sipmsg.GenerateBranchN(16))
	via.Params.Add("rport", "")
	req.AppendHeader(via)
	mf := sipmsg.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	from := &sipmsg.FromHeader{Address: sipmsg.Uri{Scheme: "sip", User: "z5-check", Host: c.p.Names.SIPDomain}, Params: sipmsg.NewParams()}
	from.Params.Add("tag", sipmsg.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sipmsg.ToHeader{Address: sipmsg.Uri{Scheme: "sip", Host: dest.Addr().String(), Port: int(dest.Port())}})
	cid := sipmsg.CallIDHeader(sipmsg.GenerateTagN(24))
	req.AppendHeader(&cid)
	req.AppendHeader(&sipmsg.CSeqHeader{SeqNo: 1, MethodName: sipmsg.OPTIONS})
	contact := &sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", User: "z5-check", Host: host.String(),
		Port: int(local.Port()), UriParams: sipmsg.NewParams()}}
	contact.Address.UriParams.Add("transport", "tcp")
	req.AppendHeader(contact)
	req.AppendHeader(sipmsg.NewHeader(algprobe.HeaderProbe, algprobe.ProbeALG))
	req.AppendHeader(sipmsg.NewHeader("User-Agent", c.opts.UserAgent))
	req.AppendHeader(sipmsg.NewHeader("Accept", "application/sdp"))
	req.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	body := probeSDP(host)
	req.SetBody(body)
	return req, sentProbe{via: via, contact: contact, body: body}
}

var errNotSIP = errors.New("not a SIP response")

// readResponse reads one SIP response from a stream, skipping keepalive
// CRLFs, within maxSIPResponse bytes.
func readResponse(conn io.Reader) (*sipmsg.Response, error) {
	parser := sipmsg.NewParser()
	parser.MaxMessageLength = maxSIPResponse
	stream := parser.NewSIPStream()
	defer stream.Close()
	buf := make([]byte, 4096)
	total := 0
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			total += n
			chunk := buf[:n]
			if stream.Buffer().Len() == 0 {
				for len(chunk) > 0 && (chunk[0] == '\r' || chunk[0] == '\n') {
					chunk = chunk[1:]
				}
			}
			if len(chunk) > 0 {
				stream.Write(chunk)
				msg, _, perr := stream.ParseNext()
				switch {
				case perr == nil:
					if res, ok := msg.(*sipmsg.Response); ok {
						return res, nil
					}
					return nil, errNotSIP
				case errors.Is(perr, io.ErrUnexpectedEOF):
				default:
					return nil, fmt.Errorf("%w: %v", errNotSIP, perr)
				}
			}
			if total > maxSIPResponse {
				return nil, fmt.Errorf("%w: answer larger than %d bytes", errNotSIP, maxSIPResponse)
			}
		}
		if err != nil {
			return nil, err
		}
	}
}
