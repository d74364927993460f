package media

import (
	"github.com/pion/rtp"

	"github.com/z5vrs/z5/internal/rtpstats"
)

// DefaultMaxFrameSize bounds one reassembled access unit; a peer cannot make
// the depacketizer buffer more than this.
const DefaultMaxFrameSize = 4 << 20

// H264Frame is one access unit rebuilt from RTP.
type H264Frame struct {
	// Data is the access unit in Annex B with 4-byte start codes. The
	// caller owns it.
	Data      []byte
	Timestamp uint32
	// Keyframe: the frame holds an IDR picture.
	Keyframe bool
	// Complete: every packet of the frame arrived and parsed; an
	// incomplete frame must not be decoded.
	Complete bool
	// Discontinuity: packets were lost just before this frame, so whole
	// frames it references may be missing. Only a keyframe is decodable
	// after a discontinuity.
	Discontinuity bool
}

// H264Depacketizer rebuilds access units from RTP packets carrying RFC 6184
// packetization-mode 1 payloads (single NAL unit, STAP-A, FU-A). It assumes
// packets arrive in order, as they do from a relay on a short path: a
// duplicate or late packet is dropped, and a sequence gap marks the frame it
// falls in as incomplete. A frame ends at the marker bit or, for senders
// that omit it, when the timestamp changes.
type H264Depacketizer struct {
	MaxFrameSize int // 0 means DefaultMaxFrameSize

	haveSeq bool
	lastSeq uint16

	started  bool // a frame is being assembled
	ts       uint32
	frame    []byte
	complete bool
	gapAhead bool
	key      bool
	vcl      bool

	fu []byte // FU-A reassembly; nil when none is open
}

// Malformed payloads mark their frame incomplete rather than failing: one
// bad packet costs one frame, and the receiver asks for a keyframe.

// Push consumes one RTP packet and returns the frames it finished (none,
// one, or two when a frame without marker bit is followed by a frame that
// ends in this packet).
func (d *H264Depacketizer) Push(p *rtp.Packet) []H264Frame {
	gap := false
	if d.haveSeq {
		diff := int16(p.SequenceNumber - d.lastSeq)
		if diff <= 0 && diff > -rtpstats.MaxMisorder {
			return nil // duplicate or reordered: its frame is already judged
		}
		// Anything but the next number, a far jump back included (the
		// sender restarted its sequence), breaks the picture chain.
		gap = diff != 1
	}
	d.haveSeq, d.lastSeq = true, p.SequenceNumber

	var out []H264Frame
	if d.started && p.Timestamp != d.ts {
		// A new picture began although the last one had no marker bit.
		// After a gap its tail may be what was lost.
		if gap {
			d.complete = false
		}
		out = append(out, d.finish())
	}
	if !d.started {
		d.started, d.ts = true, p.Timestamp
		d.complete, d.gapAhead, d.key, d.vcl = true, gap, false, false
		// Lost packets just before a frame's first packet may have been
		// its own head, unless that packet visibly starts a picture.
		if gap && !startsPicture(p.Payload) {
			d.complete = false
		}
	} else if gap {
		// The lost packets may be fragments of the open FU-A.
		d.complete, d.fu = false, nil
	}

	d.depacketize(p.Payload)

	if p.Marker {
		out = append(out, d.finish())
	}
	return out
}

func (d *H264Depacketizer) maxFrame() int {
	if d.MaxFrameSize <= 0 {
		return DefaultMaxFrameSize
	}
	return d.MaxFrameSize
}

func (d *H264Depacketizer) depacketize(payload []byte) {
	if len(payload) == 0 {
		d.complete = false
		return
	}
	typ := payload[0] & nalTypeMask
	if typ != nalFUA && d.fu != nil {
		d.fu, d.complete = nil, false // the rest of that fragmented unit is lost
	}
	switch {
	case typ >= 1 && typ <= 23:
		d.appendNAL(payload)
	case typ == nalSTAPA:
		for b := payload[1:]; len(b) > 0; {
			if len(b) < 2 {
				d.complete = false
				return
			}
			n := int(b[0])<<8 | int(b[1])
			if n == 0 || n > len(b)-2 {
				d.complete = false
				return
			}
			d.appendNAL(b[2 : 2+n])
			b = b[2+n:]
		}
	case typ == nalFUA:
		d.fuA(payload)
	default:
		// 0 and 30-31 are undefined; STAP-B, MTAP and FU-B need
		// interleaved mode, which was not negotiated.
		d.complete = false
	}
}

// fuA handles one FU-A fragment (see appendFUA for the layout).
func (d *H264Depacketizer) fuA(payload []byte) {
	if len(payload) < 2 {
		d.complete = false
		return
	}
	start, end := payload[1]&0x80 != 0, payload[1]&0x40 != 0
	hdr := payload[0]&0xe0 | payload[1]&nalTypeMask
	switch {
	case start && end:
		d.fu, d.complete = nil, false // forbidden by RFC 6184 5.8
		return
	case start:
		if d.fu != nil {
			d.complete = false // the previous unit never ended
		}
		d.fu = append(make([]byte, 0, 4096), hdr)
	case d.fu == nil:
		d.complete = false // its start was lost
		return
	case d.fu[0] != hdr:
		d.fu, d.complete = nil, false // fragments of two different units
		return
	}
	if len(d.frame)+len(d.fu)+len(payload) > d.maxFrame() {
		d.fu, d.complete = nil, false
		return
	}
	d.fu = append(d.fu, payload[2:]...)
	if end {
		d.appendNAL(d.fu)
		d.fu = nil
	}
}

func (d *H264Depacketizer) appendNAL(nal []byte) {
	if len(d.frame)+len(startCode)+len(nal) > d.maxFrame() {
		d.complete = false
		return
	}
	if nal[0]&0x80 != 0 {
		d.complete = false // forbidden_zero_bit: the sender flagged it corrupt
	}
	t := nal[0] & nalTypeMask
	d.key = d.key || t == nalIDR
	d.vcl = d.vcl || isVCL(t)
	d.frame = appendAnnexB(d.frame, nal)
}

func (d *H264Depacketizer) finish() H264Frame {
	f := H264Frame{
		Data:          d.frame,
		Timestamp:     d.ts,
		Keyframe:      d.key,
		Complete:      d.complete && d.fu == nil && d.vcl,
		Discontinuity: d.gapAhead,
	}
	d.started, d.frame, d.fu = false, nil, nil
	return f
}

// startsPicture reports whether an RTP payload visibly begins an access
// unit: its first NAL unit is a delimiter, parameter set or SEI, or a slice
// with first_mb_in_slice 0 (for FU-A only in the starting fragment).
func startsPicture(payload []byte) bool {
	if len(payload) < 2 {
		return false
	}
	first := payload
	switch payload[0] & nalTypeMask {
	case nalSTAPA:
		if len(payload) < 4 {
			return false
		}
		first = payload[3:]
	case nalFUA:
		if payload[1]&0x80 == 0 || len(payload) < 3 {
			return false
		}
		first = []byte{payload[1], payload[2]}
	}
	switch t := first[0] & nalTypeMask; {
	case t == nalAUD || t == nalSPS || t == nalPPS || t == nalSEI:
		return true
	case isVCL(t):
		return firstMBZero(first)
	}
	return false
}
