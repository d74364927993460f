package pstnpeer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/media"
	"github.com/z5vrs/z5/internal/sipdialog"
)

// Dialed is a call the peer placed through the MCS (a hearing caller
// dialling one of our numbers): the tone goes out once it is answered.
type Dialed struct {
	p    *Peer
	a    *active
	sess *sipgo.DialogClientSession
}

// CallID is the call's Call-ID.
func (d *Dialed) CallID() string {
	d.p.mu.Lock()
	defer d.p.mu.Unlock()
	return d.a.rec.CallID
}

// Done is closed when the call has ended (either side).
func (d *Dialed) Done() <-chan struct{} { return d.a.done }

// Hangup sends BYE and ends the media (once).
func (d *Dialed) Hangup(ctx context.Context) error {
	select {
	case <-d.a.done:
		return nil
	default:
	}
	// Noted before the BYE, whose completion also ends the dialog.
	d.p.finish(d.a, "local hangup")
	return d.sess.Bye(ctx)
}

// Dial calls number at the MCS's SIP address mcs (TCP) in the SIP domain,
// from the calling number from, as the carrier's gateway: no credentials,
// the MCS trusts the source address. It waits for the answer (ctx bounds
// the ringing, including a queue wait) and starts the tone. onProgress,
// if set, sees provisional responses.
func (p *Peer) Dial(ctx context.Context, mcs netip.AddrPort, domain, from, number string, onProgress func(code int, reason string)) (*Dialed, error) {
	if p.ln == nil {
		return nil, errors.New("pstnpeer: Dial before Listen")
	}
	rtp, rtcp, err := media.ListenRTPPair(p.ip)
	if err != nil {
		return nil, err
	}
	a := &active{done: make(chan struct{}), socks: []*net.UDPConn{rtp, rtcp},
		rec: Call{Direction: "out", From: from, To: number, Started: time.Now(), ContentType: "application/sdp"}}
	if !p.track(a) {
		rtp.Close()
		rtcp.Close()
		return nil, errors.New("pstnpeer: closed")
	}
	defer p.wg.Done()
	offer, err := media.BuildOffer(p.ip, port(rtp), 0, false)
	if err != nil {
		p.finish(a, err.Error())
		return nil, err
	}
	a.rec.SDP, a.rec.Body = offer, offer
	req := sipmsg.NewRequest(sipmsg.INVITE, sipmsg.Uri{Scheme: "sip", User: number, Host: domain})
	req.SetTransport("TCP")
	req.SetDestination(mcs.String())
	fromH := &sipmsg.FromHeader{Address: sipmsg.Uri{Scheme: "sip", User: from, Host: p.ip.String()}, Params: sipmsg.NewParams()}
	fromH.Params.Add("tag", sipmsg.GenerateTagN(16))
	req.AppendHeader(fromH)
	req.AppendHeader(&sipmsg.ToHeader{Address: sipmsg.Uri{Scheme: "sip", User: number, Host: domain}})
	// A loose route to the MCS: sipgo builds CANCEL and ACK from the
	// headers, and the SIP domain is not in any resolver.
	req.AppendHeader(sipmsg.NewHeader("Route", fmt.Sprintf("<sip:%s;transport=tcp;lr>", mcs)))
	req.AppendHeader(sipmsg.NewHeader("P-Asserted-Identity", fmt.Sprintf("<sip:%s@%s>", from, p.ip)))
	req.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offer)
	// From the peer's own address: the MCS trusts the carrier by source
	// (trunk.allow), and the kernel would pick 127.0.0.1 on loopback.
	req.Laddr = sipmsg.Addr{IP: net.IP(p.ip.AsSlice()), Hostname: p.ip.String()}
	sess, err := p.dcli.WriteInvite(ctx, req)
	if err != nil {
		p.finish(a, err.Error())
		return nil, fmt.Errorf("pstnpeer: INVITE %s: %w", number, err)
	}
	p.mu.Lock()
	a.rec.CallID = req.CallID().Value()
	p.mu.Unlock()
	err = sipdialog.WaitAnswer(ctx, sess, sipgo.AnswerOptions{OnResponse: func(res *sipmsg.Response) error {
		if res.IsProvisional() && onProgress != nil {
			onProgress(int(res.StatusCode), res.Reason)
		}
		return nil
	}})
	if err != nil {
		sess.Close()
		var de *sipgo.ErrDialogResponse
		if errors.As(err, &de) {
			p.mu.Lock()
			a.rec.Status = int(de.Res.StatusCode)
			p.mu.Unlock()
			p.finish(a, fmt.Sprintf("%d %s", de.Res.StatusCode, de.Res.Reason))
			return nil, fmt.Errorf("pstnpeer: call to %s: %d %s", number, de.Res.StatusCode, de.Res.Reason)
		}
		p.finish(a, err.Error())
		return nil, fmt.Errorf("pstnpeer: call to %s: %w", number, err)
	}
	if err := sess.Ack(ctx); err != nil {
		sess.Close()
		p.finish(a, "ACK failed")
		return nil, fmt.Errorf("pstnpeer: ACK: %w", err)
	}
	d := &Dialed{p: p, a: a, sess: sess}
	neg, err := media.ParseAnswer(sess.InviteResponse.Body())
	if err == nil && neg.Audio == nil {
		err = errors.New("no audio in the answer")
	}
	if err == nil {
		err = p.startMedia(a, neg.Audio, rtp, rtcp)
	}
	if err != nil {
		d.Hangup(context.Background())
		return nil, fmt.Errorf("pstnpeer: the answer's SDP: %w", err)
	}
	p.mu.Lock()
	a.rec.Status, a.rec.Answered = 200, time.Now()
	a.rec.Video = strings.Contains(string(sess.InviteResponse.Body()), "\nm=video ")
	p.mu.Unlock()
	p.log.Info("telephone network: call answered", "call_id", a.rec.CallID, "from", from, "to", number, "relay", neg.Audio.Remote.String())
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		select {
		case <-sess.Context().Done():
			p.finish(a, "remote hangup")
		case <-a.done:
		}
		sess.Close()
	}()
	return d, nil
}
