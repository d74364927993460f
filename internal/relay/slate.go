package relay

import (
	"context"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pion/sdp/v3"

	"github.com/z5vrs/z5/internal/media"
)

// The "please wait" slate: while a relay call waits for an interpreter,
// the MCS answers the caller's offer with early media (183 Session
// Progress) whose description is EarlyAnswer's, and SendSlate sends a
// small pre-encoded H.264 clip (slate/please-wait.h264, made by
// slate/gen.sh) from the relay's ports facing the caller to the caller's
// latched or announced address, under the same destination rules as
// forwarded media. The clip is plain RTP, so a caller that offers only
// SRTP video gets no slate (ErrNoSlate).

//go:embed slate/please-wait.h264
var slateH264 []byte

// slateFPS is the clip's frame rate (gen.sh).
const slateFPS = 5

// ErrNoSlate: the offer has no plain RTP H.264 video line to send the
// slate on.
var ErrNoSlate = errors.New("relay: no plain H.264 video stream for the slate")

// EarlyAnswer answers side's offer (the description RewriteSDP recorded
// for it) for early media: the first plain RTP video m-line offering
// H.264 gets the relay's port facing side, that payload type alone, and
// a=sendonly; every other m-line is refused (port 0). It returns the
// payload type to send with.
func (c *Call) EarlyAnswer(side Side, offer []byte) ([]byte, uint8, error) {
	p, err := parseSDP(offer)
	if err != nil {
		return nil, 0, fmt.Errorf("call %s: early answer: %w", c.id, err)
	}
	idx, pt, fmtp := -1, uint8(0), ""
	for i, md := range p.desc.MediaDescriptions {
		st := p.streams[i]
		if st.media != "video" || !st.enabled() || st.secure || st.encrypted || idx >= 0 {
			continue
		}
		for _, a := range md.Attributes {
			if a.Key != "rtpmap" {
				continue
			}
			n, enc, _ := strings.Cut(a.Value, " ")
			v, err := strconv.ParseUint(n, 10, 7)
			if err == nil && strings.HasPrefix(strings.ToUpper(enc), "H264/90000") && idx < 0 {
				idx, pt = i, uint8(v)
			}
		}
		for _, a := range md.Attributes {
			if idx == i && a.Key == "fmtp" && strings.HasPrefix(a.Value, strconv.Itoa(int(pt))+" ") {
				fmtp = a.Value
			}
		}
	}
	if idx < 0 {
		return nil, 0, ErrNoSlate
	}
	c.mu.Lock()
	var port uint16
	if idx < len(c.streams) && c.streams[idx].allocated() {
		port = c.streams[idx].pairs[side].port
	}
	c.mu.Unlock()
	if port == 0 {
		return nil, 0, ErrNoSlate
	}
	adv := c.r.cfg.Advertise
	addrType := "IP4"
	if adv.Is6() {
		addrType = "IP6"
	}
	d := &sdp.SessionDescription{
		Origin: sdp.Origin{Username: "-", SessionID: rand.Uint64N(1 << 62), SessionVersion: 1,
			NetworkType: "IN", AddressType: addrType, UnicastAddress: adv.String()},
		SessionName: "-",
		ConnectionInformation: &sdp.ConnectionInformation{NetworkType: "IN", AddressType: addrType,
			Address: &sdp.Address{Address: adv.String()}},
		TimeDescriptions: []sdp.TimeDescription{{}},
	}
	for i, md := range p.desc.MediaDescriptions {
		m := &sdp.MediaDescription{MediaName: sdp.MediaName{Media: md.MediaName.Media, Protos: md.MediaName.Protos}}
		if i != idx {
			m.MediaName.Formats = md.MediaName.Formats[:min(1, len(md.MediaName.Formats))]
			d.MediaDescriptions = append(d.MediaDescriptions, m)
			continue
		}
		n := strconv.Itoa(int(pt))
		m.MediaName.Port = sdp.RangedPort{Value: int(port)}
		m.MediaName.Formats = []string{n}
		m.Attributes = []sdp.Attribute{{Key: "rtpmap", Value: n + " H264/90000"}}
		if fmtp != "" {
			m.Attributes = append(m.Attributes, sdp.Attribute{Key: "fmtp", Value: fmtp})
		}
		m.Attributes = append(m.Attributes, sdp.Attribute{Key: "sendonly"})
		d.MediaDescriptions = append(d.MediaDescriptions, m)
	}
	out, err := d.Marshal()
	if err != nil {
		return nil, 0, fmt.Errorf("call %s: early answer: %w", c.id, err)
	}
	return out, pt, nil
}

// SendSlate sends the slate, looped, with payload type pt to side on its
// video stream until ctx ends; it returns the packets sent. Nothing goes
// out while the side has no address the relay may send to.
func (c *Call) SendSlate(ctx context.Context, side Side, pt uint8) (int, error) {
	src, err := media.NewH264Source(slateH264, slateFPS)
	if err != nil {
		return 0, fmt.Errorf("relay: slate: %w", err)
	}
	var s *stream
	c.mu.Lock()
	for _, st := range c.streams {
		st.mu.Lock()
		if s == nil && st.allocated() && st.media == "video" {
			s = st
		}
		st.mu.Unlock()
	}
	c.mu.Unlock()
	if s == nil {
		return 0, ErrNoSlate
	}
	pk := media.H264Packetizer{}
	ssrc, seq, ts := rand.Uint32(), uint16(rand.Uint32()), rand.Uint32()
	tick := time.NewTicker(src.FrameDuration())
	defer tick.Stop()
	sent := 0
	for {
		au, dur, err := src.Next()
		if err != nil {
			return sent, fmt.Errorf("relay: slate: %w", err)
		}
		s.mu.Lock()
		dst := s.legs[side].dest(compRTP, s.policy)
		s.mu.Unlock()
		payloads := pk.Packetize(au)
		for i, pl := range payloads {
			if !dst.IsValid() {
				break
			}
			pkt := make([]byte, 12, 12+len(pl))
			pkt[0] = 0x80
			pkt[1] = pt & 0x7f
			if i == len(payloads)-1 {
				pkt[1] |= 0x80 // marker: the picture's last packet
			}
			binary.BigEndian.PutUint16(pkt[2:], seq)
			binary.BigEndian.PutUint32(pkt[4:], ts)
			binary.BigEndian.PutUint32(pkt[8:], ssrc)
			seq++
			if err := s.sendRTP(side, append(pkt, pl...), dst); err != nil {
				c.log.Debug("slate packet not sent", "dst", dst.String(), "error", err)
				break
			}
			sent++
		}
		ts += uint32(dur.Seconds() * 90000)
		select {
		case <-ctx.Done():
			return sent, nil
		case <-tick.C:
		}
	}
}

// sendRTP sends b to dst from side's RTP socket of s.
func (s *stream) sendRTP(side Side, b []byte, dst netip.AddrPort) error {
	if s.io != nil {
		return s.io.loop.send(s.io, side, compRTP, b, dst)
	}
	_, err := s.pairs[side].rtp.WriteToUDPAddrPort(b, dst)
	return err
}
