// Package demo is `z5d demo`: it starts the dev stack in-process on
// loopback, provisions two customers, runs two Z5 clients through all five
// steps of the seed, places a video call between them through the MCS relay,
// and prints every step with its timing and the call's media statistics.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/z5vrs/z5/internal/backoffice"
	"github.com/z5vrs/z5/internal/cli"
	"github.com/z5vrs/z5/internal/client"
	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/location"
	"github.com/z5vrs/z5/internal/media"
	"github.com/z5vrs/z5/internal/profile"
	"github.com/z5vrs/z5/internal/provider"
	"github.com/z5vrs/z5/internal/store"
)

// Options tune the demo.
type Options struct {
	DataDir  string        // "" = a fresh temp dir, removed afterwards
	Duration time.Duration // the call's length (default 5s)
	Log      *slog.Logger  // server logs (default: warnings to stderr)
	// Config overrides the dev deployment (tests use their own address).
	Config *config.Config
}

// The demo's people.
const (
	alicePass = "alice-demo-pass"
	bobPass   = "bob-demo-pass"
	aliceHome = "2025550101"
	aliceWork = "2025550102"
	bobNumber = "3035550199"
)

type printer struct {
	w     io.Writer
	start time.Time
}

func (p *printer) f(format string, a ...any) {
	fmt.Fprintf(p.w, "%7.1fms  "+format+"\n", append([]any{float64(time.Since(p.start).Microseconds()) / 1000}, a...)...)
}

// Run runs the demo, writing its narrative to w. A non-nil error names the
// step that failed.
func Run(ctx context.Context, w io.Writer, opts Options) (err error) {
	p := &printer{w: w, start: time.Now()}
	if opts.Duration == 0 {
		opts.Duration = 5 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	dir := opts.DataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "z5-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	cfg := opts.Config
	if cfg == nil {
		cfg = config.Dev(filepath.Join(dir, "provider"))
	}
	node := cfg.Nodes()[0]

	fmt.Fprintf(w, "Z5 demo: the provider and two video phones on loopback, following the five steps of the seed.\n\n")
	p.f("== provider: starting node %q with roles %v on %s", node.Name, node.Roles, node.Address)
	n, err := provider.New(ctx, cfg, node.Name, provider.Options{Log: opts.Log})
	if err != nil {
		return fmt.Errorf("provider: %w", err)
	}
	defer n.Close()
	if err := n.Listen(); err != nil {
		return fmt.Errorf("provider: %w (is `z5d run --dev` already running? stop it first)", err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- n.Serve(sctx) }()
	defer func() {
		stop()
		if serr := <-served; serr != nil && err == nil {
			err = serr
		}
	}()
	addrs := n.Addrs()
	p.f("   DNS %s (udp+tcp), ZDial https://%s, MCS https://%s, SIP %s (tcp+udp), RTP %s, metrics http://%s",
		addrs["dns"], addrs["zdial"], addrs["mcs"], addrs["sip"], cfg.Ports.RTP, addrs["metrics"])
	prof := n.Profile()
	if err := prof.Save(filepath.Join(dir, "provider.json")); err != nil {
		return err
	}
	p.f("   provider profile: nameservers %v, CA %q, license key %s…", prof.Nameservers, "ca.pem", prof.LicenseKeys[0][:12])

	p.f("== back office: provisioning customers")
	st := n.Store()
	if err := provisionDemo(ctx, st, cfg); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	p.f("   alice: numbers %s (home) and %s (work); address book of %s holds \"Bob\"", aliceHome, aliceWork, aliceWork)
	p.f("   bob:   number %s; address book holds \"Alice\"", bobNumber)
	if err := provisionInterpreter(ctx, st); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	p.f("   ian:   interpreter, CA ID %s (station ca-%s)", ianCAID, ianCAID)

	homes := filepath.Join(dir, "clients")
	recDir := filepath.Join(dir, "recordings")
	alice, err := bringUp(ctx, p, "alice", filepath.Join(homes, "alice"), prof, aliceWork, alicePass, nil)
	if err != nil {
		return err
	}
	incoming := make(chan *client.IncomingCall, 1)
	bob, err := bringUp(ctx, p, "bob", filepath.Join(homes, "bob"), prof, "", bobPass, func(ic *client.IncomingCall) { incoming <- ic })
	if err != nil {
		alice.ph.Close()
		return err
	}
	defer alice.ph.Close()
	defer bob.ph.Close()

	p.f("== step 5: alice calls \"Bob\" from her address book; all media is proxied by the MCS")
	type answered struct {
		call *client.Call
		err  error
	}
	bobCall := make(chan answered, 1)
	go func() {
		select {
		case ic := <-incoming:
			p.f("   [bob]   incoming call from %s: answering with H.264 video + PCMU audio", ic.From)
			c, err := ic.AcceptWithMedia(ctx, client.MediaOptions{RecordDir: recDir, RecordPrefix: "bob-received"})
			bobCall <- answered{c, err}
		case <-ctx.Done():
			bobCall <- answered{nil, ctx.Err()}
		}
	}()
	aCall, err := alice.ph.Call(ctx, "Bob", client.MediaOptions{RecordDir: recDir, RecordPrefix: "alice-received"},
		func(code int, reason string) { p.f("   [alice] %d %s", code, reason) })
	if err != nil {
		return fmt.Errorf("alice's call: %w", err)
	}
	b := <-bobCall
	if b.err != nil {
		aCall.Hangup(context.Background())
		return fmt.Errorf("bob's answer: %w", b.err)
	}
	p.f("   [alice] connected in %s; media goes to relay %s (video %s, audio %s)", aCall.Answered.Sub(aCall.Started).Round(time.Millisecond),
		aCall.Relay, describe(aCall.Negotiated.Video), describe(aCall.Negotiated.Audio))
	p.f("   call running for %s ...", opts.Duration)
	go func() {
		// INVITE to first media packet, printed as soon as it is known.
		for range 200 {
			if f := aCall.FirstMedia(); !f.IsZero() {
				p.f("   [alice] first media packet %s after the INVITE", f.Sub(aCall.Started).Round(100*time.Microsecond))
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	bobDone := make(chan string, 1)
	go func() { bobDone <- b.call.Wait(ctx, 0, nil) }()
	reason := aCall.Wait(ctx, opts.Duration, nil)
	var bobReason string
	select {
	case bobReason = <-bobDone:
	case <-time.After(10 * time.Second):
		b.call.Hangup(context.Background())
		bobReason = "timed out waiting for BYE"
	}
	p.f("   [alice] call ended: %s; [bob] %s", reason, bobReason)

	fmt.Fprintf(w, "\nMedia statistics (each direction went client -> MCS relay -> client):\n")
	aStats, bStats := aCall.Stats(), b.call.Stats()
	printStats(w, "alice -> bob", aStats, bStats)
	printStats(w, "bob -> alice", bStats, aStats)

	// The provider's record of the call: what a VRS is paid by.
	var rec store.Call
	for range 50 {
		if rec, err = st.Call(ctx, aCall.Dialog.CallID); err == nil && !rec.EndedAt.IsZero() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("call record: %w", err)
	}
	fmt.Fprintf(w, "\nCall detail record: %s -> %s, answered %v, %s of conversation, ended %q\n",
		rec.From, rec.To, !rec.AnsweredAt.IsZero(), rec.EndedAt.Sub(rec.AnsweredAt).Round(10*time.Millisecond), rec.EndReason)
	for _, s := range rec.MediaStats {
		fmt.Fprintf(w, "  relay, %-6s leg, %-5s: %6d packets, %9d bytes forwarded; %d packets from unknown addresses dropped\n",
			s.Leg, s.Media, s.Packets, s.Bytes, s.Dropped)
	}
	fmt.Fprintf(w, "  (the relay counts every packet of a leg it forwarded, including the first ones that open the path and\n"+
		"  those in flight at hang-up; the phones count only what they sent and received during the call, so the\n"+
		"  totals differ by a few packets. Packets from addresses that are not the call's two phones are dropped.)\n")
	if err := verify(aStats, bStats); err != nil {
		return fmt.Errorf("step 5 (RTP media): %w", err)
	}
	fmt.Fprint(w, "\n"+recordingsNote(opts.DataDir != "", recDir, aCall.Recording(), b.call.Recording()))
	fmt.Fprintln(w)
	if err := relayCall(ctx, p, w, cfg, opts.Log, st, prof, alice.ph, dir); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%s in %s.\n", cli.Paint(cli.Colour(w), "ok", "All five steps passed"), time.Since(p.start).Round(time.Millisecond))
	return nil
}

// recordingsNote says where the call's recordings are when they outlive
// the demo (kept: --data), and otherwise that they go with its temp dir:
// a path printed there would name files already deleted.
func recordingsNote(kept bool, dir string, files ...string) string {
	if !kept {
		return "Recordings: both phones recorded the call (Matroska, video and audio); they are removed with the\n" +
			"demo's temp dir. Pass --data DIR to keep them and play them with ffplay or VLC.\n"
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = filepath.Base(f)
	}
	return fmt.Sprintf("Recordings (Matroska, video and audio; play with ffplay or VLC): %s in %s\n", strings.Join(names, ", "), dir)
}

func describe(sp *media.StreamParams) string {
	if sp == nil {
		return "none"
	}
	return fmt.Sprintf("%s at %d Hz", sp.Codec, sp.ClockRate)
}

func printStats(w io.Writer, label string, sender, receiver []media.StreamStats) {
	for _, kind := range []string{media.KindVideo, media.KindAudio} {
		tx, rx := find(sender, kind), find(receiver, kind)
		if tx == nil || rx == nil {
			continue
		}
		fmt.Fprintf(w, "  %s %-5s sent %5d pkts (%4d frames, %6.0f kb/s)  received %5d pkts (%4d frames)  lost %d  jitter %.2f ms  rtt %.2f ms\n",
			label, kind, tx.PacketsSent, tx.FramesSent, tx.SendKbps, rx.PacketsReceived, rx.FramesReceived, rx.Lost, rx.JitterMs, tx.RTTMs)
	}
}

func find(st []media.StreamStats, kind string) *media.StreamStats {
	for i := range st {
		if st[i].Kind == kind {
			return &st[i]
		}
	}
	return nil
}

// verify fails the demo when media did not flow both ways.
func verify(a, b []media.StreamStats) error {
	var errs []string
	for _, pair := range []struct {
		name     string
		tx, rx   []media.StreamStats
		kind     string
		minRatio float64
	}{
		{"alice->bob video", a, b, media.KindVideo, 0.9},
		{"bob->alice video", b, a, media.KindVideo, 0.9},
		{"alice->bob audio", a, b, media.KindAudio, 0.9},
		{"bob->alice audio", b, a, media.KindAudio, 0.9},
	} {
		tx, rx := find(pair.tx, pair.kind), find(pair.rx, pair.kind)
		if tx == nil || rx == nil {
			errs = append(errs, pair.name+": stream missing")
			continue
		}
		if tx.PacketsSent == 0 || float64(rx.PacketsReceived) < pair.minRatio*float64(tx.PacketsSent)*0.95 {
			errs = append(errs, fmt.Sprintf("%s: %d of %d packets arrived", pair.name, rx.PacketsReceived, tx.PacketsSent))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

func provisionDemo(ctx context.Context, st store.Store, cfg *config.Config) error {
	steps := []func() error{
		func() error { _, err := backoffice.AddCustomer(ctx, st, "alice", "Alice", alicePass); return err },
		func() error { _, err := backoffice.AddNumber(ctx, st, "alice", aliceHome, "home"); return err },
		func() error { _, err := backoffice.AddNumber(ctx, st, "alice", aliceWork, "work"); return err },
		func() error { _, err := backoffice.AddCustomer(ctx, st, "bob", "Bob", bobPass); return err },
		func() error { _, err := backoffice.AddNumber(ctx, st, "bob", bobNumber, ""); return err },
		// A registered location lets their numbers place calls other than 911.
		func() error {
			_, err := backoffice.SetLocation(ctx, st, "alice", location.Address{Street: "350 Fifth Avenue", City: "New York", State: "NY", Zip: "10118"}, "demo")
			return err
		},
		func() error {
			_, err := backoffice.SetLocation(ctx, st, "bob", location.Address{Street: "1 Test Plaza", City: "Springfield", State: "IL", Zip: "62701"}, "demo")
			return err
		},
		func() error {
			_, err := backoffice.AddContact(ctx, st, aliceWork, "Bob", bobNumber, cfg.MCS.MaxContacts)
			return err
		},
		func() error {
			_, err := backoffice.AddContact(ctx, st, bobNumber, "Alice", aliceWork, cfg.MCS.MaxContacts)
			return err
		},
	}
	for _, s := range steps {
		if err := s(); err != nil && !errors.Is(err, store.ErrExists) {
			return err
		}
	}
	return nil
}

type person struct {
	c  *client.Client
	ph *client.Phone
}

// bringUp runs steps 1-4 for one client, narrating each.
func bringUp(ctx context.Context, p *printer, name, home string, prof *profile.Profile, number, password string, onIncoming func(*client.IncomingCall)) (*person, error) {
	tag := fmt.Sprintf("[%s]", name)
	c, err := client.Open(client.Options{Home: home, UserAgent: "Z5-demo", OnEvent: func(ev client.Event) {
		if ev.Step == client.StepDNS {
			return // printed name by name below
		}
		p.f("   %-7s step %d %-30s %s (%s)", tag, ev.Step, client.StepNames[ev.Step]+":", ev.Message, ev.Elapsed.Round(10*time.Microsecond))
	}})
	if err != nil {
		return nil, err
	}
	p.f("== %s: steps 1-4", name)
	if err := c.SetProfile(prof); err != nil {
		return nil, err
	}
	res, err := c.Resolve(ctx)
	for _, r := range res {
		if r.Err != nil {
			p.f("   %-7s step 1 %s: %v", tag, r.Name, r.Err)
			continue
		}
		p.f("   %-7s step 1 %-24s -> %v (asked %s over %s)", tag, r.Name, r.Addrs, r.Server, r.Net)
	}
	if err != nil {
		return nil, err
	}
	if err := c.Login(ctx, client.LoginRequest{Username: name, Password: password, Number: number}); err != nil {
		return nil, err
	}
	ph, err := c.Connect(ctx, client.PhoneOptions{OnIncoming: onIncoming})
	if err != nil {
		return nil, err
	}
	return &person{c: c, ph: ph}, nil
}
