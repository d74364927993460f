package media

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/pion/sdp/v3"
)

// Sources names what this end sends: one SSRC per kind and the RTCP
// CNAME, announced in its SDP as a=ssrc (RFC 5576). The MCS relay latches
// a leg only on a packet that carries an announced SSRC, so a host behind
// the same NAT address cannot take the stream before our first packet.
// A zero SSRC announces nothing for that kind.
type Sources struct {
	Audio, Video uint32
	CNAME        string
}

// NewSources draws random nonzero SSRCs and a random CNAME (RFC 7022).
func NewSources() (Sources, error) {
	var b [24]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return Sources{}, fmt.Errorf("media: random sources: %w", err)
		}
		s := Sources{
			Audio: binary.BigEndian.Uint32(b[0:4]),
			Video: binary.BigEndian.Uint32(b[4:8]),
			CNAME: hex.EncodeToString(b[8:24]),
		}
		if s.Audio != 0 && s.Video != 0 && s.Audio != s.Video {
			return s, nil
		}
	}
}

// WithSources adds a=ssrc lines for src to every active audio and video
// m= line of desc (an offer or an answer this end wrote).
func WithSources(desc []byte, src Sources) ([]byte, error) {
	sd, err := parseSDP(desc)
	if err != nil {
		return nil, err
	}
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Port.Value == 0 {
			continue
		}
		var ssrc uint32
		switch md.MediaName.Media {
		case KindAudio:
			ssrc = src.Audio
		case KindVideo:
			ssrc = src.Video
		}
		if ssrc == 0 {
			continue
		}
		v := strconv.FormatUint(uint64(ssrc), 10)
		if src.CNAME != "" {
			v += " cname:" + src.CNAME
		}
		md.Attributes = append(md.Attributes, sdp.NewAttribute("ssrc", v))
	}
	b, err := sd.Marshal()
	if err != nil {
		return nil, fmt.Errorf("media: marshal sdp with sources: %w", err)
	}
	return b, nil
}
