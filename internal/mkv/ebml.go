package mkv

import (
	"encoding/binary"
	"math"
)

// EBML element IDs (RFC 8794, RFC 9559) this writer emits. IDs carry their
// length marker bits, so they are written as they appear here.
const (
	idEBML               = 0x1A45DFA3
	idEBMLVersion        = 0x4286
	idEBMLReadVersion    = 0x42F7
	idEBMLMaxIDLength    = 0x42F2
	idEBMLMaxSizeLength  = 0x42F3
	idDocType            = 0x4282
	idDocTypeVersion     = 0x4287
	idDocTypeReadVersion = 0x4285
	idVoid               = 0xEC

	idSegment      = 0x18538067
	idSeekHead     = 0x114D9B74
	idSeek         = 0x4DBB
	idSeekID       = 0x53AB
	idSeekPosition = 0x53AC

	idInfo           = 0x1549A966
	idTimestampScale = 0x2AD7B1
	idDuration       = 0x4489
	idMuxingApp      = 0x4D80
	idWritingApp     = 0x5741

	idTracks            = 0x1654AE6B
	idTrackEntry        = 0xAE
	idTrackNumber       = 0xD7
	idTrackUID          = 0x73C5
	idTrackType         = 0x83
	idFlagLacing        = 0x9C
	idLanguage          = 0x22B59C
	idName              = 0x536E
	idCodecID           = 0x86
	idCodecPrivate      = 0x63A2
	idVideo             = 0xE0
	idPixelWidth        = 0xB0
	idPixelHeight       = 0xBA
	idAudio             = 0xE1
	idSamplingFrequency = 0xB5
	idChannels          = 0x9F
	idBitDepth          = 0x6264

	idCluster       = 0x1F43B675
	idTimestamp     = 0xE7
	idSimpleBlock   = 0xA3
	idBlockGroup    = 0xA0
	idBlock         = 0xA1
	idBlockDuration = 0x9B

	idCues               = 0x1C53BB6B
	idCuePoint           = 0xBB
	idCueTime            = 0xB3
	idCueTrackPositions  = 0xB7
	idCueTrack           = 0xF7
	idCueClusterPosition = 0xF1
)

// unknownSize is the 8-byte "size unknown" vint (all value bits set): a
// Segment being written live says so until Close patches its real size.
var unknownSize = []byte{0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}

func appendID(b []byte, id uint32) []byte {
	switch {
	case id >= 1<<24:
		return append(b, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	case id >= 1<<16:
		return append(b, byte(id>>16), byte(id>>8), byte(id))
	case id >= 1<<8:
		return append(b, byte(id>>8), byte(id))
	}
	return append(b, byte(id))
}

// appendSize appends n as an EBML variable-size integer of the given width
// (1-8 bytes; 0 picks the shortest). A value with all bits set would read
// as "unknown", so each width holds up to 2^(7w)-2.
func appendSize(b []byte, n uint64, width int) []byte {
	if width == 0 {
		width = 1
		for n > 1<<(7*width)-2 {
			width++
		}
	}
	marked := n | 1<<(7*width)
	for i := width - 1; i >= 0; i-- {
		b = append(b, byte(marked>>(8*i)))
	}
	return b
}

func appendElem(b []byte, id uint32, payload []byte) []byte {
	b = appendID(b, id)
	b = appendSize(b, uint64(len(payload)), 0)
	return append(b, payload...)
}

func appendUint(b []byte, id uint32, v uint64) []byte {
	n := 1
	for n < 8 && v>>(8*n) != 0 {
		n++
	}
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], v)
	return appendElem(b, id, buf[8-n:])
}

// appendUint8 writes v in a fixed 8 bytes, so that an element rewritten in
// place later (seek positions) keeps its size.
func appendUint8(b []byte, id uint32, v uint64) []byte {
	return appendElem(b, id, binary.BigEndian.AppendUint64(nil, v))
}

func appendFloat(b []byte, id uint32, v float64) []byte {
	return appendElem(b, id, binary.BigEndian.AppendUint64(nil, math.Float64bits(v)))
}

func appendString(b []byte, id uint32, s string) []byte {
	return appendElem(b, id, []byte(s))
}

// appendVoid fills exactly n bytes (n >= 2, or 0) with a Void element.
func appendVoid(b []byte, n int) []byte {
	if n == 0 {
		return b
	}
	b = append(b, idVoid)
	if n-2 <= 126 {
		b = appendSize(b, uint64(n-2), 1)
		return append(b, make([]byte, n-2)...)
	}
	b = appendSize(b, uint64(n-9), 8)
	return append(b, make([]byte, n-9)...)
}
