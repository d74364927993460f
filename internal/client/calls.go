package client

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/sipdialog"
)

// Dialog is an established call's signalling: the remote SDP, hang-up, and
// a channel closed when the call ends from either side.
type Dialog struct {
	Remote    string // the other party's number or URI
	RemoteSDP []byte
	CallID    string

	hangup func(ctx context.Context) error
	once   sync.Once
	done   chan struct{}
	mu     sync.Mutex
	reason string
	// requeue is set when the MCS ended the call asking us to call again
	// (a relay call whose interpreter vanished); guarded by mu.
	requeue requeueAsk
}

// requeueAsk is a BYE's request to call the same number again at once:
// the token to send back (X-Z5-Requeue) and the words for the user.
type requeueAsk struct{ token, notice string }

// HdrRequeue carries the MCS's re-queue token: in its BYE to a relay
// caller whose interpreter vanished, and back in the caller's new INVITE.
const HdrRequeue = "X-Z5-Requeue"

// Requeue reports whether the MCS ended the call asking the caller to
// call the same number again at once (its interpreter vanished mid-call):
// the token for the new call (CallAgain) and the notice to show.
func (d *Dialog) Requeue() (token, notice string, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requeue.token, d.requeue.notice, d.requeue.token != ""
}

func newDialog(remote string, hangup func(context.Context) error) *Dialog {
	return &Dialog{Remote: remote, hangup: hangup, done: make(chan struct{})}
}

// Done is closed when the call has ended (either side).
func (d *Dialog) Done() <-chan struct{} { return d.done }

// Reason says why the call ended ("local hangup", "remote hangup", ...).
func (d *Dialog) Reason() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reason
}

func (d *Dialog) end(reason string) {
	d.once.Do(func() {
		d.mu.Lock()
		d.reason = reason
		d.mu.Unlock()
		close(d.done)
	})
}

// Hangup sends BYE (once) and ends the dialog.
func (d *Dialog) Hangup(ctx context.Context) error {
	select {
	case <-d.done:
		return nil
	default:
	}
	err := d.hangup(ctx)
	d.end("local hangup")
	return err
}

// IncomingCall is an INVITE waiting for the user (or --auto-answer).
type IncomingCall struct {
	From     string // caller number (user part of From)
	FromName string
	Offer    []byte

	p      *Phone
	req    *sipmsg.Request
	dlg    *sipgo.DialogServerSession
	decide chan struct{}
	once   sync.Once
	// cancelled is closed when the caller gives up before an answer.
	cancelled chan struct{}
	dialog    *Dialog
}

// Cancelled is closed when the caller hung up before the call was answered.
func (ic *IncomingCall) Cancelled() <-chan struct{} { return ic.cancelled }

// Header is the value of the INVITE's header name ("" when absent): the
// MCS describes an offered relay call in X-Z5-* headers.
func (ic *IncomingCall) Header(name string) string {
	if h := ic.req.GetHeader(name); h != nil {
		return strings.TrimSpace(h.Value())
	}
	return ""
}

// Answer accepts the call with an SDP answer and returns the dialog.
func (ic *IncomingCall) Answer(answer []byte) (*Dialog, error) {
	var err error
	ic.once.Do(func() {
		defer close(ic.decide)
		select {
		case <-ic.cancelled:
			err = fmt.Errorf("caller hung up before the answer")
			return
		default:
		}
		contact := ic.p.currentContact()
		if err = ic.dlg.Respond(sipmsg.StatusOK, "OK", answer, sipmsg.NewHeader("Content-Type", "application/sdp"), &contact); err != nil {
			err = fmt.Errorf("answer: %w", err)
			return
		}
		d := newDialog(ic.From, ic.dlg.Bye)
		d.RemoteSDP, d.CallID = ic.Offer, ic.dlg.InviteRequest.CallID().Value()
		ic.dialog = d
		ic.p.track(d, ic.dlg.Context())
	})
	if err != nil {
		return nil, err
	}
	if ic.dialog == nil {
		return nil, errors.New("call already decided")
	}
	return ic.dialog, nil
}

// Reject declines the call (486 Busy Here, 603 Decline, ...).
func (ic *IncomingCall) Reject(code int, reason string) error {
	var err error
	ic.once.Do(func() {
		defer close(ic.decide)
		err = ic.dlg.Respond(code, reason, nil)
	})
	return err
}

// currentContact is the Contact this phone registered (host and port of
// its flow): responses that open a dialog must carry a reachable one, or
// strict peers (Linphone) refuse them.
func (p *Phone) currentContact() sipmsg.ContactHeader {
	p.mu.Lock()
	defer p.mu.Unlock()
	return *p.contact.Clone()
}

func (p *Phone) routes() {
	contact := sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", User: "z5"}}
	p.dcli = sipgo.NewDialogClientCache(p.cl, contact)
	p.dsrv = sipgo.NewDialogServerCache(p.cl, contact)
	p.srv.OnInvite(p.onInvite)
	p.srv.OnAck(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		p.dsrv.ReadAck(req, tx)
	})
	p.srv.OnBye(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		if ask, ok := requeueOf(req); ok {
			// Kept before the dialog ends, so track sees it.
			p.requeues.Store(req.CallID().Value(), ask)
		}
		if err := p.dcli.ReadBye(req, tx); err == nil {
			return
		}
		if err := p.dsrv.ReadBye(req, tx); err != nil {
			p.requeues.Delete(req.CallID().Value()) // no dialog of ours
			tx.Respond(sipmsg.NewResponseFromRequest(req, sipmsg.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		}
	})
	p.srv.OnCancel(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		// The transaction layer already answered 200 and ended the INVITE.
	})
	p.srv.OnOptions(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		res := sipmsg.NewResponseFromRequest(req, sipmsg.StatusOK, "OK", nil)
		res.AppendHeader(sipmsg.NewHeader("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO"))
		tx.Respond(res)
	})
	p.srv.OnInfo(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		// SIP INFO carries picture-fast-update requests from some endpoints;
		// keyframes are also asked by RTCP PLI/FIR, which media handles.
		tx.Respond(sipmsg.NewResponseFromRequest(req, sipmsg.StatusOK, "OK", nil))
	})
}

func (p *Phone) onInvite(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if p.opts.OnIncoming == nil {
		tx.Respond(sipmsg.NewResponseFromRequest(req, sipmsg.StatusTemporarilyUnavailable, "Temporarily Unavailable", nil))
		return
	}
	dlg, err := p.dsrv.ReadInvite(req, tx)
	if err != nil {
		tx.Respond(sipmsg.NewResponseFromRequest(req, sipmsg.StatusBadRequest, "Bad Request", nil))
		return
	}
	from := req.From()
	ic := &IncomingCall{p: p, req: req, dlg: dlg, Offer: req.Body(), decide: make(chan struct{}), cancelled: make(chan struct{})}
	if from != nil {
		ic.From, ic.FromName = from.Address.User, strings.Trim(from.DisplayName, `"`)
	}
	contact := p.currentContact()
	dlg.Respond(sipmsg.StatusRinging, "Ringing", nil, &contact)
	go p.opts.OnIncoming(ic)
	select {
	case <-ic.decide:
	case <-tx.Done():
		close(ic.cancelled)
		ic.once.Do(func() { close(ic.decide) })
	}
}

// track ends d when the SIP dialog ends (remote BYE, failure).
func (p *Phone) track(d *Dialog, ctx context.Context) {
	go func() {
		select {
		case <-ctx.Done():
			if v, ok := p.requeues.LoadAndDelete(d.CallID); ok {
				d.mu.Lock()
				d.requeue = v.(requeueAsk)
				d.mu.Unlock()
			}
			d.end("remote hangup")
		case <-d.done:
		}
	}()
}

// defaultRequeueNotice is said when the MCS's BYE has no words of its own.
const defaultRequeueNotice = "Your interpreter was disconnected; reconnecting you to the next interpreter"

// requeueOf reads a BYE asking the caller to call again: its token
// (X-Z5-Requeue) and the Reason header's text.
func requeueOf(req *sipmsg.Request) (requeueAsk, bool) {
	h := req.GetHeader(HdrRequeue)
	if h == nil || strings.TrimSpace(h.Value()) == "" {
		return requeueAsk{}, false
	}
	ask := requeueAsk{token: strings.TrimSpace(h.Value()), notice: defaultRequeueNotice}
	if r := req.GetHeader("Reason"); r != nil {
		if _, after, ok := strings.Cut(r.Value(), `text="`); ok {
			if text, _, ok := strings.Cut(after, `"`); ok && text != "" {
				ask.notice = text
			}
		}
	}
	return ask, true
}

// CallAgain is Call for a relay caller whose interpreter vanished: the
// same number again with the MCS's re-queue token, to be queued at the
// front.
func (p *Phone) CallAgain(ctx context.Context, target, token string, mo MediaOptions, onProgress func(int, string)) (*Call, error) {
	return p.call(ctx, target, mo, onProgress, sipmsg.NewHeader(HdrRequeue, token))
}

// ackTimeout bounds sending the ACK of an answered call.
const ackTimeout = 5 * time.Second

// CallError is a failed call attempt with the SIP status that ended it.
type CallError struct {
	Target string
	Status int
	Reason string
	// Warning is the text of the response's Warning header (RFC 3261
	// §20.43), which says why in words: "" when absent.
	Warning string
	Err     error
}

func (e *CallError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("call to %s failed: %v", e.Target, e.Err)
	}
	return fmt.Sprintf("call to %s: %v (%d %s)", e.Target, e.Err, e.Status, e.Reason)
}

func (e *CallError) Unwrap() error { return e.Err }

// Invite calls target (a 10-digit number or a SIP URI) with an SDP offer
// and waits for the answer. onProgress sees provisional responses; a 182
// Queued carrying X-Z5-Queue-Position arrives as "Queued (position N)".
// extra headers go into the INVITE as they are.
func (p *Phone) Invite(ctx context.Context, target string, offer []byte, onProgress func(code int, reason string), extra ...sipmsg.Header) (*Dialog, error) {
	p.mu.Lock()
	server, contact := p.server, p.contact
	p.mu.Unlock()
	ruri := sipmsg.Uri{Scheme: "sip", User: target, Host: p.creds.Domain}
	if strings.HasPrefix(target, "sip:") {
		if err := sipmsg.ParseUri(target, &ruri); err != nil {
			return nil, fmt.Errorf("call %q: %w", target, err)
		}
	}
	req := p.newRequest(sipmsg.INVITE, ruri, server)
	// A loose route to the MCS we registered with: sipgo builds CANCEL from
	// the INVITE's headers, not its destination, and without a Route would
	// look the SIP domain up in the system resolver.
	req.AppendHeader(sipmsg.NewHeader("Route", fmt.Sprintf("<sip:%s;transport=%s;lr>", server, p.network)))
	req.AppendHeader(&contact)
	req.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	req.AppendHeader(sipmsg.NewHeader("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO"))
	for _, h := range extra {
		req.AppendHeader(h)
	}
	req.SetBody(offer)
	sess, err := p.dcli.WriteInvite(ctx, req)
	if err != nil {
		return nil, &CallError{Target: target, Err: err}
	}
	err = sipdialog.WaitAnswer(ctx, sess, sipgo.AnswerOptions{
		Username: p.creds.Username, Password: p.creds.Password,
		OnResponse: func(res *sipmsg.Response) error {
			if res.IsProvisional() && onProgress != nil {
				reason := res.Reason
				if pos := queuePosition(res); pos > 0 {
					reason = fmt.Sprintf("Queued (position %d)", pos)
				}
				onProgress(int(res.StatusCode), reason)
			}
			return nil
		},
	})
	if err != nil {
		sess.Close()
		var de *sipgo.ErrDialogResponse
		if errors.As(err, &de) {
			ce := &CallError{Target: target, Status: int(de.Res.StatusCode), Reason: de.Res.Reason, Warning: warningText(de.Res)}
			switch de.Res.StatusCode {
			case sipmsg.StatusTemporarilyUnavailable, sipmsg.StatusNotFound:
				ce.Err = ErrUnavailable
			case sipmsg.StatusBusyHere, 600:
				ce.Err = ErrBusy
			case sipmsg.StatusGlobalDecline:
				ce.Err = ErrDeclined
			case sipmsg.StatusRequestTimeout:
				ce.Err = fmt.Errorf("%w: no answer", ErrUnavailable)
			default:
				ce.Err = errors.New("rejected")
			}
			return nil, ce
		}
		return nil, &CallError{Target: target, Err: err}
	}
	// The ACK rides the dialog's route set; one that cannot be sent in
	// time (a route to a peer that never answers) fails the call rather
	// than leaving it half set up.
	actx, cancel := context.WithTimeout(ctx, ackTimeout)
	err = sess.Ack(actx)
	cancel()
	if err != nil {
		sess.Close()
		return nil, &CallError{Target: target, Err: fmt.Errorf("ACK: %w", err)}
	}
	d := newDialog(target, func(ctx context.Context) error {
		defer sess.Close()
		return sess.Bye(ctx)
	})
	d.RemoteSDP, d.CallID = sess.InviteResponse.Body(), req.CallID().Value()
	p.track(d, sess.Context())
	return d, nil
}

// queuePosition is a 182 Queued response's place in the interpreter
// queue (X-Z5-Queue-Position), 0 when the response carries none.
func queuePosition(res *sipmsg.Response) int {
	if res.StatusCode != 182 {
		return 0
	}
	h := res.GetHeader("X-Z5-Queue-Position")
	if h == nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(h.Value()))
	if err != nil || n < 1 {
		return 0
	}
	return n
}

// warningText is the quoted text of a Warning header (code agent "text"),
// "" when the response has none.
func warningText(res *sipmsg.Response) string {
	h := res.GetHeader("Warning")
	if h == nil {
		return ""
	}
	v := h.Value()
	i, j := strings.IndexByte(v, '"'), strings.LastIndexByte(v, '"')
	if i < 0 || j <= i {
		return ""
	}
	return strings.ReplaceAll(v[i+1:j], `\"`, `"`)
}

// RelayAddr is where a call's media goes: the MCS address in the remote
// SDP. Exposed for diagnostics.
func RelayAddr(sdp []byte) (netip.Addr, bool) {
	for _, line := range strings.Split(string(sdp), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "c=IN IP4 ") || strings.HasPrefix(line, "c=IN IP6 ") {
			a, err := netip.ParseAddr(strings.TrimSpace(line[9:]))
			return a, err == nil
		}
	}
	return netip.Addr{}, false
}
