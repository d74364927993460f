package webphone

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/media"
	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/wire/zdialwire"
)

// testBridge is a bridge's sockets toward the relay (audio, video and
// text), without the page's side.
func testBridge(t *testing.T) *bridge {
	t.Helper()
	g, _ := testGateway(t, config.WebPhone{})
	return testBridgeOf(t, g)
}

func testBridgeOf(t *testing.T, g *Gateway) *bridge {
	t.Helper()
	b := &bridge{g: g}
	var err error
	if b.audio, err = b.newLeg("audio"); err == nil {
		if b.video, err = b.newLeg("video"); err == nil {
			b.text, err = newTextLeg(b)
		}
	}
	t.Cleanup(b.close)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// clientOffer is what a Z5 client with SRTP offers (internal/client
// buildCallOffer): PCMU, H.264 and text with rtcp-mux, then a=crypto.
func clientOffer(t *testing.T, port int) ([]byte, *media.OfferedKeys) {
	t.Helper()
	ip := netip.MustParseAddr("127.0.0.1")
	offer, err := media.BuildOffer(ip, port, port+2, true)
	if err == nil {
		offer, err = media.WithText(offer, port+4, true, 7, "far")
	}
	var keys *media.OfferedKeys
	if err == nil {
		offer, keys, err = media.WithCrypto(offer)
	}
	if err != nil {
		t.Fatal(err)
	}
	return offer, keys
}

// cryptoLines counts a=crypto lines per m= kind and names their suites.
func cryptoLines(sdp []byte) (map[string]int, map[string]bool, map[string]string) {
	counts, suites, protos := map[string]int{}, map[string]bool{}, map[string]string{}
	kind := ""
	for line := range strings.Lines(string(sdp)) {
		line = strings.TrimSpace(line)
		if m, ok := strings.CutPrefix(line, "m="); ok {
			f := strings.Fields(m)
			kind, protos[f[0]] = f[0], f[2]
		}
		if c, ok := strings.CutPrefix(line, "a=crypto:"); ok {
			counts[kind]++
			suites[strings.Fields(c)[1]] = true
		}
	}
	return counts, suites, protos
}

// TestSIPOfferCrypto: toward the relay the bridge offers what the Z5
// client offers: with SRTP every stream RTP/SAVP with one a=crypto per
// suite (AEAD GCM, AES_CM_128_HMAC_SHA1_80) and rtcp-mux; without, plain
// RTP/AVP and no key. A Z5 client's answer keys every stream.
func TestSIPOfferCrypto(t *testing.T) {
	b := testBridge(t)
	for _, srtp := range []bool{true, false} {
		offer, keys, err := b.sipOffer(srtp)
		if err != nil {
			t.Fatal(err)
		}
		counts, suites, protos := cryptoLines(offer)
		t.Logf("srtp %v: protos %v, a=crypto per stream %v, suites %v", srtp, protos, counts, suites)
		wantProto, wantLines := "RTP/AVP", 0
		if srtp {
			wantProto, wantLines = "RTP/SAVP", 2
		}
		for _, kind := range []string{"audio", "video", "text"} {
			if protos[kind] != wantProto || counts[kind] != wantLines {
				t.Errorf("srtp %v: %s over %s with %d a=crypto, want %s with %d", srtp, kind, protos[kind], counts[kind], wantProto, wantLines)
			}
		}
		if srtp != (keys != nil) || (srtp && !(suites[media.SuiteAEADAES128GCM] && suites[media.SuiteAESCM128HMACSHA1_80])) {
			t.Errorf("srtp %v: keys %v, suites %v", srtp, keys != nil, suites)
		}
		if strings.Count(string(offer), "a=rtcp-mux") != 3 {
			t.Errorf("srtp %v: rtcp-mux not offered on every stream:\n%s", srtp, offer)
		}
		if !srtp {
			continue
		}
		// The far end (a Z5 client) answers; the offer's keys pair with it.
		ans, far, err := media.BuildAnswer(offer, netip.MustParseAddr("127.0.0.1"), 40000, 40002)
		if err == nil {
			ans, far.Text, err = media.AnswerText(offer, ans, 40004, 9, "far")
		}
		if err != nil {
			t.Fatal(err)
		}
		neg, err := media.ParseAnswer(ans)
		if err == nil {
			neg.Text, err = media.ParseText(ans)
		}
		if err == nil {
			err = keys.ApplyAnswer(ans, &neg)
		}
		if err != nil {
			t.Fatal(err)
		}
		if !neg.Encrypted() || neg.Text == nil || !bytes.Equal(neg.Audio.SRTP.Local, far.Audio.SRTP.Remote) ||
			!bytes.Equal(neg.Video.SRTP.Remote, far.Video.SRTP.Local) || !bytes.Equal(neg.Text.SRTP.Local, far.Text.SRTP.Remote) {
			t.Errorf("negotiated: encrypted %v, text %v; keys do not pair", neg.Encrypted(), neg.Text)
		}
	}
}

// TestSIPAnswerCrypto: an SDES offer is answered with SRTP on every
// stream, the suite the offer preferred and a fresh key of the bridge's
// own; a plain offer with plain RTP; an offer whose only suite is unknown
// is not bridgeable (488 before the page rings).
func TestSIPAnswerCrypto(t *testing.T) {
	b := testBridge(t)
	offer, keys := clientOffer(t, 30000)
	onlySuite := func(suite string) []byte { return onlySuite(offer, suite) }
	plain, err := media.BuildOffer(netip.MustParseAddr("127.0.0.1"), 30000, 30002, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name       string
		offer      []byte
		bridgeable bool
		suite      string // "" : plain RTP
	}{
		{"client offer", offer, true, media.SuiteAEADAES128GCM},
		{"AES_CM only", onlySuite(media.SuiteAESCM128HMACSHA1_80), true, media.SuiteAESCM128HMACSHA1_80},
		{"GCM only", onlySuite(media.SuiteAEADAES128GCM), true, media.SuiteAEADAES128GCM},
		{"plain", plain, true, ""},
		{"unknown suite only", []byte(strings.ReplaceAll(string(onlySuite(media.SuiteAESCM128HMACSHA1_80)),
			media.SuiteAESCM128HMACSHA1_80, "AES_CM_128_HMAC_SHA1_32")), false, ""},
	} {
		if got := b.g.bridgeable(tt.offer); got != tt.bridgeable {
			t.Errorf("%s: bridgeable %v, want %v", tt.name, got, tt.bridgeable)
		}
		if !tt.bridgeable {
			continue
		}
		ans, neg, err := b.sipAnswer(tt.offer)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		counts, suites, protos := cryptoLines(ans)
		wantProto, wantLines := "RTP/AVP", 0
		if tt.suite != "" {
			wantProto, wantLines = "RTP/SAVP", 1
		}
		for _, kind := range []string{"audio", "video"} {
			if protos[kind] != wantProto || counts[kind] != wantLines {
				t.Errorf("%s: %s answered over %s with %d a=crypto, want %s with %d", tt.name, kind, protos[kind], counts[kind], wantProto, wantLines)
			}
		}
		if tt.suite == "" {
			if neg.Audio.Encrypted || neg.Video.Encrypted || len(suites) != 0 {
				t.Errorf("%s: plain offer answered with keys", tt.name)
			}
			continue
		}
		if !neg.Encrypted() || neg.Text == nil || len(suites) != 1 || !suites[tt.suite] || neg.Audio.SRTP.Suite != tt.suite {
			t.Errorf("%s: encrypted %v, text %v, suites %v, want all keyed with %s", tt.name, neg.Encrypted(), neg.Text, suites, tt.suite)
		}
		// Our key is fresh, not the offerer's echoed back.
		for _, k := range []*media.SRTPKeys{neg.Audio.SRTP, neg.Video.SRTP, neg.Text.SRTP} {
			if bytes.Equal(k.Local, k.Remote) || strings.Contains(string(ans), "inline:"+base64.StdEncoding.EncodeToString(k.Remote)) {
				t.Errorf("%s: answer reuses the offer's key", tt.name)
			}
		}
		if tt.name == "client offer" {
			// The offerer (a Z5 client) reads the answer: all streams keyed.
			far, err := media.ParseAnswer(ans)
			if err == nil {
				far.Text, err = media.ParseText(ans)
			}
			if err == nil {
				err = keys.ApplyAnswer(ans, &far)
			}
			if err != nil || !far.Encrypted() || !bytes.Equal(far.Audio.SRTP.Remote, neg.Audio.SRTP.Local) {
				t.Errorf("the client reading the answer: %v, encrypted %v", err, far.Encrypted())
			}
		}
	}
}

// onlySuite drops the a=crypto lines of other suites from sdp.
func onlySuite(sdp []byte, suite string) []byte {
	var out []string
	for line := range strings.Lines(string(sdp)) {
		if strings.HasPrefix(line, "a=crypto:") && !strings.Contains(line, " "+suite+" ") {
			continue
		}
		out = append(out, line)
	}
	return []byte(strings.Join(out, ""))
}

// TestRetryPlainAndHearingSRTP: only 488 or an answer declining every
// stream makes an SRTP offer fall back to RTP; the station's second leg
// offers SRTP to the deaf user, plain RTP to the telephone network.
func TestRetryPlainAndHearingSRTP(t *testing.T) {
	for _, tt := range []struct {
		status int
		err    error
		want   bool
	}{
		{488, nil, true},
		{486, nil, false},
		{603, nil, false},
		{404, nil, false},
		{0, fmt.Errorf("media: answer (audio declined): %w", media.ErrNoCommonCodec), true},
		{0, fmt.Errorf("media: answer m= line 1: %w", media.ErrBadSDP), false},
		{0, errors.New("timeout"), false},
	} {
		if got := retryPlain(tt.status, tt.err); got != tt.want {
			t.Errorf("retryPlain(%d, %v) = %v, want %v", tt.status, tt.err, got, tt.want)
		}
	}
	for dir, want := range map[string]bool{"inbound": true, "outbound": false, "emergency": false} {
		if got := (&relayOffer{Direction: dir}).hearingSRTP(); got != want {
			t.Errorf("%s: hearing leg offers SRTP %v, want %v", dir, got, want)
		}
	}
}

// farEnd is the relay side of a test call: one muxed socket per stream,
// keyed like a Z5 client.
type farEnd struct {
	conn *net.UDPConn
	sp   *media.StreamParams
	sec  *media.SRTPContext
}

// pageEnd is a browser's side: a pion peer connection offering PCMU and
// H.264 with a track of each, on loopback only.
func pageEnd(t *testing.T) (*webrtc.PeerConnection, *webrtc.TrackLocalStaticRTP, *webrtc.TrackLocalStaticRTP) {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: videoCap, PayloadType: 102}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: audioCap, PayloadType: 0}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{
		BundlePolicy: webrtc.BundlePolicyMaxBundle, RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	at, err := webrtc.NewTrackLocalStaticRTP(audioCap, "audio", "page")
	if err != nil {
		t.Fatal(err)
	}
	vt, err := webrtc.NewTrackLocalStaticRTP(videoCap, "video", "page")
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []*webrtc.TrackLocalStaticRTP{at, vt} {
		if _, err := pc.AddTrack(tr); err != nil {
			t.Fatal(err)
		}
	}
	return pc, at, vt
}

// pageOffer is the page's offer with its candidates gathered, as the page
// sends it to the gateway.
func pageOffer(t *testing.T, pc *webrtc.PeerConnection) string {
	t.Helper()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	return pc.LocalDescription().SDP
}

// TestBridgeSRTPRoundTrip: a page (pion, DTLS-SRTP) and a far end keyed
// by SDES (as a Z5 client answers the gateway's offer): the page's audio
// and video reach the far end as SRTP that decrypts with the SDP's keys
// and carries none of the payload in the clear, the far end's SRTP
// reaches the page decrypted with its payload unchanged, a packet sent in
// the clear or under another key never does, and the page's keyframe
// request reaches the far end as SRTCP naming its video SSRC; with each
// suite the far end may pick.
func TestBridgeSRTPRoundTrip(t *testing.T) {
	for _, suite := range []string{media.SuiteAEADAES128GCM, media.SuiteAESCM128HMACSHA1_80} {
		t.Run(suite, func(t *testing.T) { bridgeRoundTrip(t, suite) })
	}
}

func bridgeRoundTrip(t *testing.T, suite string) {
	g, _ := testGateway(t, config.WebPhone{})
	pc, pageAudio, pageVideo := pageEnd(t)
	fromBridge := make(chan *rtp.Packet, 256)
	videoSSRC := make(chan webrtc.SSRC, 1)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			videoSSRC <- tr.SSRC()
			return
		}
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			select {
			case fromBridge <- p:
			default:
			}
		}
	})
	br, answer, err := (&tab{g: g}).openBridge(pageOffer(t, pc), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(br.close)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}

	// The SIP side: the gateway offers SRTP, the far end answers it.
	sipOffer, keys, err := br.sipOffer(true)
	if err != nil {
		t.Fatal(err)
	}
	far := map[string]*farEnd{}
	for _, kind := range []string{"audio", "video"} {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		far[kind] = &farEnd{conn: c}
	}
	port := func(k string) int { return far[k].conn.LocalAddr().(*net.UDPAddr).Port }
	sipOffer = onlySuite(sipOffer, suite) // the far end sees (and picks) only this suite
	sipAnswer, farNeg, err := media.BuildAnswer(sipOffer, netip.MustParseAddr("127.0.0.1"), port("audio"), port("video"))
	if err != nil {
		t.Fatal(err)
	}
	neg, err := media.ParseAnswer(sipAnswer)
	if err == nil {
		err = keys.ApplyAnswer(sipAnswer, &neg)
	}
	if err != nil {
		t.Fatal(err)
	}
	far["audio"].sp, far["video"].sp = farNeg.Audio, farNeg.Video
	if neg.Audio.SRTP.Suite != suite || !neg.Audio.Encrypted || !neg.Video.Encrypted {
		t.Fatalf("negotiated %v, %v; want both streams keyed with %s", neg.Audio.SRTP, neg.Video.SRTP, suite)
	}
	for _, f := range far {
		if f.sec, err = media.NewSRTPContext(f.sp.SRTP); err != nil {
			t.Fatal(err)
		}
	}
	if err := br.start(neg); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(20 * time.Second)
	payload := func(kind string, i int) []byte {
		return fmt.Appendf(nil, "%s payload %04d from the page ....", kind, i)
	}

	// Page to far end: SRTP with the far end's keys, nothing in the clear.
	for _, kind := range []string{"audio", "video"} {
		f, track := far[kind], pageAudio
		if kind == "video" {
			track = pageVideo
		}
		got := 0
		buf := make([]byte, 1500)
		for i := 0; got < 20; i++ {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d SRTP packets from the page reached the far end", kind, got)
			}
			track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(i), Timestamp: uint32(i * 160),
				SSRC: 1234}, Payload: payload(kind, i)})
			f.conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			for {
				n, _, err := f.conn.ReadFromUDPAddrPort(buf)
				if err != nil {
					break
				}
				if isRTCP(buf[:n]) {
					continue
				}
				if bytes.Contains(buf[:n], []byte("from the page")) {
					t.Fatalf("%s: the page's payload crossed toward the relay in the clear", kind)
				}
				plain, err := f.sec.UnprotectRTP(nil, buf[:n])
				if err != nil {
					t.Fatalf("%s: a packet toward the relay does not decrypt with the SDP's key: %v", kind, err)
				}
				var p rtp.Packet
				if err := p.Unmarshal(plain); err != nil || p.PayloadType != f.sp.PT || !bytes.HasPrefix(p.Payload, []byte(kind+" payload")) {
					t.Fatalf("%s: decrypted packet pt %d payload %q, want pt %d", kind, p.PayloadType, p.Payload, f.sp.PT)
				}
				got++
			}
		}
		t.Logf("page -> far end: %d %s packets as SRTP (%s), each decrypted with the SDP's key", got, kind, f.sp.SRTP.Suite)
	}

	// Far end to page: forged and plain packets go nowhere, SRTP arrives.
	af := far["audio"]
	stranger, err := media.NewSRTPContext(&media.SRTPKeys{Suite: af.sp.SRTP.Suite,
		Local: bytes.Repeat([]byte{7}, len(af.sp.SRTP.Local)), Remote: bytes.Repeat([]byte{7}, len(af.sp.SRTP.Local))})
	if err != nil {
		t.Fatal(err)
	}
	send := func(sec *media.SRTPContext, seq int, body string) {
		raw, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: af.sp.PT, SequenceNumber: uint16(seq),
			Timestamp: uint32(seq * 160), SSRC: 4321}, Payload: []byte(body)}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if sec != nil {
			if raw, err = sec.ProtectRTP(raw); err != nil {
				t.Fatal(err)
			}
		}
		af.conn.WriteToUDPAddrPort(raw, af.sp.Remote)
	}
	got, bad := 0, 0
	for i := 0; got < 20; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("%d SRTP packets from the far end reached the page", got)
		}
		send(nil, 1000+3*i, "plain from far")
		send(stranger, 1001+3*i, "forged from far")
		send(af.sec, 1002+3*i, fmt.Sprintf("srtp from far %d", i))
		for wait := time.After(20 * time.Millisecond); ; {
			select {
			case p := <-fromBridge:
				if !bytes.HasPrefix(p.Payload, []byte("srtp from far")) {
					bad++
					continue
				}
				got++
				continue
			case <-wait:
			}
			break
		}
	}
	t.Logf("far end -> page: %d SRTP packets arrived decrypted, %d plain or forged ones did", got, bad)
	if bad != 0 {
		t.Errorf("%d packets sent in the clear or under another key reached the page", bad)
	}

	// The page's keyframe request for the far end's video, as SRTCP.
	vf := far["video"]
	var ssrc webrtc.SSRC
	buf := make([]byte, 1500)
	for pli := false; !pli; {
		if time.Now().After(deadline) {
			t.Fatal("no SRTCP keyframe request reached the far end")
		}
		raw, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: vf.sp.PT, SequenceNumber: 1, SSRC: 9999},
			Payload: []byte{0x65, 1, 2, 3}}).Marshal()
		if enc, err := vf.sec.ProtectRTP(raw); err == nil {
			vf.conn.WriteToUDPAddrPort(enc, vf.sp.Remote)
		}
		select {
		case ssrc = <-videoSSRC:
		default:
		}
		if ssrc != 0 {
			pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(ssrc)}})
		}
		vf.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		for {
			n, _, err := vf.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				break
			}
			if !isRTCP(buf[:n]) {
				continue
			}
			plain, err := vf.sec.UnprotectRTCP(nil, buf[:n])
			if err != nil {
				t.Fatalf("RTCP toward the relay does not decrypt with the SDP's key: %v", err)
			}
			if !wantsKeyframe(plain) {
				continue
			}
			pkts, _ := rtcp.Unmarshal(plain)
			if p, ok := pkts[0].(*rtcp.PictureLossIndication); !ok || p.MediaSSRC != 9999 {
				t.Fatalf("keyframe request %v, want a PLI for SSRC 9999", pkts)
			}
			pli = true
		}
	}
}

// fakeCallee is a SIP server on loopback TCP that takes the tab's
// registration and answers each INVITE as answer decides (a status, or
// 200 with an SDP body), noting the offers and BYEs it gets.
type fakeCallee struct {
	addr   netip.AddrPort
	mu     sync.Mutex
	offers []string
	byes   int
}

func startCallee(t *testing.T, answer func(offer []byte) (int, []byte)) *fakeCallee {
	t.Helper()
	f := &fakeCallee{}
	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := sipgo.NewClient(ua)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = netip.MustParseAddrPort(l.Addr().String())
	contact := sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", Host: f.addr.Addr().String(), Port: int(f.addr.Port()),
		UriParams: sipmsg.NewParams()}}
	contact.Address.UriParams.Add("transport", "tcp")
	dsrv := sipgo.NewDialogServerCache(cl, contact)
	ok := func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		tx.Respond(sipmsg.NewResponseFromRequest(req, 200, "OK", nil))
	}
	srv.OnOptions(ok)
	srv.OnRegister(ok)
	srv.OnInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		f.mu.Lock()
		f.offers = append(f.offers, string(req.Body()))
		f.mu.Unlock()
		status, body := answer(req.Body())
		if status != 200 {
			tx.Respond(sipmsg.NewResponseFromRequest(req, status, "Not Acceptable Here", nil))
			return
		}
		dlg, err := dsrv.ReadInvite(req, tx)
		if err != nil {
			return
		}
		dlg.Respond(200, "OK", body, sipmsg.NewHeader("Content-Type", "application/sdp"))
	})
	srv.OnAck(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) { dsrv.ReadAck(req, tx) })
	srv.OnBye(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		f.mu.Lock()
		f.byes++
		f.mu.Unlock()
		dsrv.ReadBye(req, tx)
	})
	done := make(chan struct{})
	go func() { defer close(done); srv.ServeTCP(l) }()
	t.Cleanup(func() { l.Close(); ua.Close(); <-done })
	return f
}

// TestInviteFallsBackToPlain: the page's call offers SRTP; a far end that
// refuses it with 488, or answers declining every stream (then hung up),
// is called once more with plain RTP; one that keys it gets one INVITE;
// a 488 to the plain offer too ends the call (no third try).
func TestInviteFallsBackToPlain(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	plainAnswer := func(offer []byte) []byte {
		ans, _, err := media.BuildAnswer(offer, lo, 40000, 40002)
		if err != nil {
			t.Error(err)
		}
		return ans
	}
	declined := []byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 0 RTP/SAVP 0\r\nm=video 0 RTP/SAVP 96\r\nm=text 0 RTP/SAVP 98\r\n")
	for _, tt := range []struct {
		name      string
		answer    func(offer []byte) (int, []byte)
		offers    []string // proto of each INVITE's audio
		byes      int
		status    int // the call's final refusal, 0: answered
		encrypted bool
	}{
		{"488 then plain", func(o []byte) (int, []byte) {
			if bytes.Contains(o, []byte("RTP/SAVP")) {
				return 488, nil
			}
			return 200, plainAnswer(o)
		}, []string{"RTP/SAVP", "RTP/AVP"}, 0, 0, false},
		{"all declined then plain", func(o []byte) (int, []byte) {
			if bytes.Contains(o, []byte("RTP/SAVP")) {
				return 200, declined
			}
			return 200, plainAnswer(o)
		}, []string{"RTP/SAVP", "RTP/AVP"}, 1, 0, false},
		{"keyed", func(o []byte) (int, []byte) { return 200, plainAnswer(o) }, []string{"RTP/SAVP"}, 0, 0, true},
		{"488 to both", func(o []byte) (int, []byte) { return 488, nil }, []string{"RTP/SAVP", "RTP/AVP"}, 0, 488, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			callee := startCallee(t, tt.answer)
			g, err := New(Config{WebPhone: config.DefaultWebPhone(), Bind: lo, RTP: config.PortRange{Min: 20000, Max: 39999}, Domain: "mcs.z5.test"},
				Deps{Sessions: fakeSessions{}, API: http404{}, ZDial: http404{}, SIP: func() netip.AddrPort { return callee.addr }})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tb := &tab{g: g, ctx: ctx, cancel: cancel, sess: store.Session{Number: "2025550102"}}
			if tb.ua, err = newSIPUA(ctx, tb, msg{SIP: &zdialwire.SIPCreds{Username: "u", Password: "p"}, License: "lic",
				Instance: "urn:uuid:00000000-0000-0000-0000-000000000001"}); err != nil {
				t.Fatal(err)
			}
			defer func() { cancel(); tb.ua.close() }()
			br := testBridgeOf(t, g)
			c := &call{leg: legMain, ctx: ctx}
			sess, neg, err := tb.invite(c, br, "3035550199", true, nil)
			status := 0
			if de, ok := errors.AsType[*sipgo.ErrDialogResponse](err); ok {
				status = int(de.Res.StatusCode)
			} else if err != nil {
				t.Fatal(err)
			}
			if sess != nil {
				bctx, bcancel := context.WithTimeout(context.Background(), 2*time.Second)
				sess.Bye(bctx)
				bcancel()
				sess.Close()
			}
			callee.mu.Lock()
			var protos []string
			for _, o := range callee.offers {
				_, _, p := cryptoLines([]byte(o))
				protos = append(protos, p["audio"])
			}
			byes := callee.byes
			if sess != nil {
				byes-- // ours, above
			}
			callee.mu.Unlock()
			t.Logf("offers %v, BYEs before the answer %d, final status %d, encrypted %v", protos, byes, status, neg.Encrypted())
			if strings.Join(protos, " ") != strings.Join(tt.offers, " ") || byes != tt.byes || status != tt.status ||
				neg.Encrypted() != tt.encrypted || (tt.status == 0) != (sess != nil) {
				t.Errorf("offers %v, BYEs %d, status %d, encrypted %v; want %v, %d, %d, %v", protos, byes, status, neg.Encrypted(),
					tt.offers, tt.byes, tt.status, tt.encrypted)
			}
		})
	}
}
