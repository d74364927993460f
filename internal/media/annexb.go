package media

import "bytes"

// NAL unit types (ITU-T H.264 Table 7-1) and RTP payload structures
// (RFC 6184 Table 1) this package looks at.
const (
	nalSlice    = 1
	nalIDR      = 5
	nalSEI      = 6
	nalSPS      = 7
	nalPPS      = 8
	nalAUD      = 9
	nalSTAPA    = 24
	nalSTAPB    = 25
	nalMTAP16   = 26
	nalMTAP24   = 27
	nalFUA      = 28
	nalFUB      = 29
	nalTypeMask = 0x1f
)

// startCode is the 4-byte Annex B start code this package writes before
// every NAL unit, so frames compare byte for byte whatever the file used.
var startCode = [4]byte{0, 0, 0, 1}

// splitAnnexB returns the NAL units of an Annex B byte stream without their
// start codes. Trailing zero bytes are dropped: they are either the leading
// zero of a 4-byte start code or trailing_zero_8bits, never NAL payload (a
// NAL unit ends with rbsp_stop_one_bit or cabac_zero_word 0x0003). The
// returned slices alias b.
func splitAnnexB(b []byte) [][]byte {
	var nals [][]byte
	i := bytes.Index(b, startCode[1:])
	for i >= 0 {
		begin := i + 3
		next := bytes.Index(b[begin:], startCode[1:])
		end := len(b)
		if next >= 0 {
			end = begin + next
		}
		nal := bytes.TrimRight(b[begin:end], "\x00")
		if len(nal) > 0 {
			nals = append(nals, nal)
		}
		if next < 0 {
			break
		}
		i = end
	}
	return nals
}

// appendAnnexB appends nal to dst behind a 4-byte start code.
func appendAnnexB(dst, nal []byte) []byte {
	return append(append(dst, startCode[:]...), nal...)
}

func isVCL(t byte) bool { return t >= nalSlice && t <= nalIDR }

// firstMBZero reports whether a slice NAL unit starts a new picture: its
// slice header begins with first_mb_in_slice as ue(v), and ue(v) is 0
// exactly when its first bit is 1.
func firstMBZero(nal []byte) bool {
	return len(nal) > 1 && nal[1]&0x80 != 0
}

// splitAccessUnits groups NAL units into access units (ITU-T H.264
// 7.4.1.2.3): a new one starts at an access unit delimiter, at SPS, PPS, SEI
// or types 14-18 once the current unit holds a picture, and at a slice with
// first_mb_in_slice 0 once the current unit holds a picture. Parameter sets
// and SEI therefore travel with the picture that follows them.
func splitAccessUnits(nals [][]byte) [][][]byte {
	var (
		aus    [][][]byte
		cur    [][]byte
		hasVCL bool
	)
	for _, nal := range nals {
		t := nal[0] & nalTypeMask
		var starts bool
		switch {
		case t == nalAUD:
			starts = len(cur) > 0
		case t == nalSEI || t == nalSPS || t == nalPPS || (t >= 14 && t <= 18):
			starts = hasVCL
		case isVCL(t):
			starts = hasVCL && firstMBZero(nal)
		}
		if starts {
			aus = append(aus, cur)
			cur, hasVCL = nil, false
		}
		cur = append(cur, nal)
		if isVCL(t) {
			hasVCL = true
		}
	}
	if len(cur) > 0 {
		aus = append(aus, cur)
	}
	return aus
}

// isKeyframe reports whether an Annex B access unit holds an IDR picture.
func isKeyframe(au []byte) bool {
	for _, nal := range splitAnnexB(au) {
		if nal[0]&nalTypeMask == nalIDR {
			return true
		}
	}
	return false
}
