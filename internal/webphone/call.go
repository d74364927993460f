package webphone

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/media"
)

// A tab has at most two calls: the main one (either direction) and, at an
// interpreter's station, the hearing leg it places for the relay call it
// answered.
const (
	legMain    = 0
	legHearing = 1
)

// legNames are the page's words for the legs ("" is the main call).
var legNames = [2]string{"", "hearing"}

// call is one of a tab's calls.
type call struct {
	leg    int
	ctx    context.Context // ends with the call (hang-up, tab closed)
	cancel context.CancelFunc
	decide chan decision // incoming, before the page decides
	done   chan struct{} // closed when everything of the call is released
	// relay is the offered relay call's details (X-Z5-* headers) when the
	// MCS offered this call to the interpreter's station; nil otherwise.
	relay *relayOffer
	// answered is closed once media flows both ways.
	answered chan struct{}
	br       *bridge // guarded by the tab's mu; closed by finish
}

type decision struct {
	answer bool
	sdp    string
}

// relayOffer is what the MCS tells a station about an offered relay call
// (RELAY-CONTRACT.md: the offer).
type relayOffer struct {
	RelayCall string `json:"relay_call"`
	Direction string `json:"direction"` // outbound, inbound or emergency
	Dialed    string `json:"dialed,omitempty"`
	User      string `json:"user,omitempty"`
	Caller    string `json:"caller,omitempty"`
	Location  string `json:"location,omitempty"` // 911 only
	Callback  string `json:"callback,omitempty"` // 911 only
}

// relayOfferOf reads the X-Z5-* headers of an offer; nil when the INVITE
// is an ordinary call.
func relayOfferOf(req *sipmsg.Request) *relayOffer {
	get := func(name string) string {
		if h := req.GetHeader(name); h != nil {
			return clipHeader(h.Value())
		}
		return ""
	}
	id := get("X-Z5-Relay-Call")
	if id == "" {
		return nil
	}
	return &relayOffer{RelayCall: id, Direction: get("X-Z5-Direction"), Dialed: get("X-Z5-Dialed"), User: get("X-Z5-User"),
		Caller: get("X-Z5-Caller"), Location: get("X-Z5-Location"), Callback: get("X-Z5-Callback")}
}

func clipHeader(s string) string {
	if len(s) > 200 {
		return s[:200]
	}
	return s
}

// hearingTarget is whom the station's second leg calls: the number dialled
// (outbound; "911" for emergency) or the deaf user (inbound).
func (r *relayOffer) hearingTarget() string {
	if r.Direction == "inbound" {
		return r.User
	}
	return r.Dialed
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

// newCall makes a call on leg, or reports false when the leg is taken.
func (t *tab) newCall(leg int) (*call, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.calls[leg] != nil || t.ctx.Err() != nil {
		return nil, false
	}
	ctx, cancel := context.WithCancel(t.ctx)
	c := &call{leg: leg, ctx: ctx, cancel: cancel, decide: make(chan decision, 1), done: make(chan struct{}),
		answered: make(chan struct{})}
	t.calls[leg] = c
	return c, true
}

// finish releases c and tells the page how the call ended (nothing when
// reason is empty: the page never saw the call). The main call takes the
// hearing leg with it.
func (t *tab) finish(c *call, reason string) {
	c.cancel()
	t.mu.Lock()
	if t.calls[c.leg] == c {
		t.calls[c.leg] = nil
	}
	br := c.br
	t.mu.Unlock()
	if br != nil {
		br.close() // its goroutines end before the call counts as ended
	}
	close(c.done)
	if reason != "" {
		t.send(msg{Type: "ended", Reason: reason, Leg: legNames[c.leg]})
	}
	if c.leg == legMain {
		t.endCall(legHearing)
	}
}

func (t *tab) current(leg int) *call {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.calls[leg]
}

// endCall hangs up (or cancels, or refuses) the call on leg and waits
// until it is released.
func (t *tab) endCall(leg int) {
	c := t.current(leg)
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
	c, ok := t.newCall(legMain)
	if !ok {
		t.fail(errBusyTab.Error())
		return
	}
	t.dial(c, number, offer, nil, true)
}

// dialHearing places the station's second leg of the relay call it
// answered: audio only, marked with the relay call's ID so the MCS
// routes it to the trunk (or the user) and joins the record.
func (t *tab) dialHearing(offer string) {
	main := t.current(legMain)
	if main == nil || main.relay == nil {
		t.fail("there is no relay call to dial the hearing party for")
		return
	}
	select {
	case <-main.answered:
	default:
		t.fail("answer the relay call first")
		return
	}
	target := main.relay.hearingTarget()
	if !dialPattern.MatchString(target) {
		t.fail("the relay call names no number to dial")
		return
	}
	c, ok := t.newCall(legHearing)
	if !ok {
		t.fail("the hearing party is already on the line")
		return
	}
	t.dial(c, target, offer, sipmsg.NewHeader("X-Z5-Relay-Call", main.relay.RelayCall), main.relay.hearingSRTP())
}

// hold puts the hearing leg on hold (on) or takes it off, and tells the
// page. It is done at the bridge, not by a re-INVITE: the leg's audio is
// not forwarded either way while held, so the hearing party hears nothing
// from the station and the page plays nothing from them, while the deaf
// user's leg carries on.
func (t *tab) hold(on bool) {
	t.mu.Lock()
	c := t.calls[legHearing]
	var br *bridge
	if c != nil {
		br = c.br
	}
	t.mu.Unlock()
	answered := false
	if c != nil {
		select {
		case <-c.answered:
			answered = true
		default:
		}
	}
	if !answered || br == nil {
		t.fail("the hearing party is not on the line")
		return
	}
	br.held.Store(on)
	t.send(msg{Type: "held", Leg: legNames[legHearing], Hold: on})
}

// hearingSRTP reports whether the station's second leg offers SRTP: to
// the deaf user (inbound), a Z5 device, yes; to the telephone network
// (outbound, 911), whose voice leg is plain RTP, no.
func (r *relayOffer) hearingSRTP() bool { return r.Direction == "inbound" }

// dial runs an outgoing call on c until it ends; srtp offers SDES-SRTP
// toward the relay.
func (t *tab) dial(c *call, number, offer string, extra sipmsg.Header, srtp bool) {
	leg := legNames[c.leg]
	br, answer, err := t.openBridge(offer, c.leg == legHearing)
	if err != nil {
		t.g.log.Info("web phone media set-up failed", "number", t.sess.Number, "error", err)
		t.finish(c, "failed")
		return
	}
	t.own(c, br)
	t.send(msg{Type: "sdp", SDP: answer, Leg: leg})
	go func() {
		sess, neg, err := t.invite(c, br, number, srtp, extra)
		if err != nil {
			reason := "failed"
			if de, ok := errors.AsType[*sipgo.ErrDialogResponse](err); ok {
				reason = reasonFor(int(de.Res.StatusCode))
			} else if c.ctx.Err() != nil {
				reason = "cancelled"
			}
			if reason == "failed" {
				t.g.log.Info("web phone call failed", "number", t.sess.Number, "error", err)
			}
			t.finish(c, reason)
			return
		}
		defer sess.Close()
		if err = t.startBridge(br, neg); err != nil {
			t.g.log.Info("web phone answer unusable", "number", t.sess.Number, "error", err)
			hangUp(sess.Bye)
			t.finish(c, "failed")
			return
		}
		close(c.answered)
		t.send(msg{Type: "answered", Leg: leg, RTT: br.hasText()})
		t.converse(c, sess.Context(), sess.Bye)
	}()
}

// invite places the call's INVITE with br's offer and returns the answered
// session and what it negotiated. An SRTP offer the far end refuses (488,
// or an answer declining every stream) is placed again once with plain
// RTP, as the Z5 client's --srtp auto does; an answer the bridge cannot
// use is hung up.
func (t *tab) invite(c *call, br *bridge, number string, srtp bool, extra sipmsg.Header) (*sipgo.DialogClientSession, media.Negotiated, error) {
	leg := legNames[c.leg]
	for {
		offer, keys, err := br.sipOffer(srtp)
		if err != nil {
			return nil, media.Negotiated{}, err
		}
		sess, err := t.ua.invite(c.ctx, number, offer, extra, func(code int) {
			if code == 180 || code == 183 {
				t.send(msg{Type: "ringing", Leg: leg})
			}
		})
		if de, ok := errors.AsType[*sipgo.ErrDialogResponse](err); ok && srtp && retryPlain(int(de.Res.StatusCode), nil) && c.ctx.Err() == nil {
			t.g.log.Info("web phone srtp refused, calling again with plain rtp", "number", t.sess.Number, "status", de.Res.StatusCode)
			srtp = false
			continue
		}
		if err != nil {
			return nil, media.Negotiated{}, err
		}
		body := sess.InviteResponse.Body()
		neg, err := media.ParseAnswer(body)
		if err == nil && br.text != nil {
			neg.Text, _ = media.ParseText(body) // a text line we cannot use costs the call nothing
		}
		if err == nil {
			err = keys.ApplyAnswer(body, &neg)
		}
		if err == nil {
			return sess, neg, nil
		}
		hangUp(sess.Bye)
		sess.Close()
		if srtp && retryPlain(0, err) && c.ctx.Err() == nil {
			t.g.log.Info("web phone srtp declined, calling again with plain rtp", "number", t.sess.Number)
			srtp = false
			continue
		}
		return nil, media.Negotiated{}, fmt.Errorf("the answer's SDP: %w", err)
	}
}

// retryPlain reports whether an SRTP offer's outcome (a final status, or
// the error reading the answer) means the far end takes no SRTP, so a
// plain RTP offer may succeed: 488, or every stream declined.
func retryPlain(status int, answerErr error) bool {
	return status == sipmsg.StatusNotAcceptableHere || errors.Is(answerErr, media.ErrNoCommonCodec)
}

// converse waits for either side to end an answered call.
func (t *tab) converse(c *call, dialog context.Context, bye func(context.Context) error) {
	select {
	case <-dialog.Done():
		t.finish(c, "ended")
	case <-c.ctx.Done():
		if err := hangUp(bye); err != nil {
			t.g.log.Info("web phone hang-up failed", "number", t.sess.Number, "error", err)
		}
		t.finish(c, "ended")
	}
}

// hangUp sends a BYE with bye and waits at most 2 s for its answer.
func hangUp(bye func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return bye(ctx)
}

// incoming is an INVITE for the tab's number: it rings the page until the
// page answers or declines, the caller gives up, or the tab goes. It runs
// in the SIP server's handler and returns once the call is decided.
func (t *tab) incoming(s *sipUA, req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	c, ok := t.newCall(legMain)
	if !ok {
		tx.Respond(sipmsg.NewResponseFromRequest(req, sipmsg.StatusBusyHere, "Busy Here", nil))
		return
	}
	if !t.g.bridgeable(req.Body()) {
		// Nothing the bridge can carry (no PCMU or H.264 mode 1, or SRTP
		// with no usable a=crypto): refused before the page rings.
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
	c.relay = relayOfferOf(req)
	contact := s.currentContact()
	dlg.Respond(sipmsg.StatusRinging, "Ringing", nil, &contact)
	from, name := userOf(req)
	t.send(msg{Type: "incoming", From: from, Name: name, Offer: c.relay})
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
	br, answer, err := t.openBridge(d.sdp, false)
	var sipAnswer []byte
	var neg media.Negotiated
	if err == nil {
		t.own(c, br)
		sipAnswer, neg, err = br.sipAnswer(req.Body())
	}
	if err != nil {
		t.g.log.Info("web phone answer failed", "number", t.sess.Number, "error", err)
		dlg.Respond(sipmsg.StatusNotAcceptableHere, "Not Acceptable Here", nil)
		t.finish(c, "failed")
		return
	}
	if err := dlg.Respond(sipmsg.StatusOK, "OK", sipAnswer, sipmsg.NewHeader("Content-Type", "application/sdp"), &contact); err != nil {
		t.finish(c, "failed")
		return
	}
	t.send(msg{Type: "sdp", SDP: answer})
	if err := t.startBridge(br, neg); err != nil {
		hangUp(dlg.Bye)
		t.finish(c, "failed")
		return
	}
	close(c.answered)
	t.send(msg{Type: "answered", RTT: br.hasText()})
	go func() {
		defer dlg.Close()
		t.converse(c, dlg.Context(), dlg.Bye)
	}()
}

// own makes br c's media, closed when c is finished.
func (t *tab) own(c *call, br *bridge) {
	t.mu.Lock()
	c.br = br
	t.mu.Unlock()
}

// startBridge starts br on neg, its text to the page.
func (t *tab) startBridge(br *bridge, neg media.Negotiated) error {
	br.onText = func(text []byte, _ int) { t.send(msg{Type: "rtt", Text: string(text)}) }
	return br.start(neg)
}

// typeText sends what the page typed on the main call's text stream.
func (t *tab) typeText(text string) {
	t.mu.Lock()
	var br *bridge
	if c := t.calls[legMain]; c != nil {
		br = c.br
	}
	t.mu.Unlock()
	if text == "" || br == nil || !br.hasText() {
		return
	}
	if !br.text.write([]byte(text)) {
		t.fail("text is arriving faster than it can be sent; some was dropped")
	}
}

// answer and decline are the page's decision on a ringing call.
func (t *tab) answer(offer string) { t.decideCall(decision{answer: true, sdp: offer}) }
func (t *tab) decline()            { t.decideCall(decision{}) }

func (t *tab) decideCall(d decision) {
	c := t.current(legMain)
	if c == nil {
		return
	}
	select {
	case c.decide <- d:
	default:
	}
}
