package media

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// What the client offers (RFC 3551 static PT 0 for PCMU; a dynamic PT for
// H.264 Constrained Baseline level 3.1, packetization-mode 1).
const (
	PTPCMU             = 0
	PTH264             = 96
	ClockPCMU          = 8000
	ClockH264          = 90000
	h264ProfileLevelID = "42e01f"
	// The profile-level-id an H.264 offer without one implies (RFC 6184
	// 8.1): Baseline, level 1.0.
	h264DefaultProfileLevelID = "42000a"
)

// Negotiated is the outcome of an offer/answer exchange: one entry per
// stream kind, nil when absent or rejected (no video: an audio-only call).
type Negotiated struct {
	Audio *StreamParams `json:"audio,omitempty"`
	Video *StreamParams `json:"video,omitempty"`
	// Text is real-time text (RFC 4103), negotiated by WithText,
	// AnswerText and ParseText beside audio and video.
	Text *TextParams `json:"text,omitempty"`
}

// StreamParams is how to run one negotiated stream toward the peer.
type StreamParams struct {
	Kind      string `json:"kind"`  // KindAudio or KindVideo
	Codec     string `json:"codec"` // "PCMU" or "H264"
	PT        uint8  `json:"pt"`
	ClockRate uint32 `json:"clock_rate"`
	Fmtp      string `json:"fmtp,omitempty"`
	// Remote is the peer's RTP address; RemoteRTCP its RTCP address
	// (a=rtcp, RFC 3605; else port+1), equal to Remote with rtcp-mux.
	Remote     netip.AddrPort `json:"remote"`
	RemoteRTCP netip.AddrPort `json:"remote_rtcp"`
	RTCPMux    bool           `json:"rtcp_mux"`
	// Send and Recv are our directions after the peer's a=sendonly,
	// a=recvonly or a=inactive (and c=0.0.0.0, the old hold).
	Send bool `json:"send"`
	Recv bool `json:"recv"`
	// PLI and FIR: the peer takes those keyframe requests (a=rtcp-fb).
	PLI bool `json:"pli"`
	FIR bool `json:"fir"`
	// Encrypted: the stream runs SRTP keyed by SDES (RFC 4568) with SRTP
	// holding the keys, which never leave the process.
	Encrypted bool      `json:"encrypted"`
	SRTP      *SRTPKeys `json:"-"`
}

// BuildOffer writes the client's SDP offer: PCMU audio on audioPort and
// H.264 video on videoPort (0 leaves a kind out), both sendrecv, with
// a=rtcp-mux when rtcpMux is set and a=rtcp:port+1 otherwise. Without mux
// (or if the answer declines it) the caller must have port+1 open for RTCP.
func BuildOffer(addr netip.Addr, audioPort, videoPort int, rtcpMux bool) ([]byte, error) {
	id, err := sessionID()
	if err != nil {
		return nil, err
	}
	return buildOffer(addr, audioPort, videoPort, rtcpMux, id)
}

func buildOffer(addr netip.Addr, audioPort, videoPort int, rtcpMux bool, id uint64) ([]byte, error) {
	if audioPort == 0 && videoPort == 0 {
		return nil, fmt.Errorf("media: offer without audio or video port: %w", ErrBadConfig)
	}
	sd, err := newDescription(addr, id)
	if err != nil {
		return nil, err
	}
	if audioPort != 0 {
		md, err := mediaLine(KindAudio, audioPort, "RTP/AVP", rtcpMux, nil)
		if err != nil {
			return nil, err
		}
		md.MediaName.Formats = []string{strconv.Itoa(PTPCMU)}
		md.Attributes = append([]sdp.Attribute{
			sdp.NewAttribute("rtpmap", fmt.Sprintf("%d PCMU/%d", PTPCMU, ClockPCMU)),
			sdp.NewAttribute("ptime", "20"),
		}, md.Attributes...)
		sd.MediaDescriptions = append(sd.MediaDescriptions, md)
	}
	if videoPort != 0 {
		md, err := mediaLine(KindVideo, videoPort, "RTP/AVP", rtcpMux, nil)
		if err != nil {
			return nil, err
		}
		md.MediaName.Formats = []string{strconv.Itoa(PTH264)}
		md.Attributes = append(h264Attributes(PTH264, h264ProfileLevelID, true, true), md.Attributes...)
		sd.MediaDescriptions = append(sd.MediaDescriptions, md)
	}
	return sd.Marshal()
}

// sessionID draws the o= session id: random, 63 bits so that it stays
// positive for peers that parse it as a signed number.
func sessionID() (uint64, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("media: random sdp session id: %w", err)
	}
	return binary.BigEndian.Uint64(b[:]) >> 1, nil
}

func newDescription(addr netip.Addr, id uint64) (*sdp.SessionDescription, error) {
	if !addr.IsValid() {
		return nil, fmt.Errorf("media: sdp address %v: %w", addr, ErrBadConfig)
	}
	addr = addr.Unmap()
	addrType := "IP4"
	if addr.Is6() {
		addrType = "IP6"
	}
	host := addr.WithZone("").String()
	return &sdp.SessionDescription{
		Origin: sdp.Origin{
			Username: "z5", SessionID: id, SessionVersion: id,
			NetworkType: "IN", AddressType: addrType, UnicastAddress: host,
		},
		SessionName: "z5",
		ConnectionInformation: &sdp.ConnectionInformation{
			NetworkType: "IN", AddressType: addrType, Address: &sdp.Address{Address: host},
		},
		TimeDescriptions: []sdp.TimeDescription{{Timing: sdp.Timing{}}},
	}, nil
}

// mediaLine starts an m= section whose direction is dir (nil: sendrecv)
// with the RTCP attributes for port.
func mediaLine(kind string, port int, proto string, rtcpMux bool, dir *string) (*sdp.MediaDescription, error) {
	if port <= 0 || port > 65535 || (!rtcpMux && port == 65535) {
		return nil, fmt.Errorf("media: %s port %d (rtcp-mux %t): %w", kind, port, rtcpMux, ErrBadConfig)
	}
	d := "sendrecv"
	if dir != nil {
		d = *dir
	}
	md := &sdp.MediaDescription{
		MediaName: sdp.MediaName{Media: kind, Port: sdp.RangedPort{Value: port}, Protos: strings.Split(proto, "/")},
	}
	md.Attributes = append(md.Attributes, sdp.NewPropertyAttribute(d))
	if rtcpMux {
		md.Attributes = append(md.Attributes, sdp.NewPropertyAttribute("rtcp-mux"))
	} else {
		md.Attributes = append(md.Attributes, sdp.NewAttribute("rtcp", strconv.Itoa(port+1)))
	}
	return md, nil
}

func h264Attributes(pt uint8, profile string, pli, fir bool) []sdp.Attribute {
	p := strconv.Itoa(int(pt))
	a := []sdp.Attribute{
		sdp.NewAttribute("rtpmap", fmt.Sprintf("%d H264/%d", pt, ClockH264)),
		sdp.NewAttribute("fmtp", p+" profile-level-id="+profile+";packetization-mode=1"),
	}
	if pli {
		a = append(a, sdp.NewAttribute("rtcp-fb", p+" nack pli"))
	}
	if fir {
		a = append(a, sdp.NewAttribute("rtcp-fb", p+" ccm fir"))
	}
	return a
}

// BuildAnswer answers a peer's offer (RFC 3264): the first audio stream
// with PCMU and the first video stream with H.264 packetization-mode 1 are
// accepted on audioPort and videoPort (0 declines that kind); every other
// m= line, an H.264 offer limited to mode 0 (its single NAL units cannot
// carry our keyframes) and encrypted profiles other than SDES-keyed
// RTP/SAVP(F) are declined with port 0, in the offer's order. An RTP/SAVP(F)
// stream is answered with the first offered a=crypto suite we support and a
// fresh key (RFC 4568 7.1.1), or declined when none is usable. rtcp-mux is accepted when offered; otherwise the
// caller must have port+1 open for RTCP. It fails with ErrNoCommonCodec
// when nothing is accepted.
func BuildAnswer(offer []byte, addr netip.Addr, audioPort, videoPort int) ([]byte, Negotiated, error) {
	id, err := sessionID()
	if err != nil {
		return nil, Negotiated{}, err
	}
	return buildAnswer(offer, addr, audioPort, videoPort, id)
}

func buildAnswer(offer []byte, addr netip.Addr, audioPort, videoPort int, id uint64) ([]byte, Negotiated, error) {
	var neg Negotiated
	off, err := parseSDP(offer)
	if err != nil {
		return nil, neg, err
	}
	ans, err := newDescription(addr, id)
	if err != nil {
		return nil, neg, err
	}
	if len(off.TimeDescriptions) > 0 {
		ans.TimeDescriptions = off.TimeDescriptions // RFC 3264 6: t= as offered
	}
	var declined []string
	for i, md := range off.MediaDescriptions {
		var (
			out    *sdp.MediaDescription
			params *StreamParams
			why    string
		)
		switch kind := md.MediaName.Media; {
		case kind == KindAudio && neg.Audio == nil && audioPort != 0:
			out, params, why, err = answerMedia(off, md, audioPort)
			neg.Audio = params
		case kind == KindVideo && neg.Video == nil && videoPort != 0:
			out, params, why, err = answerMedia(off, md, videoPort)
			neg.Video = params
		default:
			why = kind + " not wanted"
		}
		if err != nil {
			return nil, Negotiated{}, fmt.Errorf("media: offer m= line %d: %w", i+1, err)
		}
		if out == nil {
			declined = append(declined, why)
			out = &sdp.MediaDescription{MediaName: sdp.MediaName{
				Media: md.MediaName.Media, Port: sdp.RangedPort{Value: 0},
				Protos: md.MediaName.Protos, Formats: md.MediaName.Formats[:min(1, len(md.MediaName.Formats))],
			}}
		}
		ans.MediaDescriptions = append(ans.MediaDescriptions, out)
	}
	if neg.Audio == nil && neg.Video == nil {
		return nil, Negotiated{}, fmt.Errorf("media: offer declined (%s): %w", strings.Join(declined, "; "), ErrNoCommonCodec)
	}
	b, err := ans.Marshal()
	if err != nil {
		return nil, Negotiated{}, fmt.Errorf("media: marshal answer: %w", err)
	}
	return b, neg, nil
}

// answerMedia accepts one offered stream on port, or returns a nil line
// and why not. err is for an offer that is broken, not merely unwanted.
func answerMedia(off *sdp.SessionDescription, md *sdp.MediaDescription, port int) (*sdp.MediaDescription, *StreamParams, string, error) {
	kind := md.MediaName.Media
	proto := strings.Join(md.MediaName.Protos, "/")
	if md.MediaName.Port.Value == 0 {
		return nil, nil, kind + " disabled by the offer", nil
	}
	if proto != "RTP/AVP" && proto != "RTP/AVPF" && !isSecureProto(proto) {
		return nil, nil, kind + " over " + proto + " not supported", nil
	}
	var (
		cryptoLine sdp.Attribute
		keys       *SRTPKeys
	)
	if isSecureProto(proto) {
		var why string
		if cryptoLine, keys, why = answerCrypto(md); keys == nil {
			return nil, nil, why, nil
		}
	}
	c := collectCodecs(md)
	var (
		pt    uint8
		attrs []sdp.Attribute
	)
	switch kind {
	case KindAudio:
		p, ok := c.pickPCMU(md)
		if !ok {
			return nil, nil, "no PCMU/8000 in the audio offer", nil
		}
		pt = p
		attrs = []sdp.Attribute{
			sdp.NewAttribute("rtpmap", fmt.Sprintf("%d PCMU/%d", pt, ClockPCMU)),
			sdp.NewAttribute("ptime", "20"),
		}
	case KindVideo:
		p, why := c.pickH264(md, true)
		if why != "" {
			return nil, nil, why, nil
		}
		pt = p
		profile := fmtpParams(c.fmtp[pt])["profile-level-id"]
		if !validProfileLevelID(profile) {
			profile = h264DefaultProfileLevelID
		}
		pli, fir := c.feedback(pt)
		attrs = h264Attributes(pt, profile, pli, fir)
	}
	params, err := remoteParams(off, md, c, kind, pt)
	if err != nil {
		return nil, nil, "", err
	}
	dir := answerDirection(params)
	out, err := mediaLine(kind, port, proto, params.RTCPMux, &dir)
	if err != nil {
		return nil, nil, "", err
	}
	out.MediaName.Formats = []string{strconv.Itoa(int(pt))}
	out.Attributes = append(attrs, out.Attributes...)
	if keys != nil {
		out.Attributes = append(out.Attributes, cryptoLine)
		params.Encrypted, params.SRTP = true, keys
	}
	return out, params, "", nil
}

// answerDirection mirrors the offerer's direction (RFC 3264 6.1).
func answerDirection(p *StreamParams) string {
	switch {
	case p.Send && p.Recv:
		return "sendrecv"
	case p.Send:
		return "sendonly"
	case p.Recv:
		return "recvonly"
	}
	return "inactive"
}

// ParseAnswer reads the peer's answer to BuildOffer's offer. A declined
// (port 0) or missing stream is nil; video the answerer limits to
// packetization-mode 0 is treated as declined. It fails with
// ErrNoCommonCodec when neither stream remains.
func ParseAnswer(answer []byte) (Negotiated, error) {
	var neg Negotiated
	sd, err := parseSDP(answer)
	if err != nil {
		return neg, err
	}
	var declined []string
	for i, md := range sd.MediaDescriptions {
		kind := md.MediaName.Media
		if (kind != KindAudio && kind != KindVideo) ||
			(kind == KindAudio && neg.Audio != nil) || (kind == KindVideo && neg.Video != nil) {
			continue
		}
		if md.MediaName.Port.Value == 0 {
			declined = append(declined, kind+" declined")
			continue
		}
		c := collectCodecs(md)
		var pt uint8
		if kind == KindAudio {
			p, ok := c.pickPCMU(md)
			if !ok {
				declined = append(declined, "no PCMU/8000 in the audio answer")
				continue
			}
			pt = p
		} else {
			// Our offer defined mode 1; an answer that omits fmtp
			// accepts it, one that says mode 0 does not.
			p, why := c.pickH264(md, false)
			if why != "" {
				declined = append(declined, why)
				continue
			}
			pt = p
		}
		params, err := remoteParams(sd, md, c, kind, pt)
		if err != nil {
			return Negotiated{}, fmt.Errorf("media: answer m= line %d: %w", i+1, err)
		}
		if kind == KindAudio {
			neg.Audio = params
		} else {
			neg.Video = params
		}
	}
	if neg.Audio == nil && neg.Video == nil {
		if len(declined) == 0 {
			declined = append(declined, "no audio or video")
		}
		return neg, fmt.Errorf("media: answer (%s): %w", strings.Join(declined, "; "), ErrNoCommonCodec)
	}
	return neg, nil
}

// maxSDPSize bounds what is parsed; a real description is a few kB.
const maxSDPSize = 64 << 10

func parseSDP(b []byte) (*sdp.SessionDescription, error) {
	if len(b) > maxSDPSize {
		return nil, fmt.Errorf("media: sdp of %d bytes, limit %d: %w", len(b), maxSDPSize, ErrBadSDP)
	}
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("media: parse sdp: %w: %w", ErrBadSDP, err)
	}
	return &sd, nil
}

// codecs is what one m= section says about its payload types.
type codecs struct {
	rtpmap map[uint8]string    // pt -> "name/rate[/channels]", name as written
	fmtp   map[uint8]string    // pt -> parameters
	fb     map[string][]string // pt or "*" -> rtcp-fb values
}

func collectCodecs(md *sdp.MediaDescription) codecs {
	c := codecs{rtpmap: map[uint8]string{}, fmtp: map[uint8]string{}, fb: map[string][]string{}}
	for _, a := range md.Attributes {
		pt, rest, _ := strings.Cut(strings.TrimSpace(a.Value), " ")
		rest = strings.TrimSpace(rest)
		if a.Key == "rtcp-fb" {
			c.fb[pt] = append(c.fb[pt], strings.ToLower(rest))
			continue
		}
		n, err := strconv.ParseUint(pt, 10, 7)
		if err != nil {
			continue
		}
		switch a.Key {
		case "rtpmap":
			c.rtpmap[uint8(n)] = rest
		case "fmtp":
			c.fmtp[uint8(n)] = rest
		}
	}
	return c
}

// formats yields the m= line's payload types in preference order.
func formats(md *sdp.MediaDescription) []uint8 {
	var pts []uint8
	for _, f := range md.MediaName.Formats {
		if n, err := strconv.ParseUint(f, 10, 7); err == nil {
			pts = append(pts, uint8(n))
		}
	}
	return pts
}

// encoding splits an rtpmap value into its lower-cased name and clock rate.
func encoding(rtpmap string) (name string, rate uint64) {
	parts := strings.Split(rtpmap, "/")
	if len(parts) < 2 {
		return "", 0
	}
	rate, _ = strconv.ParseUint(strings.TrimSpace(parts[1]), 10, 32)
	return strings.ToLower(strings.TrimSpace(parts[0])), rate
}

// pickPCMU finds PCMU/8000: by rtpmap, or static PT 0 without one (RFC
// 3551 6 lets static types go unmapped).
func (c codecs) pickPCMU(md *sdp.MediaDescription) (uint8, bool) {
	for _, pt := range formats(md) {
		rm, mapped := c.rtpmap[pt]
		if !mapped {
			if pt == PTPCMU {
				return pt, true
			}
			continue
		}
		if name, rate := encoding(rm); name == "pcmu" && rate == ClockPCMU {
			return pt, true
		}
	}
	return 0, false
}

// pickH264 finds H.264/90000 in packetization-mode 1. In an offer the mode
// must be stated (absent means 0, RFC 6184 8.1); in an answer an absent
// fmtp refers back to our offer.
func (c codecs) pickH264(md *sdp.MediaDescription, offer bool) (uint8, string) {
	sawH264 := false
	for _, pt := range formats(md) {
		if name, rate := encoding(c.rtpmap[pt]); name != "h264" || rate != ClockH264 {
			continue
		}
		sawH264 = true
		mode, stated := fmtpParams(c.fmtp[pt])["packetization-mode"]
		if mode == "1" || (!offer && !stated) {
			return pt, ""
		}
	}
	if sawH264 {
		return 0, "H.264 without packetization-mode=1"
	}
	return 0, "no H.264/90000 in the video description"
}

// feedback reports whether the peer takes PLI and FIR for pt.
func (c codecs) feedback(pt uint8) (pli, fir bool) {
	for _, key := range []string{strconv.Itoa(int(pt)), "*"} {
		for _, v := range c.fb[key] {
			f := strings.Fields(v)
			switch {
			case len(f) == 2 && f[0] == "nack" && f[1] == "pli":
				pli = true
			case len(f) == 2 && f[0] == "ccm" && f[1] == "fir":
				fir = true
			}
		}
	}
	return pli, fir
}

// fmtpParams splits "a=b;c=d" into lower-cased keys and their values.
func fmtpParams(s string) map[string]string {
	m := map[string]string{}
	for kv := range strings.SplitSeq(s, ";") {
		k, v, _ := strings.Cut(kv, "=")
		if k = strings.ToLower(strings.TrimSpace(k)); k != "" {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

func validProfileLevelID(s string) bool {
	if len(s) != 6 {
		return false
	}
	_, err := strconv.ParseUint(s, 16, 32)
	return err == nil
}

// remoteParams reads where and how the peer runs one stream: the address
// (media c= over session c=), RTCP port (a=rtcp-mux, a=rtcp, port+1),
// direction and feedback.
func remoteParams(sd *sdp.SessionDescription, md *sdp.MediaDescription, c codecs, kind string, pt uint8) (*StreamParams, error) {
	ci := md.ConnectionInformation
	if ci == nil {
		ci = sd.ConnectionInformation
	}
	if ci == nil || ci.Address == nil {
		return nil, fmt.Errorf("%s: no c= address: %w", kind, ErrBadSDP)
	}
	ip, err := netip.ParseAddr(ci.Address.Address)
	if err != nil {
		return nil, fmt.Errorf("%s: c= address %q: %w", kind, ci.Address.Address, ErrBadSDP)
	}
	ip = ip.Unmap()
	port := md.MediaName.Port.Value
	if port <= 0 || port > 65535 {
		return nil, fmt.Errorf("%s: port %d: %w", kind, port, ErrBadSDP)
	}
	p := &StreamParams{
		Kind:   kind,
		PT:     pt,
		Fmtp:   c.fmtp[pt],
		Remote: netip.AddrPortFrom(ip, uint16(port)),
	}
	if kind == KindAudio {
		p.Codec, p.ClockRate = "PCMU", ClockPCMU
	} else {
		p.Codec, p.ClockRate = "H264", ClockH264
		p.PLI, p.FIR = c.feedback(pt)
	}
	_, p.RTCPMux = md.Attribute("rtcp-mux")
	switch v, ok := md.Attribute("rtcp"); {
	case p.RTCPMux:
		p.RemoteRTCP = p.Remote
	case ok:
		p.RemoteRTCP, err = rtcpAttribute(v, ip)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kind, err)
		}
	case port < 65535:
		p.RemoteRTCP = netip.AddrPortFrom(ip, uint16(port+1))
	default:
		return nil, fmt.Errorf("%s: port 65535 leaves no port+1 for rtcp: %w", kind, ErrBadSDP)
	}
	dir := direction(md.Attributes)
	if dir == "" {
		dir = direction(sd.Attributes)
	}
	// The peer's sendonly is our receive-only, and so on.
	p.Send = dir == "" || dir == "sendrecv" || dir == "recvonly"
	p.Recv = dir == "" || dir == "sendrecv" || dir == "sendonly"
	if ip.IsUnspecified() {
		p.Send = false // c=0.0.0.0: on hold (RFC 3264 8.4, old style)
	}
	return p, nil
}

// rtcpAttribute parses a=rtcp:port [IN IP4|IP6 addr] (RFC 3605).
func rtcpAttribute(v string, def netip.Addr) (netip.AddrPort, error) {
	f := strings.Fields(v)
	if len(f) == 0 {
		return netip.AddrPort{}, fmt.Errorf("empty a=rtcp: %w", ErrBadSDP)
	}
	port, err := strconv.ParseUint(f[0], 10, 16)
	if err != nil || port == 0 {
		return netip.AddrPort{}, fmt.Errorf("a=rtcp port %q: %w", f[0], ErrBadSDP)
	}
	ip := def
	if len(f) >= 4 {
		if ip, err = netip.ParseAddr(f[3]); err != nil {
			return netip.AddrPort{}, fmt.Errorf("a=rtcp address %q: %w", f[3], ErrBadSDP)
		}
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), nil
}

func direction(attrs []sdp.Attribute) string {
	for _, a := range attrs {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return a.Key
		}
	}
	return ""
}
