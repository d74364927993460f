package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/z5vrs/z5/internal/client"
)

func (e *env) interpretCmd() *cobra.Command {
	cmd := command("interpret [--auto-answer] [--send CLIP[,CLIP]] [--record DIR] [--json]",
		"the interpreter's station: sign in as ready and take relay calls", 0, 0)
	cmd.Long = `The interpreter's station (log in first with the interpreter's credentials).

It registers like z5 listen, tells the MCS the interpreter is ready, and
takes the relay calls the interpreter center offers. Each call shows the
caller, the direction and the number dialled (for 911 also the registered
location and callback number). Once answered, the station calls the other
party through the MCS: the hearing party (audio only, through the voice
trunk) for a deaf caller, the deaf user (video) for a hearing caller. When
either party hangs up the other leg ends; after wrap-up the MCS makes the
station ready again. Ctrl-C signs out (not ready) and unregisters.

On a terminal an offered call rings: press a to answer, d to decline; if
the second call fails or its party hangs up, r calls again and e ends the
call. --auto-answer answers every offer at once and ends the call when the
second leg fails or ends.`
	fs := cmd.Flags()
	auto := fs.Bool("auto-answer", false, "answer every offered call at once (for scripts)")
	send := fs.String("send", "", "what to send: an H.264 Annex B file and/or a μ-law .wav, comma-separated (default: the built-in clip); the hearing party gets the audio only")
	record := fs.String("record", "", "record each relay call into DIR/callN/user/ and DIR/callN/hearing/")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return e.interpret(cmd.Context(), *auto, *send, *record)
	}
	return cmd
}

func (e *env) interpret(ctx context.Context, auto bool, send, record string) error {
	// Opened once to fail fast on a bad path; each leg opens its own.
	if _, err := mediaOptions(send, "", "", false); err != nil {
		return err
	}
	keys, stopKeys := e.answerKeys(auto)
	defer stopKeys()
	c, err := e.openWithSteps()
	if err != nil {
		return err
	}
	enc := json.NewEncoder(e.stdout)
	opts := client.StationOptions{
		AutoAnswer: auto,
		RecordDir:  record,
		Media:      func(string) (client.MediaOptions, error) { return mediaOptions(send, "", "", false) },
		OnEvent: func(ev client.StationEvent) {
			switch {
			case e.json:
				enc.Encode(ev)
			case ev.Event == client.EvRegistered:
				// The step 4 line above already said it.
			default:
				fmt.Fprintln(e.stdout, ev.Text())
			}
		},
	}
	if keys != nil {
		opts.Answer = func(ctx context.Context, o client.RelayOffer, cancelled <-chan struct{}) bool {
			fmt.Fprintln(e.stdout, "\apress a to answer, d to decline")
			return waitKey(ctx, keys, cancelled, 'a', 'd')
		}
		opts.Retry = func(ctx context.Context, o client.RelayOffer, _ client.StationEvent) bool {
			fmt.Fprintln(e.stdout, "press r to call again, e to end the call")
			return waitKey(ctx, keys, nil, 'r', 'e')
		}
	}
	if !e.json {
		switch {
		case auto:
			fmt.Fprintln(e.stdout, "offered calls are answered at once (--auto-answer)")
		case keys == nil:
			fmt.Fprintln(e.stdout, "standard input is not a terminal: offered calls are declined (pass --auto-answer to take them)")
		}
	}
	stopNotice := e.whileSlow(slowRegister)
	err = c.RunStation(ctx, withNotice(opts, stopNotice))
	stopNotice()
	return err
}

// withNotice ends the slow-registration notice at the station's first
// event (registered).
func withNotice(opts client.StationOptions, stop func()) client.StationOptions {
	on := opts.OnEvent
	opts.OnEvent = func(ev client.StationEvent) {
		stop()
		on(ev)
	}
	return opts
}

// waitKey waits for yes or no (either case); ctx ending, the keys closing
// or cancelled closing count as no.
func waitKey(ctx context.Context, keys <-chan byte, cancelled <-chan struct{}, yes, no byte) bool {
	// Keys pressed before the question do not answer it.
	for drained := false; !drained; {
		select {
		case <-keys:
		default:
			drained = true
		}
	}
	for {
		select {
		case <-ctx.Done():
			return false
		case <-cancelled:
			return false
		case k, ok := <-keys:
			if !ok {
				return false
			}
			switch k | 0x20 {
			case yes:
				return true
			case no:
				return false
			}
		}
	}
}
