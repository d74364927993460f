package t140

import (
	"fmt"

	"github.com/pion/rtp"
)

// LossMarker is what RFC 4103 5.4 has a receiver insert where text may
// have been lost: U+FFFD, the replacement character.
const LossMarker = '\uFFFD'

var lossMarker = []byte(string(LossMarker))

// maxMisorder is how far back a packet may be and still count as late
// rather than a restarted sender (RFC 3550 A.1).
const maxMisorder = 100

// DecoderConfig names the payload types the peer sends text with.
type DecoderConfig struct {
	T140PT, RedPT uint8
	// Red tells whether RedPT was negotiated; without it only plain
	// t140 packets are taken.
	Red bool
}

// Decoder is the receiving side of RFC 4103: it takes the text stream's
// RTP packets as they arrive and yields the text they add, in order.
// A sequence gap is filled from the redundant generations the packet
// carries; text missing beyond them becomes one LossMarker per gap.
// Late and duplicate packets add nothing. Not safe for concurrent use.
type Decoder struct {
	cfg     DecoderConfig
	started bool
	ssrc    uint32
	next    uint16 // the sequence number expected next
	// Lost counts gaps that redundancy could not fill.
	Lost int
}

// NewDecoder starts a receiving text stream.
func NewDecoder(cfg DecoderConfig) (*Decoder, error) {
	if cfg.T140PT > 127 || cfg.RedPT > 127 || (cfg.Red && cfg.RedPT == cfg.T140PT) {
		return nil, fmt.Errorf("%w: payload types t140 %d red %d", ErrBadConfig, cfg.T140PT, cfg.RedPT)
	}
	return &Decoder{cfg: cfg}, nil
}

// Decode appends to dst the text pkt adds. A packet that does not parse
// or is not text returns an error and changes nothing.
func (d *Decoder) Decode(dst, pkt []byte) ([]byte, error) {
	var p rtp.Packet
	if err := p.Unmarshal(pkt); err != nil {
		return dst, fmt.Errorf("%w: rtp: %w", ErrBadPacket, err)
	}
	if p.Version != 2 {
		return dst, fmt.Errorf("%w: rtp version %d", ErrBadPacket, p.Version)
	}
	var red []Block
	primary := Block{PT: p.PayloadType, Data: p.Payload}
	switch {
	case d.cfg.Red && p.PayloadType == d.cfg.RedPT:
		blocks, err := ParseRED(p.Payload)
		if err != nil {
			return dst, err
		}
		red, primary = blocks[:len(blocks)-1], blocks[len(blocks)-1]
	case p.PayloadType == d.cfg.T140PT:
	default:
		return dst, fmt.Errorf("%w: payload type %d is not text", ErrBadPacket, p.PayloadType)
	}

	seq := p.SequenceNumber
	gap := int16(seq - d.next)
	if !d.started || p.SSRC != d.ssrc || gap < -maxMisorder {
		// A new stream: what the packet repeats was never seen here.
		d.started, d.ssrc, d.next = true, p.SSRC, seq+1
		for _, b := range red {
			dst = d.appendBlock(dst, b)
		}
		return d.appendBlock(dst, primary), nil
	}
	if gap < 0 {
		return dst, nil // late or duplicate: its text came already
	}
	// Packet seq carries, as its last redundant block, seq-1, and so on
	// back; missing numbers older than that are lost.
	missing := int(gap)
	if missing > len(red) {
		dst = append(dst, lossMarker...)
		d.Lost++
		missing = len(red)
	}
	for _, b := range red[len(red)-missing:] {
		dst = d.appendBlock(dst, b)
	}
	d.next = seq + 1
	return d.appendBlock(dst, primary), nil
}

// appendBlock adds one T140block's text; a block of another payload type
// (red may carry other formats) adds nothing.
func (d *Decoder) appendBlock(dst []byte, b Block) []byte {
	if b.PT != d.cfg.T140PT {
		return dst
	}
	return append(dst, b.Data...)
}
