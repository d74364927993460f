package media

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// Real-time text (RFC 4103): T.140 in RTP, with RFC 2198 redundancy
// (red/1000 carrying t140/1000) preferred. Every call offers it; the
// answerer takes it beside audio and video.
const (
	KindText  = "text"
	PTT140    = 98
	PTRed     = 100
	ClockText = 1000
)

// TextParams is a negotiated text stream: StreamParams plus the red
// payload type (0 when the peer takes plain t140 only).
type TextParams struct {
	StreamParams
	RedPT uint8 `json:"red_pt,omitempty"`
}

// textAttributes are the rtpmap and fmtp lines for red and t140; the red
// fmtp names the t140 payload type once per generation (RFC 4103 4.1).
func textAttributes(redPT, t140PT uint8) []sdp.Attribute {
	t := strconv.Itoa(int(t140PT))
	var a []sdp.Attribute
	if redPT != 0 {
		a = append(a,
			sdp.NewAttribute("rtpmap", fmt.Sprintf("%d red/%d", redPT, ClockText)),
			sdp.NewAttribute("fmtp", fmt.Sprintf("%d %s/%s/%s", redPT, t, t, t)))
	}
	return append(a, sdp.NewAttribute("rtpmap", fmt.Sprintf("%d t140/%d", t140PT, ClockText)))
}

// WithText adds an m=text line to an offer this end wrote: red/1000 then
// t140/1000 on port, sendrecv, with ssrc announced (0: none). The line
// goes before video, not last: Linphone 5.1 (liblinphone
// StreamsGroup::render) dereferences the empty slot a declined m-line
// leaves when an accepted one follows it, and crashes as it answers. It
// accepts any text it is offered but declines video whenever it has no
// camera or display, so audio, text, video puts the line it declines last.
// m-line order is the offerer's choice (RFC 3264 section 5).
func WithText(offer []byte, port int, rtcpMux bool, ssrc uint32, cname string) ([]byte, error) {
	sd, err := parseSDP(offer)
	if err != nil {
		return nil, err
	}
	md, err := mediaLine(KindText, port, "RTP/AVP", rtcpMux, nil)
	if err != nil {
		return nil, err
	}
	md.MediaName.Formats = []string{strconv.Itoa(PTRed), strconv.Itoa(PTT140)}
	md.Attributes = append(append(textAttributes(PTRed, PTT140), md.Attributes...), ssrcAttributes(ssrc, cname)...)
	at := len(sd.MediaDescriptions)
	for i, m := range sd.MediaDescriptions {
		if m.MediaName.Media == KindVideo {
			at = i
			break
		}
	}
	sd.MediaDescriptions = slices.Insert(sd.MediaDescriptions, at, md)
	b, err := sd.Marshal()
	if err != nil {
		return nil, fmt.Errorf("media: marshal offer with text: %w", err)
	}
	return b, nil
}

func ssrcAttributes(ssrc uint32, cname string) []sdp.Attribute {
	if ssrc == 0 {
		return nil
	}
	v := strconv.FormatUint(uint64(ssrc), 10)
	if cname != "" {
		v += " cname:" + cname
	}
	return []sdp.Attribute{sdp.NewAttribute("ssrc", v)}
}

// AnswerText takes the first m=text line of offer into answer (which
// BuildAnswer wrote, declining it): on port, with red when offered. With
// no usable text offer it returns answer unchanged and nil.
func AnswerText(offer, answer []byte, port int, ssrc uint32, cname string) ([]byte, *TextParams, error) {
	off, err := parseSDP(offer)
	if err != nil {
		return nil, nil, err
	}
	ans, err := parseSDP(answer)
	if err != nil {
		return nil, nil, err
	}
	if len(ans.MediaDescriptions) != len(off.MediaDescriptions) {
		return nil, nil, fmt.Errorf("media: answer has %d m= lines for %d offered: %w",
			len(ans.MediaDescriptions), len(off.MediaDescriptions), ErrBadConfig)
	}
	for i, md := range off.MediaDescriptions {
		if md.MediaName.Media != KindText {
			continue
		}
		proto := strings.Join(md.MediaName.Protos, "/")
		if md.MediaName.Port.Value == 0 || (proto != "RTP/AVP" && proto != "RTP/AVPF" && !isSecureProto(proto)) {
			return answer, nil, nil
		}
		// SRTP text is keyed like audio and video (sdes.go); without a
		// usable a=crypto it stays declined.
		var (
			cryptoLine sdp.Attribute
			keys       *SRTPKeys
		)
		if isSecureProto(proto) {
			if cryptoLine, keys, _ = answerCrypto(md); keys == nil {
				return answer, nil, nil
			}
		}
		tp, ok, err := textParams(off, md)
		if err != nil || !ok {
			return answer, nil, err
		}
		dir := answerDirection(&tp.StreamParams)
		out, err := mediaLine(KindText, port, proto, tp.RTCPMux, &dir)
		if err != nil {
			return nil, nil, err
		}
		out.MediaName.Formats = []string{strconv.Itoa(int(tp.PT))}
		if tp.RedPT != 0 {
			out.MediaName.Formats = []string{strconv.Itoa(int(tp.RedPT)), strconv.Itoa(int(tp.PT))}
		}
		out.Attributes = append(append(textAttributes(tp.RedPT, tp.PT), out.Attributes...), ssrcAttributes(ssrc, cname)...)
		if keys != nil {
			out.Attributes = append(out.Attributes, cryptoLine)
			tp.Encrypted, tp.SRTP = true, keys
		}
		ans.MediaDescriptions[i] = out
		b, err := ans.Marshal()
		if err != nil {
			return nil, nil, fmt.Errorf("media: marshal answer with text: %w", err)
		}
		return b, tp, nil
	}
	return answer, nil, nil
}

// ParseText reads the text stream of the peer's answer (or offer): nil
// when there is none or it was declined.
func ParseText(desc []byte) (*TextParams, error) {
	sd, err := parseSDP(desc)
	if err != nil {
		return nil, err
	}
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media != KindText {
			continue
		}
		if md.MediaName.Port.Value == 0 {
			return nil, nil
		}
		tp, ok, err := textParams(sd, md)
		if err != nil || !ok {
			return nil, err
		}
		return tp, nil
	}
	return nil, nil
}

// textParams finds t140/1000 (required) and red/1000 (optional) in md.
func textParams(sd *sdp.SessionDescription, md *sdp.MediaDescription) (*TextParams, bool, error) {
	c := collectCodecs(md)
	var t140, red uint8
	var haveT140, haveRed bool
	for _, pt := range formats(md) {
		switch name, rate := encoding(c.rtpmap[pt]); {
		case rate != ClockText:
		case name == "t140" && !haveT140:
			t140, haveT140 = pt, true
		case name == "red" && !haveRed:
			red, haveRed = pt, true
		}
	}
	if !haveT140 {
		return nil, false, nil
	}
	sp, err := remoteParams(sd, md, c, KindText, t140)
	if err != nil {
		return nil, false, fmt.Errorf("media: text: %w", err)
	}
	sp.Codec, sp.ClockRate = "t140", ClockText
	tp := &TextParams{StreamParams: *sp}
	if haveRed {
		tp.RedPT = red
	}
	return tp, true, nil
}
