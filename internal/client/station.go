package client

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/media"
)

// StationEvent is one thing an interpreter station saw happen: its state
// changing at the MCS, an offer, a leg answered, placed, failed or ended.
// `z5 interpret --json` prints one per line.
type StationEvent struct {
	Time      time.Time `json:"time"`
	Event     string    `json:"event"`
	RelayCall string    `json:"relay_call,omitempty"`
	Direction string    `json:"direction,omitempty"`
	Caller    string    `json:"caller,omitempty"`
	Dialed    string    `json:"dialed,omitempty"`
	User      string    `json:"user,omitempty"`
	Location  string    `json:"location,omitempty"`
	Callback  string    `json:"callback,omitempty"`
	State     string    `json:"state,omitempty"`
	// Leg is LegUser or LegHearing; Number the number a leg was placed to.
	Leg    string `json:"leg,omitempty"`
	Number string `json:"number,omitempty"`
	// Status and Reason: a SIP response (progress, failure); Outcome says
	// a failed leg in words (busy, no answer, rejected, ...).
	Status    int                 `json:"status,omitempty"`
	Reason    string              `json:"reason,omitempty"`
	Outcome   string              `json:"outcome,omitempty"`
	Error     string              `json:"error,omitempty"`
	Video     bool                `json:"video,omitempty"` // the leg carries video
	Relay     string              `json:"relay,omitempty"` // where the leg's media goes: the MCS relay
	Streams   []media.StreamStats `json:"streams,omitempty"`
	Recording string              `json:"recording,omitempty"`
	// Detail: the registration (registered); the far end's words
	// (a Warning header) on a failed leg.
	Detail string `json:"detail,omitempty"`
}

// The station's events (StationEvent.Event).
const (
	EvRegistered = "registered"  // Detail: AOR and MCS
	EvState      = "state"       // State: the MCS's view changed
	EvOffered    = "offered"     // an offer rings
	EvMissed     = "missed"      // the caller gave up before the answer
	EvDeclined   = "declined"    // the interpreter (or busy station) declined
	EvAnswered   = "answered"    // the first leg is up
	EvDialing    = "dialing"     // the second leg is being placed
	EvProgress   = "progress"    // a provisional response on the second leg
	EvConnected  = "connected"   // the second leg answered
	EvLegFailed  = "leg_failed"  // the second leg did not connect
	EvLegEnded   = "leg_ended"   // a leg ended: Reason, Streams, Recording
	EvCallEnded  = "call_ended"  // both legs are down
	EvError      = "error"       // something went wrong that did not stop the station
	EvSignedOut  = "signed_out"  // not ready and unregistered
	EvStateError = "state_error" // the MCS did not say the state
)

// StationOptions configure an interpreter station.
type StationOptions struct {
	// AutoAnswer answers every offer at once, and ends the first leg when
	// the second cannot be placed.
	AutoAnswer bool
	// Answer decides an offer when AutoAnswer is off: true answers, false
	// declines (486). cancelled closes when the caller gives up. nil
	// declines every offer.
	Answer func(ctx context.Context, o RelayOffer, cancelled <-chan struct{}) bool
	// Retry decides, when AutoAnswer is off, whether to place the second
	// leg again after it failed; false (or nil) ends the first leg.
	Retry func(ctx context.Context, o RelayOffer, failure StationEvent) bool
	// Media gives what a leg sends (LegUser: video and audio; LegHearing:
	// audio, video is dropped): called for every leg, so each gets fresh
	// sources. nil sends the built-in clip.
	Media func(leg string) (MediaOptions, error)
	// RecordDir, when set, records each leg into DIR/callN/LEG/LEG.mkv.
	RecordDir string
	// OnEvent receives every event, one at a time.
	OnEvent func(StationEvent)
	// PollInterval is how often the MCS is asked for the state (default
	// 500ms): the MCS moves the station through offered, in call, wrap-up
	// and back to ready.
	PollInterval time.Duration
	// ACD is the interpreter-state API; nil uses the MCS's.
	ACD ACD
	// Flow times the SIP flow, as for a phone.
	Flow FlowOptions
	// MediaTimeout ends a leg that receives nothing this long (default 20s).
	MediaTimeout time.Duration
}

// stationPoll is how often the station asks the MCS for its state.
const stationPoll = 500 * time.Millisecond

// station is one run of RunStation.
type station struct {
	c    *Client
	opts StationOptions
	acd  ACD
	ph   *Phone

	emitMu sync.Mutex // serializes OnEvent
	inCall atomic.Bool
	calls  int

	stateMu sync.Mutex // guards last
	last    string
}

// RunStation runs an interpreter station until ctx ends: it registers
// (step 4), tells the MCS the interpreter is ready, takes offered relay
// calls, places each call's second leg over its own flow and ends the
// other leg when one ends. When ctx ends it says not ready and
// unregisters; that is a clean end (nil).
func (c *Client) RunStation(ctx context.Context, opts StationOptions) error {
	s := &station{c: c, opts: opts, acd: opts.ACD}
	if s.acd == nil {
		s.acd = c.ACD()
	}
	if s.opts.PollInterval <= 0 {
		s.opts.PollInterval = stationPoll
	}
	offers := make(chan *IncomingCall)
	ph, err := c.Connect(ctx, PhoneOptions{Flow: opts.Flow, OnIncoming: func(ic *IncomingCall) {
		// One call at a time: the flag is taken here, before the call
		// reaches the loop, so two offers at once cannot both get in.
		if !s.inCall.CompareAndSwap(false, true) {
			ic.Reject(486, "Busy Here")
			return
		}
		select {
		case offers <- ic:
		case <-ic.Cancelled():
			s.inCall.Store(false)
		case <-ctx.Done():
			ic.Reject(480, "Temporarily Unavailable")
			s.inCall.Store(false)
		}
	}})
	if err != nil {
		return err
	}
	s.ph = ph
	host, server := ph.Server()
	s.emit(StationEvent{Event: EvRegistered, Detail: fmt.Sprintf("%s with %s (%s)", ph.AOR(), host, server)})

	st, err := s.acd.SetState(ctx, StateReady)
	if err != nil {
		ph.Close()
		return err
	}
	s.sawState(st.State)

	pollCtx, stopPoll := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.poll(pollCtx)
	}()

	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case ic := <-offers:
			s.handle(ctx, ic)
			s.inCall.Store(false)
		}
	}
	stopPoll()
	wg.Wait()
	// Signed out even though ctx ended: the MCS must not offer calls to a
	// station that is gone.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var errs []error
	if st, err := s.acd.SetState(sctx, StateNotReady); err != nil {
		errs = append(errs, err)
	} else {
		s.sawState(st.State)
	}
	if err := ph.Close(); err != nil {
		errs = append(errs, err)
	}
	s.emit(StationEvent{Event: EvSignedOut})
	return errors.Join(errs...)
}

func (s *station) emit(ev StationEvent) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	s.emitMu.Lock()
	defer s.emitMu.Unlock()
	if s.opts.OnEvent != nil {
		s.opts.OnEvent(ev)
	}
}

// sawState reports a state that differs from the last one seen.
func (s *station) sawState(state string) {
	if state == "" {
		return
	}
	s.stateMu.Lock()
	changed := state != s.last
	s.last = state
	s.stateMu.Unlock()
	if changed {
		s.emit(StationEvent{Event: EvState, State: state})
	}
}

// poll asks the MCS for the state until ctx ends, reporting changes; a
// failure is reported once until the MCS answers again.
func (s *station) poll(ctx context.Context) {
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := s.acd.State(ctx)
		if err != nil {
			if !failing && ctx.Err() == nil {
				s.emit(StationEvent{Event: EvStateError, Error: err.Error()})
			}
			failing = true
			continue
		}
		failing = false
		s.sawState(st.State)
	}
}

// offerEvent is an event about offer o.
func offerEvent(ev string, o RelayOffer) StationEvent {
	return StationEvent{Event: ev, RelayCall: o.RelayCall, Direction: o.Direction, Caller: o.Caller,
		Dialed: o.Dialed, User: o.User, Location: o.Location, Callback: o.Callback}
}

// handle runs one offered call from ring to both legs down.
func (s *station) handle(ctx context.Context, ic *IncomingCall) {
	o, err := ParseRelayOffer(ic.Header, ic.From, ic.FromName)
	if err != nil {
		// Only the MCS's offers ring here; anything else is refused.
		ic.Reject(sipmsg.StatusForbidden, "Forbidden")
		s.emit(StationEvent{Event: EvDeclined, Caller: ic.From, Error: err.Error()})
		return
	}
	s.emit(offerEvent(EvOffered, o))
	if !s.opts.AutoAnswer && (s.opts.Answer == nil || !s.opts.Answer(ctx, o, ic.Cancelled())) {
		select {
		case <-ic.Cancelled():
			s.emit(offerEvent(EvMissed, o))
		default:
			ic.Reject(sipmsg.StatusBusyHere, "Busy Here")
			s.emit(offerEvent(EvDeclined, o))
		}
		return
	}
	s.calls++
	first := o.FirstLeg()
	mo, err := s.legMedia(first)
	if err != nil {
		ic.Reject(500, "Server Internal Error")
		s.emit(StationEvent{Event: EvError, RelayCall: o.RelayCall, Leg: first, Error: err.Error()})
		return
	}
	firstCall, err := ic.AcceptWithMedia(ctx, mo)
	if err != nil {
		ev := offerEvent(EvMissed, o)
		ev.Error = err.Error()
		s.emit(ev)
		return
	}
	ev := offerEvent(EvAnswered, o)
	ev.Leg, ev.Number, ev.Video, ev.Relay = first, o.Caller, firstCall.Negotiated.Video != nil, firstCall.Relay.String()
	s.emit(ev)

	legs, endAll := context.WithCancel(ctx)
	defer endAll()
	legEnded := func(leg string, c *Call, reason string) {
		s.emit(StationEvent{Event: EvLegEnded, RelayCall: o.RelayCall, Leg: leg, Reason: reason,
			Streams: c.Stats(), Recording: c.Recording()})
	}
	firstEnded := make(chan string, 1)
	go func() { firstEnded <- firstCall.Wait(legs, 0, nil) }()
	firstDone := false
	for {
		second := s.placeSecond(legs, o, firstCall)
		if second == nil {
			break
		}
		leg := o.secondLegName()
		sctx, endSecond := context.WithCancel(legs)
		secondEnded := make(chan string, 1)
		go func() { secondEnded <- second.Wait(sctx, 0, nil) }()
		var reason string
		select {
		case r := <-firstEnded:
			// The first leg's party hung up: the other leg ends with it.
			firstDone = true
			legEnded(first, firstCall, r)
			endSecond()
			legEnded(leg, second, <-secondEnded)
		case reason = <-secondEnded:
			endSecond()
			legEnded(leg, second, reason)
		}
		endSecond()
		if firstDone || !s.retryAfterEnd(legs, o, firstCall, leg, reason) {
			break
		}
	}
	// One leg down ends the other: the station bridges nothing alone.
	endAll()
	if !firstDone {
		legEnded(first, firstCall, <-firstEnded)
	}
	s.emit(StationEvent{Event: EvCallEnded, RelayCall: o.RelayCall, Direction: o.Direction})
}

// retryAfterEnd asks the interpreter (never with AutoAnswer) whether to
// call the second leg's party again after it hung up, while the first leg
// holds; the first leg ending answers no.
func (s *station) retryAfterEnd(ctx context.Context, o RelayOffer, first *Call, leg, reason string) bool {
	if s.opts.AutoAnswer || s.opts.Retry == nil {
		return false
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-first.Dialog.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	ev := StationEvent{Event: EvLegEnded, RelayCall: o.RelayCall, Leg: leg, Reason: reason}
	return s.opts.Retry(ctx, o, ev) && ctx.Err() == nil
}

// secondLegName is the leg the station places.
func (o RelayOffer) secondLegName() string {
	_, leg, _ := o.SecondLeg()
	return leg
}

// placeSecond places the relay call's second leg until it connects, the
// first leg ends, or (after a failure) the interpreter or --auto-answer
// gives up; nil when it never connected.
func (s *station) placeSecond(ctx context.Context, o RelayOffer, first *Call) *Call {
	number, leg, err := o.SecondLeg()
	if err != nil {
		ev := offerEvent(EvLegFailed, o)
		ev.Leg, ev.Error = leg, err.Error()
		s.emit(ev)
		return nil
	}
	// The first leg ending while the second rings cancels the dialling.
	dial, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		select {
		case <-first.Dialog.Done():
			stop()
		case <-dial.Done():
		}
	}()
	for {
		mo, err := s.legMedia(leg)
		if err != nil {
			s.emit(StationEvent{Event: EvError, RelayCall: o.RelayCall, Leg: leg, Error: err.Error()})
			return nil
		}
		ev := offerEvent(EvDialing, o)
		ev.Leg, ev.Number, ev.Video = leg, number, !mo.NoVideo
		s.emit(ev)
		call, err := s.ph.call(dial, number, mo, func(code int, reason string) {
			s.emit(StationEvent{Event: EvProgress, RelayCall: o.RelayCall, Leg: leg, Number: number, Status: code, Reason: reason})
		}, sipmsg.NewHeader(HeaderRelayCall, o.RelayCall))
		if err == nil {
			ev := StationEvent{Event: EvConnected, RelayCall: o.RelayCall, Leg: leg, Number: number,
				Video: call.Negotiated.Video != nil, Relay: call.Relay.String()}
			s.emit(ev)
			return call
		}
		fail := StationEvent{Event: EvLegFailed, RelayCall: o.RelayCall, Leg: leg, Number: number, Error: err.Error()}
		var ce *CallError
		if errors.As(err, &ce) {
			fail.Status, fail.Reason, fail.Detail = ce.Status, ce.Reason, ce.Warning
		}
		fail.Outcome = SecondLegOutcome(fail.Status)
		select {
		case <-first.Dialog.Done():
			fail.Outcome = "cancelled: the first leg ended"
		default:
		}
		s.emit(fail)
		if dial.Err() != nil || s.opts.AutoAnswer || s.opts.Retry == nil || !s.opts.Retry(ctx, o, fail) {
			return nil
		}
	}
}

// legMedia is what leg sends and where it records.
func (s *station) legMedia(leg string) (MediaOptions, error) {
	var mo MediaOptions
	if s.opts.Media != nil {
		var err error
		if mo, err = s.opts.Media(leg); err != nil {
			return mo, err
		}
	}
	if leg == LegHearing {
		// The telephone network takes audio only (PCMU/PCMA) over plain
		// RTP: the relay forwards what it cannot decrypt, and a carrier's
		// gateway keys no SDES, so an SRTP offer would only be refused.
		mo.NoVideo, mo.NoText, mo.Video, mo.SRTP = true, true, nil, SRTPOff
	}
	if s.opts.RecordDir != "" {
		mo.RecordDir = filepath.Join(s.opts.RecordDir, fmt.Sprintf("call%d", s.calls), leg)
		mo.RecordPrefix = leg
	}
	if mo.MediaTimeout == 0 {
		mo.MediaTimeout = s.opts.MediaTimeout
	}
	return mo, nil
}

// Text is the event as a line for people.
func (ev StationEvent) Text() string {
	who := func() string {
		if ev.Direction == DirectionInbound {
			return fmt.Sprintf("from %s (hearing party) for %s", ev.Caller, ev.User)
		}
		return fmt.Sprintf("from %s to %s", ev.Caller, ev.Dialed)
	}
	legName := func(leg string) string {
		if leg == LegHearing {
			return "hearing party"
		}
		return "deaf user"
	}
	switch ev.Event {
	case EvRegistered:
		return "registered " + ev.Detail
	case EvState:
		return "state: " + strings.ReplaceAll(ev.State, "_", " ")
	case EvOffered:
		s := fmt.Sprintf("offered %s relay call %s", ev.Direction, who())
		if ev.Direction == DirectionEmergency {
			s += fmt.Sprintf("\n  911: location %q, callback %s", ev.Location, ev.Callback)
		}
		return s
	case EvMissed:
		return fmt.Sprintf("missed the call %s (the caller hung up)", who())
	case EvDeclined:
		if ev.Error != "" {
			return fmt.Sprintf("declined a call from %s: %s", ev.Caller, ev.Error)
		}
		return fmt.Sprintf("declined the call %s", who())
	case EvAnswered:
		return fmt.Sprintf("answered: in call with the %s %s (media through relay %s)", legName(ev.Leg), ev.Number, ev.Relay)
	case EvDialing:
		media := "audio only"
		if ev.Video {
			media = "video"
		}
		return fmt.Sprintf("calling the %s %s (%s)...", legName(ev.Leg), ev.Number, media)
	case EvProgress:
		return fmt.Sprintf("  %d %s", ev.Status, ev.Reason)
	case EvConnected:
		return fmt.Sprintf("connected: the %s %s answered (media through relay %s)", legName(ev.Leg), ev.Number, ev.Relay)
	case EvLegFailed:
		if ev.Status != 0 {
			s := fmt.Sprintf("the call to the %s %s failed: %s (%d %s)", legName(ev.Leg), ev.Number, ev.Outcome, ev.Status, ev.Reason)
			if ev.Detail != "" {
				s += ": " + ev.Detail
			}
			return s
		}
		return fmt.Sprintf("the call to the %s %s failed: %s", legName(ev.Leg), ev.Number, ev.Error)
	case EvLegEnded:
		s := fmt.Sprintf("the %s's leg ended: %s", legName(ev.Leg), ev.Reason)
		for _, st := range ev.Streams {
			s += fmt.Sprintf("\n  %-5s sent %d pkts, received %d pkts, lost %d", st.Kind, st.PacketsSent, st.PacketsReceived, st.Lost)
		}
		if ev.Recording != "" {
			s += "\n  recording: " + ev.Recording
		}
		return s
	case EvCallEnded:
		return "relay call ended"
	case EvError:
		return "error: " + ev.Error
	case EvStateError:
		return "could not read the state from the MCS: " + ev.Error
	case EvSignedOut:
		return "signed out: not ready, unregistered"
	}
	return ev.Event
}
