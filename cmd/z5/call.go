package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/z5vrs/z5/internal/callreport"
	"github.com/z5vrs/z5/internal/cli"
	"github.com/z5vrs/z5/internal/client"
	"github.com/z5vrs/z5/internal/media"
)

// slowRegister is said when step 4 has not answered within slowNotice.
const slowRegister = "[step 4] no answer from the MCS servers yet: still trying each of them (Ctrl-C gives up)..."

// callSummary is `z5 call --json` output and the listener's per-call line.
type callSummary struct {
	Target     string              `json:"target"`
	CallID     string              `json:"call_id"`
	Server     string              `json:"mcs"`
	Relay      string              `json:"relay"`
	SetupMs    float64             `json:"setup_ms"`       // INVITE to 200 OK
	FirstRxMs  float64             `json:"first_media_ms"` // INVITE to first media packet
	DurationS  float64             `json:"duration_s"`
	EndReason  string              `json:"end_reason"`
	Negotiated media.Negotiated    `json:"negotiated"`
	Encrypted  bool                `json:"encrypted"` // every stream ran SRTP
	Streams    []media.StreamStats `json:"streams"`
	Recording  string              `json:"recording,omitempty"` // the call's .mkv
	// Requeued is the MCS's notice when it ended the call to queue the
	// caller again at the front (the interpreter vanished): z5 call
	// calls again at once, and prints the next call's summary after.
	Requeued string `json:"requeued,omitempty"`
}

// maxCallAgain bounds how many times one z5 call follows the MCS's ask to
// call again after a lost interpreter.
const maxCallAgain = 3

func summarize(call *client.Call, target, server string) callSummary {
	s := callSummary{Target: target, CallID: call.Dialog.CallID, Server: server, Relay: call.Relay.String(),
		SetupMs: ms(call.Answered.Sub(call.Started)), DurationS: time.Since(call.Answered).Seconds(),
		EndReason: call.Reason(), Negotiated: call.Negotiated, Encrypted: call.Encrypted(), Streams: call.Stats(), Recording: call.Recording()}
	if f := call.FirstMedia(); !f.IsZero() {
		s.FirstRxMs = ms(f.Sub(call.Started))
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func mediaOptions(send, record, prefix string, raw bool) (client.MediaOptions, error) {
	mo := client.MediaOptions{RecordDir: record, RecordPrefix: prefix, RecordRaw: raw}
	for _, f := range strings.Split(send, ",") {
		if f == "" {
			continue
		}
		src, kind, err := client.OpenSource(f)
		if err != nil {
			return mo, err
		}
		if kind == media.KindVideo {
			mo.Video = src
		} else {
			mo.Audio = src
		}
	}
	return mo, nil
}

func (e *env) callCmd() *cobra.Command {
	cmd := command("call NUMBER|NAME [--duration D] [--send CLIP[,CLIP]] [--record DIR [--raw]] [--stats-file F.csv] [--json]",
		"steps 4-5: a video call through the MCS relay", 0, 1<<10)
	cmd.Args = func(_ *cobra.Command, pos []string) error {
		if len(pos) != 1 {
			return usagef("call: want one NUMBER or contact NAME")
		}
		return nil
	}
	fs := cmd.Flags()
	duration := fs.Duration("duration", 0, "hang up after this long (default: until Ctrl-C or the other side hangs up)")
	send := fs.String("send", "", "what to send: an H.264 Annex B file and/or a μ-law .wav, comma-separated (default: the built-in clip)")
	record := fs.String("record", "", "record what is received into DIR as call.mkv (video and audio, plays in ffplay and VLC)")
	raw := fs.Bool("raw", false, "with --record, also keep the streams as received (call-video.h264, call-audio.wav)")
	statsFile := fs.String("stats-file", "", "write per-second call quality to this CSV file (draw it with z5 report)")
	audioOnly := fs.Bool("audio-only", false, "offer audio only")
	text := fs.Bool("text", false, "real-time text: what you type goes out as typed, what arrives is shown; with --record, both go to DIR/text.log")
	srtpMode := fs.String("srtp", "auto", "encrypt media with SRTP: auto (when signalling is TLS), on, off, or require")
	cmd.RunE = func(cmd *cobra.Command, pos []string) error {
		err := e.call(cmd.Context(), pos, duration, send, record, raw, statsFile, audioOnly, text, srtpMode)
		if err != nil && e.json {
			// A script reading --json gets an object either way; the
			// words still go to standard error.
			writeJSONError(e.stdout, pos[0], err)
		}
		return err
	}
	return cmd
}

func (e *env) call(ctx context.Context, pos []string, duration *time.Duration, send, record *string, raw *bool, statsFile *string, audioOnly, text *bool, srtpMode *string) error {
	asJSON := &e.json
	var err error
	if *raw && *record == "" {
		return usagef("call: --raw needs --record DIR")
	}
	mo, err := mediaOptions(*send, *record, "call", *raw)
	if err != nil {
		return err
	}
	if mo.SRTP, err = client.ParseSRTPMode(*srtpMode); err != nil {
		return usagef("call: --%v", err)
	}
	mo.NoVideo = *audioOnly
	if *text {
		typed, echo, stop := typedText(e.stdin)
		defer stop()
		mo.Text = &client.TextOptions{Typed: typed, Out: e.stdout, Echo: echo}
	}
	first := mo
	var stats *statsRecorder
	if *statsFile != "" {
		// Opened before dialing: a path that cannot be written fails
		// now, not after the call.
		if stats, err = newStatsRecorder(*statsFile); err != nil {
			return err
		}
		defer stats.Close()
	}
	c, err := e.openWithSteps()
	if err != nil {
		return err
	}
	stopNotice := e.whileSlow(slowRegister)
	ph, err := c.Connect(ctx, client.PhoneOptions{})
	stopNotice()
	if err != nil {
		return err
	}
	defer ph.Close()
	host, server := ph.Server()
	say := func(format string, a ...any) {
		if !*asJSON {
			fmt.Fprintf(e.stdout, format+"\n", a...)
		}
	}
	say("calling %s via %s (%s)...", pos[0], host, server)
	call, err := ph.Call(ctx, pos[0], mo, progressPrinter(func(code int, reason string) { say("%s", progressLine(code, reason)) }))
	if err != nil {
		return err
	}
	for again := 1; ; again++ {
		token, notice, requeued := e.oneCall(ctx, call, pos[0], host, server, duration, asJSON, text, stats, statsFile, say)
		if !requeued || again > maxCallAgain || ctx.Err() != nil {
			break
		}
		// The interpreter vanished: the MCS holds our place at the front
		// of the queue for a new call to the same number with its token.
		say("%s: calling %s again...", strings.TrimSuffix(notice, "."), pos[0])
		if mo, err = mediaOptions(*send, *record, fmt.Sprintf("call-again%d", again), *raw); err != nil {
			return err
		}
		mo.SRTP, mo.NoVideo = first.SRTP, first.NoVideo
		mo.Text = first.Text
		if call, err = ph.CallAgain(ctx, pos[0], token, mo, progressPrinter(func(code int, reason string) { say("%s", progressLine(code, reason)) })); err != nil {
			return err
		}
	}
	if stats != nil {
		if err := stats.Close(); err != nil {
			return err
		}
	}
	return noMediaError(c, call, summarize(call, pos[0], ""))
}

// oneCall runs one connected call of z5 call to its end and prints its
// summary; it reports whether the MCS asked to call again (requeued).
func (e *env) oneCall(ctx context.Context, call *client.Call, target, host string, server netip.AddrPort, duration *time.Duration, asJSON, text *bool,
	stats *statsRecorder, statsFile *string, say func(string, ...any)) (token, notice string, requeued bool) {
	say("connected: media through relay %s (setup %s); Ctrl-C hangs up", call.Relay, call.Answered.Sub(call.Started).Round(time.Millisecond))
	live, started, ticks := cli.NewLiveLine(e.stdout), false, 0
	reason := call.Wait(ctx, *duration, func(st []media.StreamStats) {
		if stats != nil {
			if err := stats.add(time.Since(call.Answered), st); err != nil {
				fmt.Fprintf(e.stderr, "z5: %v (the call goes on)\n", err)
			}
		}
		ticks++
		if !*asJSON && !*text && (started || sending(st) || ticks > 2) {
			// The first second may end before the first packet went
			// out: no "tx 0 kb/s" while the call is sending.
			started = true
			live.Set(statsLine(st))
		}
	})
	live.Done()
	sum := summarize(call, target, fmt.Sprintf("%s (%s)", host, server))
	sum.EndReason = reason
	token, notice, requeued = call.Dialog.Requeue()
	sum.Requeued = notice
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sum); err != nil {
			fmt.Fprintf(e.stderr, "z5: %v\n", err)
		}
	} else {
		say("call ended: %s after %.1fs", reason, sum.DurationS)
		for _, s := range sum.Streams {
			say("  %s", streamLine(s))
		}
		if sum.Recording != "" {
			say("recording: %s", sum.Recording)
		}
		if stats != nil {
			say("call quality: %s (z5 report %s --svg call.svg draws it)", *statsFile, *statsFile)
		}
	}
	return token, notice, requeued
}

// noMediaError fails a call that connected but received no media at all:
// the signalling worked, so the RTP rule (step 5) is what is missing.
func noMediaError(c *client.Client, call *client.Call, sum callSummary) error {
	var rx uint64
	for _, s := range sum.Streams {
		rx += s.PacketsReceived
	}
	if rx > 0 {
		return nil
	}
	rtp := "10000-65535"
	if p := c.Profile(); p != nil && p.Ports.RTP != "" {
		rtp = p.Ports.RTP
	}
	return &client.StepError{Step: client.StepMedia,
		Err:  fmt.Errorf("the call connected but no media arrived from the relay %s", call.Relay),
		Hint: fmt.Sprintf("allow outbound UDP ports %s to the MCS servers", rtp)}
}

// sending reports whether the stats show every sending stream's rate:
// in the first second packets may be out before a rate is measured, and
// "tx 0 kb/s" would then be wrong.
func sending(st []media.StreamStats) bool {
	some := false
	for _, s := range st {
		if s.PacketsSent > 0 && s.SendKbps == 0 {
			return false
		}
		some = some || s.SendKbps > 0
	}
	return some
}

// progressPrinter passes on provisional responses in order: one that
// arrives after a later stage was shown (100 Trying after 180 Ringing)
// is dropped, so the caller never reads them out of order. A queue
// position (182 Queued) always passes: it changes while the "please wait"
// early media (183) plays.
func progressPrinter(print func(code int, reason string)) func(int, string) {
	last := 0
	return func(code int, reason string) {
		if code < last && code != 182 {
			return
		}
		last = code
		print(code, reason)
	}
}

// progressLine words a provisional response: a relay call waits in the
// interpreter queue (182 Queued, the position updated as it moves).
func progressLine(code int, reason string) string {
	if code == 182 && strings.HasPrefix(reason, "Queued (position ") {
		pos := strings.TrimSuffix(strings.TrimPrefix(reason, "Queued (position "), ")")
		return fmt.Sprintf("  %d %s: waiting for an interpreter, number %s in the queue", code, reason, pos)
	}
	return fmt.Sprintf("  %d %s", code, reason)
}

// writeJSONError is z5 call --json's output when the call failed: the
// step, what failed and what to do, as the error says them.
func writeJSONError(w io.Writer, target string, err error) {
	out := map[string]any{"target": target, "error": err.Error()}
	var se *client.StepError
	if errors.As(err, &se) {
		out["step"], out["step_name"], out["error"] = se.Step, client.StepNames[se.Step], se.Err.Error()
		if se.Hint != "" {
			out["what_to_do"] = se.Hint
		}
	}
	var ue usageError
	if errors.As(err, &ue) {
		out["usage"] = true
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(out)
}

func statsLine(st []media.StreamStats) string {
	var parts []string
	for _, s := range st {
		parts = append(parts, fmt.Sprintf("%s tx %.0f kb/s rx %.0f kb/s loss %d jitter %.1f ms rtt %.1f ms",
			s.Kind, s.SendKbps, s.RecvKbps, s.Lost, s.JitterMs, s.RTTMs))
	}
	return "  " + strings.Join(parts, " | ")
}

func streamLine(s media.StreamStats) string {
	return fmt.Sprintf("%-5s sent %d pkts/%d frames, received %d pkts/%d frames, lost %d, jitter %.1f ms, rtt %.1f ms",
		s.Kind, s.PacketsSent, s.FramesSent, s.PacketsReceived, s.FramesReceived, s.Lost, s.JitterMs, s.RTTMs)
}

func (e *env) listenCmd() *cobra.Command {
	cmd := command("listen [--auto-answer] [--record DIR [--raw]] [--send CLIP] [--json]",
		"step 4: stay registered, take calls", 0, 0)
	cmd.Long = `Stay registered and take calls (step 4).

On a terminal each call rings on screen: press a to answer, d to decline,
and h to hang up the call in progress. --auto-answer answers every call at
once (for scripts). Without --auto-answer and without a terminal, calls
are declined (603 Decline) and the caller is told so.`
	fs := cmd.Flags()
	auto := fs.Bool("auto-answer", false, "answer every call at once (for scripts)")
	record := fs.String("record", "", "record each call's received media into DIR as callN-FROM.mkv")
	raw := fs.Bool("raw", false, "with --record, also keep the streams as received (.h264, .wav)")
	send := fs.String("send", "", "what to send in answered calls (default: the built-in clip)")
	maxCalls := fs.Int("max-calls", 0, "exit after this many calls (0: run until Ctrl-C)")
	text := fs.Bool("text", false, "real-time text in calls: what you type goes out as typed (h no longer hangs up), what arrives is shown; with --record, both go to DIR/text.log")
	srtpMode := fs.String("srtp", "auto", "SRTP in answered calls: auto and on answer an SRTP offer with SRTP and a plain one plain, require refuses a plain offer (488)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		mode, err := client.ParseSRTPMode(*srtpMode)
		if err != nil {
			return usagef("listen: --%v", err)
		}
		return e.listen(cmd.Context(), auto, record, raw, send, maxCalls, text, mode)
	}
	return cmd
}

func (e *env) listen(ctx context.Context, auto *bool, record *string, raw *bool, send *string, maxCalls *int, text *bool, srtpMode client.SRTPMode) error {
	asJSON := &e.json
	if *raw && *record == "" {
		return usagef("listen: --raw needs --record DIR")
	}
	keys, stopKeys := e.answerKeys(*auto)
	defer stopKeys()
	c, err := e.openWithSteps()
	if err != nil {
		return err
	}
	calls := make(chan *client.IncomingCall)
	stopNotice := e.whileSlow(slowRegister)
	defer stopNotice()
	ph, err := c.Connect(ctx, client.PhoneOptions{OnIncoming: func(ic *client.IncomingCall) {
		select {
		case calls <- ic:
		case <-ctx.Done():
			ic.Reject(480, "Temporarily Unavailable")
		default:
			// The loop below is in a call (one at a time): the caller
			// hears busy now rather than ringing until that call ends.
			if !*asJSON {
				fmt.Fprintf(e.stdout, "incoming call from %s: busy (486), already in a call\n", ic.From)
			}
			ic.Reject(486, "Busy Here")
		}
	}})
	if err != nil {
		return err
	}
	defer ph.Close()
	stopNotice()
	host, server := ph.Server()
	if !*asJSON {
		fmt.Fprintf(e.stdout, "listening as %s on %s (%s); Ctrl-C to stop\n", ph.AOR(), host, server)
		switch {
		case *auto:
			fmt.Fprintln(e.stdout, "calls are answered at once (--auto-answer)")
		case keys != nil:
			fmt.Fprintln(e.stdout, "when a call rings: a answers, d declines; in a call, h hangs up")
		default:
			fmt.Fprintln(e.stdout, "standard input is not a terminal: calls are declined (pass --auto-answer to answer them)")
		}
	}
	n := 0
	// Standard input as text for all calls (read once): piped, or a
	// terminal when --auto-answer leaves the keys to text alone.
	var (
		pipeText <-chan []byte
		pipeEcho bool
	)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ic := <-calls:
			n++
			if !*auto {
				if keys == nil {
					// Nobody to ring: decline politely so the caller is
					// not left waiting.
					if !*asJSON {
						fmt.Fprintf(e.stdout, "incoming call from %s declined (no terminal to ring; use --auto-answer)\n", ic.From)
					}
					ic.Reject(603, "Decline")
					continue
				}
				from := ic.From
				if ic.FromName != "" && ic.FromName != ic.From {
					from = fmt.Sprintf("%s (%s)", ic.FromName, ic.From)
				}
				if !e.ring(ctx, ic, from, keys) {
					continue
				}
			}
			mo, err := mediaOptions(*send, *record, fmt.Sprintf("call%d-%s", n, ic.From), *raw)
			if err != nil {
				return err
			}
			mo.SRTP = srtpMode
			// With --text, keys typed in a call are its text.
			var typedKeys chan []byte
			if *text {
				if keys != nil {
					typedKeys = make(chan []byte)
					mo.Text = &client.TextOptions{Typed: typedKeys, Out: e.stdout, Echo: true}
				} else {
					if pipeText == nil {
						var stop func()
						pipeText, pipeEcho, stop = typedText(e.stdin)
						defer stop() // restores a terminal when listen ends
					}
					mo.Text = &client.TextOptions{Typed: pipeText, Out: e.stdout, Echo: pipeEcho}
				}
			}
			if !*asJSON {
				fmt.Fprintf(e.stdout, "answering call from %s\n", ic.From)
			}
			call, err := ic.AcceptWithMedia(ctx, mo)
			if err != nil {
				fmt.Fprintf(e.stderr, "z5: answering the call from %s failed: %v\n", ic.From, err)
				continue
			}
			callCtx, hangup := context.WithCancel(ctx)
			keysDone := make(chan struct{})
			if keys == nil {
				close(keysDone)
			} else {
				go func() {
					defer close(keysDone)
					for {
						select {
						case k, ok := <-keys:
							if !ok {
								return
							}
							if typedKeys != nil {
								select {
								case typedKeys <- []byte{k}:
								case <-callCtx.Done():
									return
								}
								continue
							}
							if k == 'h' || k == 'H' {
								fmt.Fprintln(e.stdout, "hanging up")
								hangup()
								return
							}
						case <-callCtx.Done():
							return
						}
					}
				}()
			}
			reason := call.Wait(callCtx, 0, nil)
			hangup()
			<-keysDone
			sum := summarize(call, ic.From, fmt.Sprintf("%s (%s)", host, server))
			sum.EndReason = reason
			if *asJSON {
				json.NewEncoder(e.stdout).Encode(sum)
			} else {
				fmt.Fprintf(e.stdout, "call from %s ended: %s after %.1fs\n", ic.From, reason, sum.DurationS)
				for _, s := range sum.Streams {
					fmt.Fprintf(e.stdout, "  %s\n", streamLine(s))
				}
				if sum.Recording != "" {
					fmt.Fprintf(e.stdout, "  recording: %s\n", sum.Recording)
				}
			}
			if *maxCalls > 0 && n >= *maxCalls {
				return nil
			}
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil
			}
		}
	}
}

// ringing is the part of an incoming call ring uses.
type ringing interface {
	Cancelled() <-chan struct{}
	Reject(code int, reason string) error
}

// ring shows an incoming call and waits for a (answer) or d (decline);
// it reports whether to answer. The caller hanging up ends the ring.
func (e *env) ring(ctx context.Context, ic ringing, from string, keys <-chan byte) bool {
	// Keys pressed while nothing rang do not answer this call.
	for drained := false; !drained; {
		select {
		case <-keys:
		default:
			drained = true
		}
	}
	fmt.Fprintf(e.stdout, "\aincoming call from %s: press a to answer, d to decline\n", from)
	for {
		select {
		case <-ctx.Done():
			ic.Reject(480, "Temporarily Unavailable")
			return false
		case <-ic.Cancelled():
			fmt.Fprintf(e.stdout, "missed call from %s (the caller hung up)\n", from)
			return false
		case k, ok := <-keys:
			if !ok {
				ic.Reject(480, "Temporarily Unavailable")
				return false
			}
			switch k {
			case 'a', 'A':
				return true
			case 'd', 'D':
				fmt.Fprintf(e.stdout, "declined the call from %s\n", from)
				ic.Reject(603, "Decline")
				return false
			}
		}
	}
}

// statsRecorder keeps a call's per-second quality rows in a CSV file.
type statsRecorder struct {
	f       *os.File
	w       *callreport.Writer
	sampler callreport.Sampler
	closed  bool
}

func newStatsRecorder(path string) (*statsRecorder, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("stats file: %w", err)
	}
	r := &statsRecorder{f: f, w: callreport.NewWriter(f)}
	// The header goes first, so even a call that never connects leaves a
	// file z5 report reads.
	if err := r.w.Write(nil); err != nil {
		f.Close()
		return nil, fmt.Errorf("stats file %s: %w", path, err)
	}
	return r, nil
}

func (r *statsRecorder) add(el time.Duration, st []media.StreamStats) error {
	if err := r.w.Write(r.sampler.Rows(el, st)); err != nil {
		return fmt.Errorf("stats file %s: %w", r.f.Name(), err)
	}
	return nil
}

// Close is idempotent.
func (r *statsRecorder) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if err := r.f.Close(); err != nil {
		return fmt.Errorf("stats file %s: %w", r.f.Name(), err)
	}
	return nil
}
