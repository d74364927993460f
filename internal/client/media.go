package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/media"
)

// MediaOptions say what a call sends and where it records.
type MediaOptions struct {
	// Video and Audio are what we send; nil uses the built-in clip.
	Video media.Source
	Audio media.Source
	// NoVideo offers audio only.
	NoVideo bool
	// NoText leaves real-time text out of the offer: a voice leg to the
	// telephone network carries audio alone.
	NoText bool
	// RecordDir, when set, records what we receive to PREFIX.mkv (mode
	// 0600): Matroska with the video and audio in step, which players
	// and ffmpeg open as is.
	RecordDir    string
	RecordPrefix string
	// RecordRaw also writes the streams as received: PREFIX-video.h264
	// (Annex B) and PREFIX-audio.wav (μ-law).
	RecordRaw bool
	// MediaTimeout hangs up when nothing arrives for this long (default 20s).
	MediaTimeout time.Duration
	// SRTP says whether the call's media is encrypted.
	SRTP SRTPMode
	// Text shows and sends real-time text (RFC 4103); the text stream
	// is negotiated and transcribed to RecordDir/text.log either way.
	Text *TextOptions
}

// SRTPMode is when a call's media runs SRTP, keyed by SDES (RFC 4568) in
// the SDP. The keys travel in the signalling, so they protect anything
// only when the signalling itself is TLS. Whatever the mode, an SRTP offer
// is answered with SRTP.
type SRTPMode int

const (
	// SRTPAuto offers SRTP when the phone signals over TLS, and plain RTP
	// otherwise. A callee that refuses SRTP (488, or every stream
	// declined) is called again once with plain RTP: the summary then
	// says the call is not encrypted.
	SRTPAuto SRTPMode = iota
	// SRTPOff offers plain RTP.
	SRTPOff
	// SRTPOn offers SRTP even without TLS, and does not fall back.
	SRTPOn
	// SRTPRequire is SRTPOn, and refuses a plain offer with 488.
	SRTPRequire
)

// ParseSRTPMode reads "auto", "off", "on" or "require".
func ParseSRTPMode(s string) (SRTPMode, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return SRTPAuto, nil
	case "off":
		return SRTPOff, nil
	case "on":
		return SRTPOn, nil
	case "require":
		return SRTPRequire, nil
	}
	return SRTPAuto, fmt.Errorf("srtp %q: want auto, on, off or require", s)
}

// offersSRTP reports whether a call placed in mode m offers SRTP.
func (p *Phone) offersSRTP(m SRTPMode) bool {
	return m == SRTPOn || m == SRTPRequire || (m == SRTPAuto && p.network == "tls")
}

// OpenSource opens a clip file by its kind: .h264/.264 (Annex B H.264) for
// video, .wav/.ulaw for μ-law audio.
func OpenSource(path string) (media.Source, string, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".h264", ".264":
		s, err := media.OpenH264File(path)
		return s, media.KindVideo, err
	case ".wav", ".ulaw", ".mulaw", ".ul":
		s, err := media.OpenPCMU(path)
		return s, media.KindAudio, err
	}
	return nil, "", fmt.Errorf("%s: want an H.264 Annex B file (.h264) or μ-law audio (.wav, .ulaw)", path)
}

// Call is a call with media running.
type Call struct {
	Dialog     *Dialog
	Negotiated media.Negotiated
	Relay      netip.Addr // where media goes: the MCS relay
	Started    time.Time  // when the INVITE was sent (or received)
	Answered   time.Time

	session  *media.Session
	recorder *media.Recorder // nil when not recording
	socks    []*net.UDPConn
	timeout  time.Duration
	text     *textStream // nil when the call has no text stream

	stopOnce sync.Once
	mu       sync.Mutex
	reason   string
	firstRx  time.Time
}

// FirstMedia is when the first media packet arrived (zero if none yet).
func (c *Call) FirstMedia() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.firstRx
}

// Stats are the per-stream counters so far.
func (c *Call) Stats() []media.StreamStats { return c.session.Stats() }

// Encrypted reports whether every stream of the call runs SRTP.
func (c *Call) Encrypted() bool { return c.Negotiated.Encrypted() }

// Reason says why the call ended.
func (c *Call) Reason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reason != "" {
		return c.reason
	}
	return c.Dialog.Reason()
}

// Hangup ends the call: BYE, then stop media and release the sockets.
func (c *Call) Hangup(ctx context.Context) error {
	err := c.Dialog.Hangup(ctx)
	c.stopMedia()
	return err
}

func (c *Call) stopMedia() {
	c.stopOnce.Do(func() {
		c.session.Stop()
		for _, s := range c.socks {
			s.Close()
		}
		// Text ends after its socket (its reader returns) and before the
		// recording it writes lines into.
		if c.text != nil {
			c.text.stop()
		}
		if c.recorder != nil {
			c.recorder.Close()
		}
	})
}

// Recording is the path of the call's Matroska recording, "" when the call
// is not recorded. The file is complete once the call has ended.
func (c *Call) Recording() string {
	if c.recorder == nil {
		return ""
	}
	return c.recorder.Path()
}

// Wait runs the call until the other side hangs up, ctx ends (Ctrl-C),
// duration passes (0: no limit) or media stops arriving; then it hangs up
// if we are the ones ending it. onTick, if set, gets stats every second.
func (c *Call) Wait(ctx context.Context, duration time.Duration, onTick func([]media.StreamStats)) string {
	var limit <-chan time.Time
	if duration > 0 {
		t := time.NewTimer(duration)
		defer t.Stop()
		limit = t.C
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastRx uint64
	lastChange := time.Now()
	end := func(reason string) string {
		c.mu.Lock()
		c.reason = reason
		c.mu.Unlock()
		hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Hangup(hctx)
		return reason
	}
	for {
		select {
		case <-c.Dialog.Done():
			c.stopMedia()
			return c.Reason()
		case <-ctx.Done():
			return end("local hangup")
		case <-limit:
			return end("duration reached")
		case <-tick.C:
			st := c.Stats()
			var rx uint64
			for _, s := range st {
				rx += s.PacketsReceived
			}
			if rx != lastRx {
				lastRx, lastChange = rx, time.Now()
			} else if time.Since(lastChange) > c.timeout {
				return end(fmt.Sprintf("media timeout: nothing received for %s", c.timeout.Round(time.Second)))
			}
			if onTick != nil {
				onTick(st)
			}
		}
	}
}

// Call places a video call to target (number, contact name or SIP URI):
// step 4 signalling over the registered flow, step 5 media via the relay.
func (p *Phone) Call(ctx context.Context, target string, mo MediaOptions, onProgress func(int, string)) (*Call, error) {
	return p.call(ctx, target, mo, onProgress)
}

// call is Call with extra headers in the INVITE (a relay call's second leg
// names the relay call it belongs to).
func (p *Phone) call(ctx context.Context, target string, mo MediaOptions, onProgress func(int, string), extra ...sipmsg.Header) (*Call, error) {
	ct, err := p.c.FindContact(target)
	switch {
	case err == nil:
		target = ct.Number
	case !dialable(target):
		// Neither one contact nor a number: dialing the name would only
		// earn a 404 that reads like "nobody answered".
		return nil, err
	}
	if target == p.c.state.Number || target == "+1"+p.c.state.Number {
		return nil, stepErr(StepSIP, fmt.Errorf("call to %s: %w", target, ErrCallingSelf),
			"call another number; to test a call alone, log in a second account in another --home and run z5 listen there")
	}
	started := time.Now()
	local := p.localAddr()
	sa, err := newStreamSockets(local, !mo.NoVideo, !mo.NoText)
	if err != nil {
		return nil, stepErr(StepMedia, err, "")
	}
	srtp := p.offersSRTP(mo.SRTP)
	var (
		d   *Dialog
		neg media.Negotiated
	)
	for {
		offer, keys, err := buildCallOffer(local, sa, srtp)
		if err != nil {
			sa.close()
			return nil, stepErr(StepMedia, err, "")
		}
		// Only an automatic choice falls back to plain RTP, and only once.
		fallback := srtp && mo.SRTP == SRTPAuto
		d, err = p.Invite(ctx, target, offer, onProgress, extra...)
		var ce *CallError
		if err != nil && fallback && errors.As(err, &ce) && ce.Status == 488 {
			p.log.Info("srtp refused by the callee, calling again with plain rtp", "target", target, "status", ce.Status)
			srtp = false
			continue
		}
		if err != nil {
			sa.close()
			if errors.As(err, &ce) && ce.Status != 0 {
				return nil, stepErr(StepSIP, err, callHint(ce))
			}
			return nil, stepErr(StepSIP, err, "")
		}
		neg, err = media.ParseAnswer(d.RemoteSDP)
		if err == nil && sa.text != nil {
			// A text line the client cannot use costs the call nothing.
			neg.Text, _ = media.ParseText(d.RemoteSDP)
		}
		if err == nil {
			err = keys.ApplyAnswer(d.RemoteSDP, &neg)
		}
		if err != nil && fallback && errors.Is(err, media.ErrNoCommonCodec) {
			p.log.Info("srtp declined by the callee, calling again with plain rtp", "target", target)
			d.Hangup(context.Background())
			srtp = false
			continue
		}
		if err != nil {
			d.Hangup(context.Background())
			sa.close()
			return nil, stepErr(StepMedia, fmt.Errorf("the answer's SDP: %w", err), "")
		}
		break
	}
	call, err := p.startMedia(ctx, d, neg, sa, mo, started)
	if err != nil {
		d.Hangup(context.Background())
		return nil, err
	}
	return call, nil
}

// buildCallOffer writes the offer of a call on sa's sockets, with SDES
// keys when srtp is set (keys is nil otherwise).
func buildCallOffer(local netip.Addr, sa *streamSockets, srtp bool) ([]byte, *media.OfferedKeys, error) {
	offer, err := media.BuildOffer(local, sa.audioPort(), sa.videoPort(), true)
	if err == nil {
		offer, err = media.WithSources(offer, sa.src)
	}
	if err == nil && sa.text != nil {
		offer, err = media.WithText(offer, port(sa.text), true, sa.textSSRC, sa.src.CNAME)
	}
	var keys *media.OfferedKeys
	if err == nil && srtp {
		offer, keys, err = media.WithCrypto(offer)
	}
	return offer, keys, err
}

// dialable reports whether target can be called as it is: a SIP URI or a
// phone number (digits, an optional leading +).
func dialable(target string) bool {
	if strings.HasPrefix(target, "sip:") || strings.HasPrefix(target, "sips:") {
		return true
	}
	digits := strings.TrimPrefix(target, "+")
	if digits == "" {
		return false
	}
	for _, r := range digits {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func callHint(ce *CallError) string {
	switch {
	case ce.Status == 403 && strings.Contains(strings.ToLower(ce.Reason+" "+ce.Warning), "location"):
		if ce.Warning != "" {
			return ce.Warning
		}
		return "set your registered location first: z5 location set --street S --city C --state ST --zip Z (911 still works without one)"
	case ce.Warning != "":
		return ce.Warning
	case ce.Status == 480 && strings.Contains(strings.ToLower(ce.Reason), "interpreter"),
		ce.Status == 480 && strings.Contains(strings.ToLower(ce.Reason), "queue"):
		return "no interpreter answered within the longest wait the provider allows: try again later"
	case ce.Status == 404:
		return "check the number: no customer of this provider has it"
	case ce.Status == 408 || ce.Status == 480 && ce.Reason != "" && strings.Contains(strings.ToLower(ce.Reason), "no answer"):
		return "nobody answered: try again later"
	case errors.Is(ce, ErrUnavailable):
		return "the person you called is not signed in or did not answer: try again later"
	case errors.Is(ce, ErrBusy):
		return "the line is busy: try again later"
	case errors.Is(ce, ErrDeclined):
		return "the person you called declined the call: try again later"
	}
	return ""
}

// AcceptWithMedia answers an incoming call and starts media.
func (ic *IncomingCall) AcceptWithMedia(ctx context.Context, mo MediaOptions) (*Call, error) {
	started := time.Now()
	local := ic.p.localAddr()
	sa, err := newStreamSockets(local, !mo.NoVideo, !mo.NoText)
	if err != nil {
		ic.Reject(500, "Server Internal Error")
		return nil, stepErr(StepMedia, err, "")
	}
	answer, neg, err := media.BuildAnswer(ic.Offer, local, sa.audioPort(), sa.videoPort())
	if err == nil {
		answer, err = media.WithSources(answer, sa.src)
	}
	if err == nil && sa.text != nil {
		answer, neg.Text, err = media.AnswerText(ic.Offer, answer, port(sa.text), sa.textSSRC, sa.src.CNAME)
	}
	if err != nil {
		sa.close()
		ic.Reject(488, "Not Acceptable Here")
		return nil, stepErr(StepMedia, fmt.Errorf("the offer's SDP: %w", err), "")
	}
	if mo.SRTP == SRTPRequire && !neg.Encrypted() {
		sa.close()
		ic.Reject(488, "Not Acceptable Here (Encryption Required)")
		return nil, stepErr(StepMedia, errors.New("the caller offered media without SRTP, and this phone requires it"), "")
	}
	d, err := ic.Answer(answer)
	if err != nil {
		sa.close()
		return nil, stepErr(StepSIP, err, "")
	}
	call, err := ic.p.startMedia(ctx, d, neg, sa, mo, started)
	if err != nil {
		d.Hangup(context.Background())
		return nil, err
	}
	return call, nil
}

func (p *Phone) localAddr() netip.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, err := netip.ParseAddr(p.contact.Address.Host); err == nil {
		return a
	}
	return netip.IPv4Unspecified()
}

func (p *Phone) startMedia(ctx context.Context, d *Dialog, neg media.Negotiated, sa *streamSockets, mo MediaOptions, started time.Time) (*Call, error) {
	call := &Call{Dialog: d, Negotiated: neg, Started: started, Answered: time.Now(), timeout: mo.MediaTimeout}
	if call.timeout == 0 {
		call.timeout = 20 * time.Second
	}
	var streams []media.StreamConfig
	add := func(sp *media.StreamParams, rtp, rtcp *net.UDPConn, src media.Source, sink media.Sink, rawPath string, newRaw func(string) (media.Sink, error)) error {
		if sp == nil || rtp == nil {
			return nil
		}
		sc := media.StreamConfig{Kind: sp.Kind, PT: sp.PT, ClockRate: sp.ClockRate, Local: rtp,
			Remote: sp.Remote, RemoteRTCP: sp.RemoteRTCP, UseFIR: sp.FIR && !sp.PLI, SRTP: sp.SRTP}
		switch sp.Kind {
		case media.KindAudio:
			sc.SSRC = sa.src.Audio
		case media.KindVideo:
			sc.SSRC = sa.src.Video
		}
		if !sp.RTCPMux {
			sc.LocalRTCP = rtcp
		}
		if sp.Send {
			sc.Source = src
		}
		if sp.Recv && mo.RecordDir != "" {
			var raw media.Sink
			if mo.RecordRaw {
				var err error
				if raw, err = newRaw(rawPath); err != nil {
					return err
				}
			}
			sc.Sink = media.Tee(sink, raw)
		}
		call.Relay = sp.Remote.Addr()
		streams = append(streams, sc)
		return nil
	}
	if mo.RecordDir != "" {
		if err := os.MkdirAll(mo.RecordDir, 0o700); err != nil {
			sa.close()
			return nil, stepErr(StepMedia, err, "")
		}
	}
	prefix := mo.RecordPrefix
	if prefix == "" {
		prefix = "call"
	}
	video, audio := mo.Video, mo.Audio
	var err error
	if video == nil {
		if video, err = media.DefaultVideo(); err != nil {
			sa.close()
			return nil, stepErr(StepMedia, err, "")
		}
	}
	if audio == nil {
		if audio, err = media.DefaultAudio(); err != nil {
			sa.close()
			return nil, stepErr(StepMedia, err, "")
		}
	}
	var audioSink, videoSink media.Sink
	if mo.RecordDir != "" {
		call.recorder, err = media.NewRecorder(media.RecorderConfig{
			Path:  filepath.Join(mo.RecordDir, prefix+".mkv"),
			Video: neg.Video != nil && neg.Video.Recv && sa.video != nil,
			Audio: neg.Audio != nil && neg.Audio.Recv,
			Text:  mo.Text != nil && neg.Text != nil && neg.Text.Recv,
		})
		if err != nil {
			sa.close()
			return nil, stepErr(StepMedia, err, "")
		}
		audioSink, videoSink = call.recorder.AudioSink(), call.recorder.VideoSink()
	}
	err = errors.Join(
		add(neg.Audio, sa.audio, sa.audioRTCP, audio, audioSink, filepath.Join(mo.RecordDir, prefix+"-audio.wav"),
			func(p string) (media.Sink, error) { return media.NewWAVSink(p) }),
		add(neg.Video, sa.video, sa.videoRTCP, video, videoSink, filepath.Join(mo.RecordDir, prefix+"-video.h264"),
			func(p string) (media.Sink, error) { return media.NewH264FileSink(p) }),
	)
	if err != nil || len(streams) == 0 {
		sa.close()
		closeSinks(streams, call.recorder)
		if err == nil {
			err = errors.New("no common audio or video codec")
		}
		return nil, stepErr(StepMedia, err, "")
	}
	call.session, err = media.NewSession(media.SessionConfig{Streams: streams, CNAME: sa.src.CNAME, Logger: p.log})
	if err != nil {
		sa.close()
		closeSinks(streams, call.recorder)
		return nil, stepErr(StepMedia, err, "")
	}
	call.socks = sa.all()
	if err := call.session.Start(context.WithoutCancel(ctx)); err != nil {
		call.stopMedia()
		return nil, stepErr(StepMedia, err, "")
	}
	if neg.Text != nil && sa.text != nil {
		var rec *media.Recorder
		if mo.Text != nil {
			rec = call.recorder
		}
		if call.text, err = startText(context.WithoutCancel(ctx), sa.text, sa.textSSRC, neg.Text, mo, rec,
			fmt.Sprintf("call %s with %s", d.CallID, d.Remote)); err != nil {
			call.stopMedia()
			return nil, stepErr(StepMedia, err, "")
		}
	}
	go call.watchFirst()
	return call, nil
}

// closeSinks releases the recording files of a call that never started.
func closeSinks(streams []media.StreamConfig, rec *media.Recorder) {
	for _, sc := range streams {
		if sc.Sink != nil {
			sc.Sink.Close()
		}
	}
	if rec != nil {
		rec.Close()
	}
}

// watchFirst notes when the first packet arrives (INVITE-to-media time).
func (c *Call) watchFirst() {
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.Dialog.Done():
			return
		case <-t.C:
			for _, s := range c.session.Stats() {
				if s.PacketsReceived > 0 {
					c.mu.Lock()
					c.firstRx = time.Now()
					c.mu.Unlock()
					return
				}
			}
			if time.Since(c.Started) > 30*time.Second {
				return
			}
		}
	}
}

// streamSockets are the UDP sockets of one call: RTP on an even port and
// RTCP on the next, per stream (RTCP moves onto RTP when rtcp-mux is agreed).
type streamSockets struct {
	audio, audioRTCP *net.UDPConn
	video, videoRTCP *net.UDPConn
	// text carries real-time text (RFC 4103) from textSSRC; nil when
	// text is not offered.
	text, textRTCP *net.UDPConn
	textSSRC       uint32
	// src is what the streams send from, announced in our SDP so the
	// relay latches only on our packets.
	src media.Sources
}

func newStreamSockets(ip netip.Addr, video, text bool) (*streamSockets, error) {
	src, err := media.NewSources()
	if err != nil {
		return nil, err
	}
	sa := &streamSockets{src: src}
	if sa.audio, sa.audioRTCP, err = media.ListenRTPPair(ip); err != nil {
		return nil, err
	}
	if video {
		if sa.video, sa.videoRTCP, err = media.ListenRTPPair(ip); err != nil {
			sa.close()
			return nil, err
		}
	}
	// Every call offers real-time text unless told not to; under
	// SRTPRequire it is keyed like audio and video.
	if !text {
		return sa, nil
	}
	if sa.textSSRC, err = newTextSSRC(); err == nil {
		sa.text, sa.textRTCP, err = media.ListenRTPPair(ip)
	}
	if err != nil {
		sa.close()
		return nil, err
	}
	return sa, nil
}

func (sa *streamSockets) audioPort() int { return port(sa.audio) }
func (sa *streamSockets) videoPort() int { return port(sa.video) }

func port(c *net.UDPConn) int {
	if c == nil {
		return 0
	}
	return c.LocalAddr().(*net.UDPAddr).Port
}

func (sa *streamSockets) all() []*net.UDPConn {
	var out []*net.UDPConn
	for _, c := range []*net.UDPConn{sa.audio, sa.audioRTCP, sa.video, sa.videoRTCP, sa.text, sa.textRTCP} {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

func (sa *streamSockets) close() {
	for _, c := range sa.all() {
		c.Close()
	}
}
