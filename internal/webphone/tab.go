package webphone

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/websocket"

	"github.com/z5vrs/z5/internal/clip"
	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/wire/zdialwire"
)

// msg is one signalling message either way; Type says which fields count.
//
// Page to gateway: auth {token, license, sip, instance}, call {number,
// sdp}, answer {sdp} (the page offers, the gateway answers, in both call
// directions), decline, hangup {leg}, dial_hearing {sdp}, hold {hold},
// rtt {text}, history, ping.
// Gateway to page: registered {number}, incoming {from, name, offer},
// ringing {leg}, sdp {sdp, leg}, answered {leg, rtt}, held {leg, hold},
// rtt {text}, ended {reason, leg}, history {calls}, error {message}, pong.
type msg struct {
	Type     string              `json:"type"`
	Token    string              `json:"token,omitempty"`
	License  string              `json:"license,omitempty"`
	SIP      *zdialwire.SIPCreds `json:"sip,omitempty"`
	Instance string              `json:"instance,omitempty"`
	Number   string              `json:"number,omitempty"`
	SDP      string              `json:"sdp,omitempty"`
	From     string              `json:"from,omitempty"`
	Name     string              `json:"name,omitempty"`
	Reason   string              `json:"reason,omitempty"`
	Message  string              `json:"message,omitempty"`
	Calls    []historyEntry      `json:"calls,omitempty"`
	// Text is real-time text (page to gateway and back, plain UTF-8; the
	// page sends LF for a new line and BS to erase); RTT in "answered"
	// says the call has a text stream.
	Text string `json:"text,omitempty"`
	RTT  bool   `json:"rtt,omitempty"`
	// Leg is "hearing" for an interpreter's second leg, else empty.
	Leg string `json:"leg,omitempty"`
	// Offer details an offered relay call at an interpreter's station.
	Offer *relayOffer `json:"offer,omitempty"`
	// Hold asks for (hold) or reports (held) the hearing leg on hold.
	Hold bool `json:"hold,omitempty"`
}

type historyEntry struct {
	Direction string `json:"direction"` // "in" or "out"
	Other     string `json:"other"`
	Started   string `json:"started"`
	Seconds   int    `json:"seconds"`
	Answered  bool   `json:"answered"`
}

// tab is one open page: its WebSocket, SIP user agent and at most one
// call.
type tab struct {
	g         *Gateway
	ws        *websocket.Conn
	sess      store.Session
	tokenHash []byte // the MCS token's, to see the session still holds

	ctx    context.Context
	cancel context.CancelFunc

	wmu sync.Mutex // serialises writes to ws

	mu    sync.Mutex // guards calls
	calls [2]*call   // legMain, legHearing
	ua    *sipUA
}

var instancePattern = regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// sameOrigin refuses a WebSocket opened by another site's page with the
// user's cookies (we use none, but the check costs nothing): the Origin
// must be this server.
func sameOrigin(cfg *websocket.Config, r *http.Request) error {
	o, err := url.Parse(r.Header.Get("Origin"))
	if err != nil || o.Scheme != "https" || !strings.EqualFold(o.Host, r.Host) {
		return errors.New("cross-origin WebSocket refused")
	}
	cfg.Origin = o
	return nil
}

func (g *Gateway) serveWS(w http.ResponseWriter, r *http.Request) {
	srv := websocket.Server{Handshake: sameOrigin, Handler: g.runTab}
	srv.ServeHTTP(w, r)
}

func (t *tab) send(m msg) error {
	if t.ws == nil {
		return nil // a tab under test has no page
	}
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return websocket.JSON.Send(t.ws, m)
}

func (t *tab) fail(text string) {
	t.send(msg{Type: "error", Message: text})
}

// runTab is the life of one tab: authenticate within AuthTimeout, register,
// then serve messages until the page goes, goes quiet, or the gateway
// closes. Everything the tab started ends before runTab returns.
func (g *Gateway) runTab(ws *websocket.Conn) {
	defer ws.Close()
	ws.MaxPayloadBytes = g.cfg.MaxMessage
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t := &tab{g: g, ws: ws, ctx: ctx, cancel: cancel}

	ws.SetReadDeadline(time.Now().Add(g.cfg.AuthTimeout))
	var first msg
	if err := websocket.JSON.Receive(ws, &first); err != nil || first.Type != "auth" {
		t.fail("sign in first")
		return
	}
	sess, err := t.authenticate(first)
	if err != nil {
		t.fail(err.Error())
		return
	}
	t.sess, t.tokenHash = sess, store.TokenHash(first.Token)
	if err := g.admit(t, sess.Number); err != nil {
		t.fail(err.Error())
		return
	}
	defer g.release(t, sess.Number)
	log := g.log.With("number", sess.Number, "device_id", sess.DeviceID)

	// The reader runs beside the registration so a page that leaves
	// early is noticed; it ends when ws closes (below) or fails.
	in := make(chan msg)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer cancel()
		for {
			ws.SetReadDeadline(time.Now().Add(g.cfg.IdleTimeout))
			var m msg
			if err := websocket.JSON.Receive(ws, &m); err != nil {
				return
			}
			select {
			case in <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() { ws.Close(); <-readDone }()

	ua, err := newSIPUA(ctx, t, first)
	if err != nil {
		log.Info("web phone registration failed", "error", err)
		t.fail("could not register the phone: " + err.Error())
		return
	}
	t.mu.Lock()
	t.ua = ua
	t.mu.Unlock()
	defer ua.close()
	log.Info("web phone registered")
	t.send(msg{Type: "registered", Number: sess.Number})

	for {
		select {
		case <-ctx.Done():
			t.endCall(legMain)
			t.endCall(legHearing)
			return
		case m := <-in:
			t.handle(m)
		}
	}
}

// stop ends the tab from outside (gateway Close).
func (t *tab) stop() {
	t.cancel()
	t.ws.Close()
}

// stillValid reports whether the tab's MCS session still holds (not
// revoked by a sign-out elsewhere, not expired); a store error keeps the
// tab (the next check decides).
func (t *tab) stillValid(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	sess, err := t.g.deps.Sessions.Session(ctx, t.tokenHash)
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	return err != nil || sess.Valid(t.g.deps.Now())
}

// authenticate checks the MCS token of the auth message and the device
// credentials it brings.
func (t *tab) authenticate(m msg) (store.Session, error) {
	const bad = "your session has expired or is not valid; sign in again"
	if m.Token == "" || len(m.Token) > 512 || m.SIP == nil || m.License == "" || len(m.License) > 8192 {
		return store.Session{}, errors.New(bad)
	}
	if !instancePattern.MatchString(m.Instance) {
		return store.Session{}, errors.New("the page sent no valid device instance; reload it")
	}
	ctx, cancel := context.WithTimeout(t.ctx, 5*time.Second)
	defer cancel()
	sess, err := t.g.deps.Sessions.Session(ctx, store.TokenHash(m.Token))
	if err != nil || sess.Kind != store.SessionMCS || !sess.Valid(t.g.deps.Now()) || sess.Number == "" {
		return store.Session{}, errors.New(bad)
	}
	return sess, nil
}

func (t *tab) handle(m msg) {
	switch m.Type {
	case "ping":
		t.send(msg{Type: "pong"})
	case "call":
		t.placeCall(m.Number, m.SDP)
	case "answer":
		t.answer(m.SDP)
	case "decline":
		t.decline()
	case "hangup":
		if m.Leg == legNames[legHearing] {
			t.endCall(legHearing)
		} else {
			t.endCall(legMain)
		}
	case "dial_hearing":
		t.dialHearing(m.SDP)
	case "hold":
		t.hold(m.Hold)
	case "rtt":
		t.typeText(m.Text)
	case "history":
		t.history()
	default:
		t.fail("unknown request " + clip.String(m.Type, 32))
	}
}

func (t *tab) history() {
	if t.g.deps.Calls == nil {
		t.send(msg{Type: "history"})
		return
	}
	ctx, cancel := context.WithTimeout(t.ctx, 5*time.Second)
	defer cancel()
	calls, err := t.g.deps.Calls.ListCalls(ctx, store.CallFilter{Number: t.sess.Number, Limit: 50})
	if err != nil {
		t.fail("could not read the call history")
		return
	}
	out := make([]historyEntry, 0, len(calls))
	for _, c := range calls {
		e := historyEntry{Direction: "out", Other: c.To, Started: c.StartedAt.UTC().Format(time.RFC3339), Answered: !c.AnsweredAt.IsZero()}
		if c.To == t.sess.Number {
			e.Direction, e.Other = "in", c.From
		}
		if e.Answered && !c.EndedAt.IsZero() {
			e.Seconds = int(c.EndedAt.Sub(c.AnsweredAt).Seconds())
		}
		out = append(out, e)
	}
	t.send(msg{Type: "history", Calls: out})
}

// errBusyTab: one call per tab.
var errBusyTab = errors.New("already in a call")
