package webphone

import (
	"context"
	"errors"
	"regexp"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/media"
)

// call is a tab's one call, either direction.
type call struct {
	ctx    context.Context // ends with the call (hang-up, tab closed)
	cancel context.CancelFunc
	decide chan decision // incoming, before the page decides
	done   chan struct{} // closed when everything of the call is released
}

type decision struct {
	answer bool
	sdp    string
}

// dialPattern is what the page may dial: a number of ours or another
// NANP number, 911, or an interpreter station.
var dialPattern = regexp.MustCompile(`^(?:[0-9]{3,15}|ca-[A-Za-z0-9]{1,16})$`)

// reasonFor is the page's outcome word for a final SIP status.
func reasonFor(status int) string {
	switch status {
	case 486, 600:
		return "busy"
	case 480, 404, 408, 410:
		return "unavailable"
	case 603:
		return "declined"
	case 487:
		return "cancelled"
	default:
		return "failed"
	}
}

// newCall makes c the tab's call, or reports false when it has one.
func (t *tab) newCall() (*call, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.call != nil || t.ctx.Err() != nil {
		return nil, false
	}
	ctx, cancel := context.WithCancel(t.ctx)
	c := &call{ctx: ctx, cancel: cancel, decide: make(chan decision, 1), done: make(chan struct{})}
	t.call = c
	return c, true
}

// finish releases c and tells the page how the call ended (nothing when
// reason is empty: the page never saw the call).
func (t *tab) finish(c *call, reason string) {
	c.cancel()
	t.mu.Lock()
	if t.call == c {
		t.call = nil
	}
	t.mu.Unlock()
	close(c.done)
	if reason != "" {
		t.send(msg{Type: "ended", Reason: reason})
	}
}

func (t *tab) current() *call {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.call
}

// endCall hangs up (or cancels, or refuses) the current call and waits
// until it is released.
func (t *tab) endCall() {
	c := t.current()
	if c == nil {
		return
	}
	c.cancel()
	<-c.done
}

func (t *tab) placeCall(number, offer string) {
	if !dialPattern.MatchString(number) {
		t.send(msg{Type: "ended", Reason: "invalid number"})
		return
	}
	c, ok := t.newCall()
	if !ok {
		t.fail(errBusyTab.Error())
		return
	}
	br, answer, err := t.openBridge(offer)
	if err != nil {
		t.g.log.Info("web phone media set-up failed", "number", t.sess.Number, "error", err)
		t.finish(c, "failed")
		return
	}
	t.send(msg{Type: "sdp", SDP: answer})
	sipOffer, err := br.sipOffer()
	if err != nil {
		br.close()
		t.finish(c, "failed")
		return
	}
	go func() {
		defer br.close()
		sess, err := t.ua.invite(c.ctx, number, sipOffer, func(code int) {
			if code == 180 || code == 183 {
				t.send(msg{Type: "ringing"})
			}
		})
		if err != nil {
			reason := "failed"
			if de, ok := errors.AsType[*sipgo.ErrDialogResponse](err); ok {
				reason = reasonFor(int(de.Res.StatusCode))
			} else if c.ctx.Err() != nil {
				reason = "cancelled"
			}
			t.finish(c, reason)
			return
		}
		defer sess.Close()
		neg, err := media.ParseAnswer(sess.InviteResponse.Body())
		if err == nil {
			err = br.start(neg)
		}
		if err != nil {
			t.g.log.Info("web phone answer unusable", "number", t.sess.Number, "error", err)
			byeCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			sess.Bye(byeCtx)
			cancel()
			t.finish(c, "failed")
			return
		}
		t.send(msg{Type: "answered"})
		t.converse(c, sess.Context(), sess.Bye)
	}()
}

// converse waits for either side to end an answered call.
func (t *tab) converse(c *call, dialog context.Context, bye func(context.Context) error) {
	select {
	case <-dialog.Done():
		t.finish(c, "ended")
	case <-c.ctx.Done():
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		bye(ctx)
		cancel()
		t.finish(c, "ended")
	}
}

// incoming is an INVITE for the tab's number: it rings the page until the
// page answers or declines, the caller gives up, or the tab goes. It runs
// in the SIP server's handler and returns once the call is decided.
func (t *tab) incoming(s *sipUA, req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	c, ok := t.newCall()
	if !ok {
		tx.Respond(sipmsg.NewResponseFromRequest(req, sipmsg.StatusBusyHere, "Busy Here", nil))
		return
	}
	if !t.g.bridgeable(req.Body()) {
		// The page's media is DTLS-SRTP ending here; an SDES-keyed offer
		// cannot be bridged, and 488 makes a client that merely prefers
		// SRTP offer plain RTP again (the z5 client does).
		tx.Respond(sipmsg.NewResponseFromRequest(req, sipmsg.StatusNotAcceptableHere, "Not Acceptable Here", nil))
		t.finish(c, "")
		return
	}
	dlg, err := s.dsrv.ReadInvite(req, tx)
	if err != nil {
		tx.Respond(sipmsg.NewResponseFromRequest(req, sipmsg.StatusBadRequest, "Bad Request", nil))
		t.finish(c, "failed")
		return
	}
	contact := s.currentContact()
	dlg.Respond(sipmsg.StatusRinging, "Ringing", nil, &contact)
	from, name := userOf(req)
	t.send(msg{Type: "incoming", From: from, Name: name})
	var d decision
	select {
	case d = <-c.decide:
	case <-tx.Done():
		t.finish(c, "missed")
		return
	case <-c.ctx.Done():
		// Hang up on a ringing call, or the tab went: nobody answers here.
		dlg.Respond(sipmsg.StatusTemporarilyUnavailable, "Temporarily Unavailable", nil)
		t.finish(c, "missed")
		return
	}
	if !d.answer {
		dlg.Respond(sipmsg.StatusGlobalDecline, "Decline", nil)
		t.finish(c, "declined")
		return
	}
	br, answer, err := t.openBridge(d.sdp)
	var sipAnswer []byte
	var neg media.Negotiated
	if err == nil {
		sipAnswer, neg, err = br.sipAnswer(req.Body())
		if err != nil {
			br.close()
		}
	}
	if err != nil {
		t.g.log.Info("web phone answer failed", "number", t.sess.Number, "error", err)
		dlg.Respond(sipmsg.StatusNotAcceptableHere, "Not Acceptable Here", nil)
		t.finish(c, "failed")
		return
	}
	if err := dlg.Respond(sipmsg.StatusOK, "OK", sipAnswer, sipmsg.NewHeader("Content-Type", "application/sdp"), &contact); err != nil {
		br.close()
		t.finish(c, "failed")
		return
	}
	t.send(msg{Type: "sdp", SDP: answer})
	if err := br.start(neg); err != nil {
		br.close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		dlg.Bye(ctx)
		cancel()
		t.finish(c, "failed")
		return
	}
	t.send(msg{Type: "answered"})
	go func() {
		defer br.close()
		defer dlg.Close()
		t.converse(c, dlg.Context(), dlg.Bye)
	}()
}

// answer and decline are the page's decision on a ringing call.
func (t *tab) answer(offer string) { t.decideCall(decision{answer: true, sdp: offer}) }
func (t *tab) decline()            { t.decideCall(decision{}) }

func (t *tab) decideCall(d decision) {
	c := t.current()
	if c == nil {
		return
	}
	select {
	case c.decide <- d:
	default:
	}
}
