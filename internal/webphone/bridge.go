package webphone

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/z5vrs/z5/internal/media"
)

// h264Fmtp is the one H.264 format both sides speak: constrained
// baseline, packetization mode 1 (what Z5 clients send and record).
const h264Fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"

var (
	videoCap = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: h264Fmtp,
		RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}}
	audioCap = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000, Channels: 1}
)

// leg is one media kind's sockets toward the relay: RTP and RTCP (port
// +1), and where they send once the SIP side is negotiated.
type leg struct {
	kind      string
	rtp, rtcp *net.UDPConn
	// sec is the stream's SDES-SRTP keying when the SIP side negotiated
	// it (nil: plain RTP); stored before params, so a reader that sees
	// params sees it.
	sec    atomic.Pointer[media.SRTPContext]
	params atomic.Pointer[media.StreamParams]
	ssrc   atomic.Uint32 // last SSRC the relay side sent (keyframe requests name it)
	// Packets forwarded each way, and those not forwarded because the leg
	// was held, for the call's log line.
	toRelay, toPage         atomic.Uint64
	heldToRelay, heldToPage atomic.Uint64
}

// bridge is one call's media: a WebRTC connection with the page and the
// sockets toward the relay, forwarding RTP both ways without transcoding
// (payload type rewritten, header extensions dropped) and keyframe
// requests both ways. The page's DTLS-SRTP ends here; toward the relay a
// stream runs SDES-SRTP when the SIP side keyed it, so packets are only
// decrypted and encrypted again, never decoded.
type bridge struct {
	g       *Gateway
	pc      *webrtc.PeerConnection
	iceConn net.PacketConn
	mux     ice.UDPMux
	audio   *leg
	video   *leg
	text    *textLeg // nil on an audio-only bridge
	// onText hands the page the text that arrives (set before start).
	onText   func(text []byte, lost int)
	aTrack   *webrtc.TrackLocalStaticRTP
	vTrack   *webrtc.TrackLocalStaticRTP
	pageSSRC atomic.Uint32 // the page's video SSRC
	// held is the interpreter's hold on the hearing leg: no RTP is
	// forwarded either way, and the page's packets dropped meanwhile are
	// numbered over, so the far end counts no loss for the pause.
	held     atomic.Bool
	releases []func()
	wg       sync.WaitGroup
	once     sync.Once
}

// openBridge sets up media for the page's WebRTC offer and returns the
// answer to send it.
// audioOnly (an interpreter's hearing leg) leaves video out on both sides.
func (t *tab) openBridge(offer string, audioOnly bool) (*bridge, string, error) {
	if offer == "" {
		return nil, "", errors.New("no offer")
	}
	g := t.g
	b := &bridge{g: g}
	var err error
	if b.audio, err = b.newLeg("audio"); err == nil && !audioOnly {
		if b.video, err = b.newLeg("video"); err == nil {
			b.text, err = newTextLeg(b)
		}
	}
	if err == nil {
		err = b.openPC()
	}
	if err != nil {
		b.close()
		return nil, "", err
	}
	answer, err := b.accept(offer)
	if err != nil {
		b.close()
		return nil, "", err
	}
	for _, l := range b.legs() {
		b.wg.Add(2)
		go b.fromRelay(l, l.rtp)
		go b.fromRelay(l, l.rtcp)
	}
	return b, answer, nil
}

// legs are the bridge's media kinds toward the relay.
func (b *bridge) legs() []*leg {
	if b.video == nil {
		return []*leg{b.audio}
	}
	return []*leg{b.audio, b.video}
}

func (b *bridge) newLeg(kind string) (*leg, error) {
	rtpc, rtcpc, err := media.ListenRTPPair(b.g.cfg.Bind)
	if err != nil {
		return nil, err
	}
	l := &leg{kind: kind, rtp: rtpc, rtcp: rtcpc}
	if b.g.deps.Relay != nil {
		for _, c := range []*net.UDPConn{rtpc, rtcpc} {
			b.releases = append(b.releases, b.g.deps.Relay.AllowLocal(c.LocalAddr().(*net.UDPAddr).AddrPort()))
		}
	}
	b.releases = append(b.releases, func() { rtpc.Close(); rtcpc.Close() })
	return l, nil
}

// openPC makes the WebRTC side: ICE-lite with one host candidate on a
// port of the RTP range, DTLS-SRTP, BUNDLE and rtcp-mux required, only
// H.264 42e01f and PCMU.
func (b *bridge) openPC() error {
	conn, err := listenInRange(b.g.cfg.Bind, b.g.cfg.RTP.Min, b.g.cfg.RTP.Max)
	if err != nil {
		return err
	}
	b.iceConn = conn
	b.mux = webrtc.NewICEUDPMux(nil, conn)
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: videoCap, PayloadType: 102}, webrtc.RTPCodecTypeVideo); err != nil {
		return err
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: audioCap, PayloadType: 0}, webrtc.RTPCodecTypeAudio); err != nil {
		return err
	}
	var se webrtc.SettingEngine
	se.SetLite(true)
	se.SetICEUDPMux(b.mux)
	se.SetIncludeLoopbackCandidate(b.g.cfg.Bind.IsLoopback())
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	se.SetICETimeouts(5*time.Second, 15*time.Second, 2*time.Second)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se))
	b.pc, err = api.NewPeerConnection(webrtc.Configuration{
		BundlePolicy:  webrtc.BundlePolicyMaxBundle,
		RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire,
	})
	if err != nil {
		return fmt.Errorf("peer connection: %w", err)
	}
	b.pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		b.g.log.Debug("web phone media", "state", st.String(), "ice_port", conn.LocalAddr().String())
	})
	b.pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		l := b.audio
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			if b.video == nil {
				return // not answered: nothing arrives
			}
			l = b.video
			b.pageSSRC.Store(uint32(tr.SSRC()))
		}
		b.wg.Add(1)
		go b.fromPage(tr, l)
	})
	return nil
}

// accept answers the page's offer with our tracks on its transceivers.
func (b *bridge) accept(offer string) (string, error) {
	if err := b.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("page offer: %w", err)
	}
	var err error
	if b.aTrack, err = webrtc.NewTrackLocalStaticRTP(audioCap, "audio", "z5"); err != nil {
		return "", err
	}
	type pair struct {
		track *webrtc.TrackLocalStaticRTP
		leg   *leg
	}
	pairs := []pair{{b.aTrack, b.audio}}
	if b.video != nil {
		if b.vTrack, err = webrtc.NewTrackLocalStaticRTP(videoCap, "video", "z5"); err != nil {
			return "", err
		}
		pairs = append(pairs, pair{b.vTrack, b.video})
	}
	for _, tr := range pairs {
		s, err := b.pc.AddTrack(tr.track)
		if err != nil {
			return "", fmt.Errorf("add %s track: %w", tr.leg.kind, err)
		}
		b.wg.Add(1)
		go b.feedback(s, tr.leg)
	}
	ans, err := b.pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("answer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(b.pc)
	if err := b.pc.SetLocalDescription(ans); err != nil {
		return "", fmt.Errorf("answer: %w", err)
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
		return "", errors.New("ICE gathering did not finish")
	}
	return b.pc.LocalDescription().SDP, nil
}

func (b *bridge) port(l *leg) int {
	if l == nil {
		return 0 // leaves the kind out of the SDP
	}
	return l.rtp.LocalAddr().(*net.UDPAddr).Port
}

// sipOffer is the SDP offer toward the relay: PCMU and H.264 on our
// sockets, rtcp-mux offered, with real-time text; with srtp every stream
// is RTP/SAVP with a=crypto and fresh keys (keys is nil otherwise), as
// the Z5 client offers it.
func (b *bridge) sipOffer(srtp bool) ([]byte, *media.OfferedKeys, error) {
	offer, err := media.BuildOffer(b.g.cfg.Bind, b.port(b.audio), b.port(b.video), true)
	if err == nil && b.text != nil {
		offer, err = media.WithText(offer, b.text.rtp.LocalAddr().(*net.UDPAddr).Port, true, b.text.ssrc, "z5-web")
	}
	if err != nil || !srtp {
		return offer, nil, err
	}
	return media.WithCrypto(offer)
}

// sipAnswer answers the relay's offer. An SDES-keyed stream is answered
// with SRTP and a fresh key of ours (media.BuildAnswer, RFC 4568), a
// plain one with RTP.
func (b *bridge) sipAnswer(offer []byte) ([]byte, media.Negotiated, error) {
	ans, neg, err := media.BuildAnswer(offer, b.g.cfg.Bind, b.port(b.audio), b.port(b.video))
	if err != nil {
		return nil, neg, err
	}
	if b.text != nil {
		if ans, neg.Text, err = media.AnswerText(offer, ans, b.text.rtp.LocalAddr().(*net.UDPAddr).Port, b.text.ssrc, "z5-web"); err != nil {
			return nil, neg, err
		}
	}
	return ans, neg, nil
}

// bridgeable reports whether an incoming offer can be answered here:
// audio or video in common, keyed or not.
func (g *Gateway) bridgeable(offer []byte) bool {
	_, neg, err := media.BuildAnswer(offer, g.cfg.Bind, 9, 9)
	return err == nil && (neg.Audio != nil || neg.Video != nil)
}

// start points the legs at the relay ports the SIP side negotiated, with
// the SRTP keys of the streams it keyed.
func (b *bridge) start(neg media.Negotiated) error {
	if neg.Audio == nil && neg.Video == nil {
		return errors.New("no media in common")
	}
	if neg.Audio != nil {
		if err := b.audio.run(neg.Audio); err != nil {
			return err
		}
	}
	if neg.Video != nil && b.video != nil {
		if err := b.video.run(neg.Video); err != nil {
			return err
		}
		// The far end's decoder starts on a keyframe: ask the page now.
		b.askKeyframe()
	}
	if neg.Text != nil && b.text != nil && b.onText != nil {
		if err := b.text.start(neg.Text, b.onText); err != nil {
			return err
		}
	}
	return nil
}

// run points l at sp, keying SRTP first when sp is encrypted.
func (l *leg) run(sp *media.StreamParams) error {
	if sp.SRTP != nil {
		sec, err := media.NewSRTPContext(sp.SRTP)
		if err != nil {
			return fmt.Errorf("%s srtp: %w", l.kind, err)
		}
		l.sec.Store(sec)
	}
	l.params.Store(sp)
	return nil
}

// hasText reports whether the call's text stream runs.
func (b *bridge) hasText() bool { return b.text != nil && b.text.running.Load() }

func (b *bridge) askKeyframe() {
	if s := b.pageSSRC.Load(); s != 0 {
		b.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: s}})
	}
}

// fromPage forwards the page's RTP of one kind to the relay.
func (b *bridge) fromPage(tr *webrtc.TrackRemote, l *leg) {
	defer b.wg.Done()
	buf := make([]byte, 1500)
	var gap seqGap
	for {
		p, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		sp := l.params.Load()
		if sp == nil || !sp.Recv && !sp.Send {
			continue // not answered yet
		}
		held := b.held.Load()
		seq, ok := gap.next(p.SequenceNumber, len(p.Payload) == 0 || held)
		if !ok {
			if held {
				l.heldToRelay.Add(1)
			}
			continue
		}
		p.SequenceNumber = seq
		p.PayloadType = sp.PT
		p.Header.Extension, p.Header.Extensions, p.Header.ExtensionProfile = false, nil, 0
		p.Header.Padding, p.PaddingSize = false, 0
		n, err := p.MarshalTo(buf)
		if err != nil {
			continue
		}
		out := buf[:n]
		if sec := l.sec.Load(); sec != nil {
			if out, err = sec.ProtectRTP(out); err != nil {
				continue
			}
		}
		if _, err := l.rtp.WriteToUDPAddrPort(out, sp.Remote); err == nil {
			l.toRelay.Add(1)
		}
	}
}

// seqGap drops the browser's padding-only packets (bandwidth probes), and
// what it sends while held, from a forwarded stream and numbers the
// packets after them on, so the far end sees no loss that is not there; a
// real gap stays a gap.
type seqGap struct {
	started bool
	skipped uint16
}

// next is the sequence number to forward a packet with, or false to drop
// it (padding, or held).
func (g *seqGap) next(seq uint16, padding bool) (uint16, bool) {
	if padding {
		if g.started {
			g.skipped++
		}
		return 0, false
	}
	g.started = true
	return seq - g.skipped, true
}

// feedback forwards the page's keyframe requests and NACKs for what we
// send it to the relay, naming the far end's SSRC.
func (b *bridge) feedback(s *webrtc.RTPSender, l *leg) {
	defer b.wg.Done()
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		sp := l.params.Load()
		far := l.ssrc.Load()
		if sp == nil || far == 0 {
			continue
		}
		var out []rtcp.Packet
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication:
				out = append(out, &rtcp.PictureLossIndication{SenderSSRC: p.SenderSSRC, MediaSSRC: far})
			case *rtcp.FullIntraRequest:
				out = append(out, &rtcp.FullIntraRequest{SenderSSRC: p.SenderSSRC, MediaSSRC: far,
					FIR: []rtcp.FIREntry{{SSRC: far, SequenceNumber: firSeq(p)}}})
			case *rtcp.TransportLayerNack:
				out = append(out, &rtcp.TransportLayerNack{SenderSSRC: p.SenderSSRC, MediaSSRC: far, Nacks: p.Nacks})
			}
		}
		if len(out) == 0 {
			continue
		}
		raw, err := rtcp.Marshal(out)
		if err != nil {
			continue
		}
		if sec := l.sec.Load(); sec != nil {
			if raw, err = sec.ProtectRTCP(raw); err != nil {
				continue
			}
		}
		conn, dst := l.rtcp, sp.RemoteRTCP
		if sp.RTCPMux {
			conn, dst = l.rtp, sp.Remote
		}
		conn.WriteToUDPAddrPort(raw, dst)
	}
}

func firSeq(p *rtcp.FullIntraRequest) uint8 {
	if len(p.FIR) > 0 {
		return p.FIR[0].SequenceNumber
	}
	return 0
}

// fromRelay reads one socket toward the relay: RTP goes to the page's
// track, keyframe requests become a PLI to the page. Only the relay's
// negotiated addresses are heard; on an SRTP stream only packets that
// authenticate with the far end's key.
func (b *bridge) fromRelay(l *leg, conn *net.UDPConn) {
	defer b.wg.Done()
	buf := make([]byte, 1500)
	plain := make([]byte, 1500)
	track := b.aTrack
	if l.kind == "video" {
		track = b.vTrack
	}
	for {
		n, src, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		sp := l.params.Load()
		if sp == nil || n < 8 {
			continue
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		if src != sp.Remote && src != sp.RemoteRTCP {
			continue
		}
		pkt, rtcpPkt := buf[:n], isRTCP(buf[:n])
		if sec := l.sec.Load(); sec != nil {
			if rtcpPkt {
				pkt, err = sec.UnprotectRTCP(plain[:0], pkt)
			} else {
				pkt, err = sec.UnprotectRTP(plain[:0], pkt)
			}
			if err != nil {
				continue // forged, corrupted, replayed or not keyed for us
			}
		}
		if rtcpPkt {
			if l.kind == "video" && wantsKeyframe(pkt) {
				b.askKeyframe()
			}
			continue
		}
		var p rtp.Packet
		if err := p.Unmarshal(pkt); err != nil || p.PayloadType != sp.PT {
			continue
		}
		l.ssrc.Store(p.SSRC)
		if b.held.Load() {
			l.heldToPage.Add(1)
			continue
		}
		if track.WriteRTP(&p) == nil {
			l.toPage.Add(1)
		}
	}
}

// isRTCP tells RTCP from RTP on a muxed port (RFC 5761 §4: RTCP packet
// types 192-223 in the second byte).
func isRTCP(b []byte) bool { return len(b) >= 2 && b[0]>>6 == 2 && b[1] >= 192 && b[1] <= 223 }

func wantsKeyframe(b []byte) bool {
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		return false
	}
	for _, p := range pkts {
		switch p.(type) {
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			return true
		}
	}
	return false
}

// close ends the call's media and waits for its goroutines; idempotent.
func (b *bridge) close() {
	b.once.Do(func() {
		if b.text != nil {
			b.text.stop()
		}
		if b.pc != nil {
			b.pc.Close()
		}
		if b.mux != nil {
			b.mux.Close()
		}
		if b.iceConn != nil {
			b.iceConn.Close()
		}
		for _, r := range b.releases {
			r()
		}
		b.wg.Wait()
		if b.text != nil {
			b.text.wg.Wait()
		}
		if b.audio != nil {
			args := []any{"audio_to_relay", b.audio.toRelay.Load(), "audio_to_page", b.audio.toPage.Load()}
			if n, m := b.audio.heldToRelay.Load(), b.audio.heldToPage.Load(); n+m > 0 {
				args = append(args, "audio_held_to_relay", n, "audio_held_to_page", m)
			}
			if b.video != nil {
				args = append(args, "video_to_relay", b.video.toRelay.Load(), "video_to_page", b.video.toPage.Load())
			}
			b.g.log.Info("web phone call media", args...)
		}
	})
}

// listenInRange binds a UDP socket on ip at a port of [lo, hi], drawn at
// random (the relay draws from the same range and skips ports in use).
func listenInRange(ip netip.Addr, lo, hi int) (net.PacketConn, error) {
	for range 64 {
		p := lo + rand.IntN(hi-lo+1)
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(p))))
		if err == nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("no free UDP port in %d-%d on %s", lo, hi, ip)
}
