package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/z5vrs/z5/internal/backoffice"
	"github.com/z5vrs/z5/internal/client"
	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/media"
	"github.com/z5vrs/z5/internal/profile"
	"github.com/z5vrs/z5/internal/provider"
	"github.com/z5vrs/z5/internal/pstnpeer"
	"github.com/z5vrs/z5/internal/store"
)

// The relay call's people: an interpreter (a communications assistant
// with a CA ID) and a hearing party on the built-in telephone network.
const (
	ianPass       = "ian-demo-pass"
	ianCAID       = "1001"
	hearingNumber = "2125550100"
	// relayTalk is how long the relay call runs once both legs are up.
	relayTalk = 3 * time.Second
)

// provisionInterpreter adds the demo's interpreter (CA ID 1001).
func provisionInterpreter(ctx context.Context, st store.Store) error {
	_, err := backoffice.AddInterpreter(ctx, st, "ian", "Ian", ianCAID, ianPass)
	if errors.Is(err, store.ErrExists) {
		return nil
	}
	return err
}

// relayCall runs the demo's relay call: alice (deaf, video) calls a
// hearing number; the MCS queues it and offers it to ian's station, which
// answers with video and calls the hearing party on the telephone network
// (audio only, through the trunk); after a few seconds alice hangs up and
// the station ends the voice leg. Each leg is printed as it comes up.
func relayCall(ctx context.Context, p *printer, w io.Writer, cfg *config.Config, log *slog.Logger, st store.Store,
	prof *profile.Profile, alice *client.Phone, dir string) error {
	peer, err := provider.DevTrunkPeer(cfg, log)
	if err != nil {
		return fmt.Errorf("telephone network: %w", err)
	}
	if peer == nil {
		p.f("== relay call: skipped (the config has no voice trunk over TCP)")
		return nil
	}
	if err := peer.Listen(); err != nil {
		return fmt.Errorf("telephone network: %w (is `z5d run --dev` already running? stop it first)", err)
	}
	pctx, stopPeer := context.WithCancel(ctx)
	peerDone := make(chan error, 1)
	go func() { peerDone <- peer.Serve(pctx) }()
	defer func() {
		stopPeer()
		<-peerDone
	}()

	p.f("== relay call: alice (deaf, video) calls the hearing number %s through an interpreter", hearingNumber)
	p.f("   telephone network (the trunk's far end) on %s: answers any number with a %d Hz tone", peer.Addr(), pstnpeer.ToneHz)
	c, err := client.Open(client.Options{Home: filepath.Join(dir, "clients", "ian"), UserAgent: "Z5-demo-station"})
	if err != nil {
		return err
	}
	if err := c.SetProfile(prof); err != nil {
		return err
	}
	if err := c.Login(ctx, client.LoginRequest{Username: "ian", Password: ianPass}); err != nil {
		return fmt.Errorf("interpreter login: %w", err)
	}
	p.f("   [ian]   interpreter logged in: station %s (CA ID %s)", c.State().Number, ianCAID)

	var (
		mu     sync.Mutex
		ready  = make(chan struct{})
		up     = make(chan struct{})
		over   = make(chan struct{})
		legs   = map[string]client.StationEvent{}
		once   [3]sync.Once
		signal = func(i int, ch chan struct{}) { once[i].Do(func() { close(ch) }) }
	)
	sctx, stopStation := context.WithCancel(ctx)
	stationDone := make(chan error, 1)
	go func() {
		stationDone <- c.RunStation(sctx, client.StationOptions{AutoAnswer: true, OnEvent: func(ev client.StationEvent) {
			switch ev.Event {
			case client.EvProgress, client.EvRegistered:
				return
			case client.EvLegEnded:
				mu.Lock()
				legs[ev.Leg] = ev
				mu.Unlock()
				ev.Streams, ev.Recording = nil, "" // summed up below
			}
			p.f("   [ian]   %s", ev.Text())
			switch {
			case ev.Event == client.EvState && ev.State == client.StateReady:
				signal(0, ready)
			case ev.Event == client.EvConnected:
				signal(1, up)
			case ev.Event == client.EvCallEnded, ev.Event == client.EvLegFailed:
				signal(2, over)
			}
		}})
	}()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		stopStation()
		return <-stationDone
	}
	defer stop()
	select {
	case <-ready:
	case err := <-stationDone:
		stopped = true
		return fmt.Errorf("interpreter station: %w", err)
	case <-time.After(15 * time.Second):
		return errors.New("interpreter station: not ready within 15s")
	}

	call, err := alice.Call(ctx, hearingNumber, client.MediaOptions{}, func(code int, reason string) {
		p.f("   [alice] %d %s", code, reason)
	})
	if err != nil {
		return fmt.Errorf("alice's relay call: %w", err)
	}
	p.f("   [alice] connected to the interpreter in %s; video through relay %s", call.Answered.Sub(call.Started).Round(time.Millisecond), call.Relay)
	select {
	case <-up:
	case <-over:
	case <-time.After(15 * time.Second):
	}
	p.f("   relay call running for %s ...", relayTalk)
	reason := call.Wait(ctx, relayTalk, nil)
	p.f("   [alice] call ended: %s", reason)
	select {
	case <-over:
	case <-time.After(10 * time.Second):
	}
	if err := stop(); err != nil {
		return fmt.Errorf("interpreter station: %w", err)
	}

	fmt.Fprintf(w, "\nRelay call legs (each through the MCS relay):\n")
	aliceRx := rxOf(call.Stats())
	fmt.Fprintf(w, "  alice <-> interpreter: alice received %d video and %d audio packets from the interpreter\n", aliceRx[media.KindVideo], aliceRx[media.KindAudio])
	mu.Lock()
	user, hearing := legs[client.LegUser], legs[client.LegHearing]
	mu.Unlock()
	urx, hrx := rxOf(user.Streams), rxOf(hearing.Streams)
	fmt.Fprintf(w, "  interpreter <- alice:  %d video and %d audio packets\n", urx[media.KindVideo], urx[media.KindAudio])
	fmt.Fprintf(w, "  interpreter <- hearing party: %d audio packets (the tone)\n", hrx[media.KindAudio])
	var net uint64
	for _, c := range peer.Calls() {
		net += rxOf(c.Stats)[media.KindAudio]
		fmt.Fprintf(w, "  telephone network: call from %s to %s, %s, received %d audio packets from the interpreter\n",
			c.From, c.To, c.EndReason, rxOf(c.Stats)[media.KindAudio])
	}
	if rec, err := waitRecord(ctx, st, call.Dialog.CallID); err == nil {
		fmt.Fprintf(w, "  record: %s call, CA ID %s, dialled %s, queue wait %s, conversation %s\n", rec.Direction, rec.CAID, rec.Dialed,
			rec.SessionStart.Sub(rec.QueuedAt).Round(time.Millisecond), rec.ConversationEnd.Sub(rec.ConversationStart).Round(10*time.Millisecond))
	} else {
		fmt.Fprintf(w, "  record: %v\n", err)
	}
	if aliceRx[media.KindVideo] == 0 || urx[media.KindVideo] == 0 || hrx[media.KindAudio] == 0 || net == 0 {
		return errors.New("relay call: media did not flow on every leg")
	}
	return nil
}

// rxOf is packets received per stream kind.
func rxOf(st []media.StreamStats) map[string]uint64 {
	out := map[string]uint64{}
	for _, s := range st {
		out[s.Kind] += s.PacketsReceived
	}
	return out
}

// waitRecord waits for the relay call's record to hold its conversation.
func waitRecord(ctx context.Context, st store.Store, callID string) (store.Call, error) {
	var rec store.Call
	var err error
	for range 100 {
		if rec, err = st.Call(ctx, callID); err == nil && !rec.ConversationEnd.IsZero() && !rec.SessionStart.IsZero() {
			return rec, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err == nil {
		err = fmt.Errorf("the record of %s has no conversation times yet", callID)
	}
	return rec, err
}
