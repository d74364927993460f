package media

import (
	"errors"
	"fmt"
)

// errSPS means a sequence parameter set could not be read.
var errSPS = errors.New("media: malformed h264 sps")

// avcDecoderConfig builds an AVCDecoderConfigurationRecord (ISO/IEC
// 14496-15 5.3.3.1), the "avcC" that MP4 and Matroska carry as the H.264
// track's setup, from one SPS and one PPS (NAL units without start code).
// NAL lengths in the samples are 4 bytes.
//
//	configurationVersion=1 | profile | compatibility | level |
//	111111 lengthSizeMinusOne=3 | 111 numSPS | (u16 len, SPS)* | numPPS | (u16 len, PPS)*
func avcDecoderConfig(sps, pps []byte) ([]byte, error) {
	if len(sps) < 4 || len(pps) < 1 || len(sps) > 0xffff || len(pps) > 0xffff {
		return nil, fmt.Errorf("%w: sps of %d bytes, pps of %d", errSPS, len(sps), len(pps))
	}
	b := []byte{1, sps[1], sps[2], sps[3], 0xfc | 3, 0xe0 | 1}
	b = append(b, byte(len(sps)>>8), byte(len(sps)))
	b = append(b, sps...)
	b = append(b, 1, byte(len(pps)>>8), byte(len(pps)))
	return append(b, pps...), nil
}

// annexBToAVCC rewrites the NAL units of an Annex B access unit with
// 4-byte big-endian length prefixes, as Matroska and MP4 store them. Access
// unit delimiters are dropped: the container frames the unit itself.
func annexBToAVCC(au []byte) []byte {
	out := make([]byte, 0, len(au)+16)
	for _, nal := range splitAnnexB(au) {
		if nal[0]&nalTypeMask == nalAUD {
			continue
		}
		n := len(nal)
		out = append(out, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
		out = append(out, nal...)
	}
	return out
}

// bitReader reads an RBSP (emulation prevention bytes removed) MSB first.
type bitReader struct {
	b   []byte
	pos int // in bits
	err error
}

func (r *bitReader) bit() uint32 {
	if r.pos >= 8*len(r.b) {
		r.err = errSPS
		return 0
	}
	v := uint32(r.b[r.pos/8]>>(7-r.pos%8)) & 1
	r.pos++
	return v
}

func (r *bitReader) bits(n int) uint32 {
	var v uint32
	for range n {
		v = v<<1 | r.bit()
	}
	return v
}

// ue reads an Exp-Golomb code (ITU-T H.264 9.1).
func (r *bitReader) ue() uint32 {
	zeros := 0
	for r.bit() == 0 {
		if zeros++; zeros > 31 || r.err != nil {
			r.err = errSPS
			return 0
		}
	}
	return 1<<zeros - 1 + r.bits(zeros)
}

func (r *bitReader) se() int32 {
	v := r.ue()
	if v&1 == 1 {
		return int32(v/2) + 1
	}
	return -int32(v / 2)
}

// unescapeRBSP removes emulation prevention bytes (00 00 03 -> 00 00).
func unescapeRBSP(nal []byte) []byte {
	out := make([]byte, 0, len(nal))
	zeros := 0
	for _, c := range nal {
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
		}
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
		out = append(out, c)
	}
	return out
}

// spsSize reads the picture size from a sequence parameter set NAL unit
// (ITU-T H.264 7.3.2.1.1), cropping included.
func spsSize(nal []byte) (width, height int, err error) {
	if len(nal) < 4 || nal[0]&nalTypeMask != nalSPS {
		return 0, 0, fmt.Errorf("%w: not an sps", errSPS)
	}
	r := &bitReader{b: unescapeRBSP(nal[1:])}
	profile := r.bits(8)
	r.bits(16) // constraint flags, level
	r.ue()     // seq_parameter_set_id
	chroma := uint32(1)
	separate := false
	switch profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		if chroma = r.ue(); chroma == 3 {
			separate = r.bit() == 1
		}
		r.ue()  // bit_depth_luma_minus8
		r.ue()  // bit_depth_chroma_minus8
		r.bit() // qpprime_y_zero_transform_bypass_flag
		if r.bit() == 1 {
			lists := 8
			if chroma == 3 {
				lists = 12
			}
			for i := range lists {
				if r.bit() == 0 {
					continue
				}
				size := 16
				if i >= 6 {
					size = 64
				}
				last, next := int32(8), int32(8)
				for range size {
					if next != 0 {
						next = (last + r.se() + 256) % 256
					}
					if next != 0 {
						last = next
					}
				}
			}
		}
	}
	r.ue() // log2_max_frame_num_minus4
	switch r.ue() {
	case 0:
		r.ue() // log2_max_pic_order_cnt_lsb_minus4
	case 1:
		r.bit()
		r.se()
		r.se()
		n := r.ue()
		if n > 255 {
			return 0, 0, fmt.Errorf("%w: %d reference frames in the poc cycle", errSPS, n)
		}
		for range n {
			r.se()
		}
	}
	r.ue()  // max_num_ref_frames
	r.bit() // gaps_in_frame_num_value_allowed_flag
	wMbs := int(r.ue()) + 1
	hMaps := int(r.ue()) + 1
	frameMbsOnly := int(r.bit())
	if frameMbsOnly == 0 {
		r.bit() // mb_adaptive_frame_field_flag
	}
	r.bit() // direct_8x8_inference_flag
	var cl, cr, ct, cb int
	if r.bit() == 1 {
		cl, cr, ct, cb = int(r.ue()), int(r.ue()), int(r.ue()), int(r.ue())
	}
	if r.err != nil {
		return 0, 0, fmt.Errorf("%w: truncated", errSPS)
	}
	// Crop units (H.264 Table 6-1 and 7.4.2.1.1).
	cx, cy := 1, 2-frameMbsOnly
	if chroma != 0 && !separate {
		subW, subH := 2, 2
		switch chroma {
		case 2:
			subH = 1
		case 3:
			subW, subH = 1, 1
		}
		cx, cy = subW, subH*(2-frameMbsOnly)
	}
	width = wMbs*16 - cx*(cl+cr)
	height = (2-frameMbsOnly)*hMaps*16 - cy*(ct+cb)
	if width <= 0 || height <= 0 || width > 16384 || height > 16384 {
		return 0, 0, fmt.Errorf("%w: picture %dx%d", errSPS, width, height)
	}
	return width, height, nil
}
