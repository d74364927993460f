package media

// DefaultMTU is the largest RTP payload this package sends: it keeps a packet
// (payload + 12-byte RTP header + UDP/IP) well inside a 1280-byte IPv6 path.
const DefaultMTU = 1200

// H264Packetizer turns access units into RTP payloads following RFC 6184
// packetization-mode 1 (non-interleaved): a NAL unit that fits in MTU bytes
// goes alone (single NAL unit packet, 5.6), consecutive small NAL units
// (SPS, PPS, SEI, small slices) share one STAP-A (5.7.1) unless
// DisableSTAPA is set, and a larger NAL unit is split into FU-A fragments
// (5.8). Every NAL unit is sent, access unit delimiters included, so the
// receiver rebuilds the frame byte for byte.
type H264Packetizer struct {
	MTU          int // largest payload; 0 means DefaultMTU
	DisableSTAPA bool
}

func (p H264Packetizer) mtu() int {
	if p.MTU <= 0 {
		return DefaultMTU
	}
	// Below this an FU-A carries no data and a STAP-A nothing useful.
	return max(p.MTU, 16)
}

// Packetize splits one Annex B access unit into RTP payloads, in send
// order. The caller sets the marker bit on the last one.
func (p H264Packetizer) Packetize(au []byte) [][]byte {
	mtu := p.mtu()
	nals := splitAnnexB(au)
	var out [][]byte
	for i := 0; i < len(nals); {
		nal := nals[i]
		if len(nal) > mtu {
			out = appendFUA(out, nal, mtu)
			i++
			continue
		}
		// Aggregate the run of following NAL units that fits with this one.
		j, size := i+1, 1+2+len(nal)
		for !p.DisableSTAPA && j < len(nals) && size+2+len(nals[j]) <= mtu {
			size += 2 + len(nals[j])
			j++
		}
		if j-i == 1 {
			out = append(out, append([]byte(nil), nal...))
		} else {
			out = append(out, stapA(nals[i:j], size))
		}
		i = j
	}
	return out
}

// stapA builds a STAP-A (RFC 6184 5.7.1):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                          RTP Header                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|STAP-A NAL HDR |         NALU 1 Size           | NALU 1 HDR    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                         NALU 1 Data                           |
//	:                                                               :
//	+               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|               | NALU 2 Size                   | NALU 2 HDR    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Its F bit is the OR and its NRI the maximum of the aggregated units'.
func stapA(nals [][]byte, size int) []byte {
	b := make([]byte, 1, size)
	var f, nri byte
	for _, nal := range nals {
		f |= nal[0] & 0x80
		nri = max(nri, nal[0]&0x60)
		b = append(b, byte(len(nal)>>8), byte(len(nal)))
		b = append(b, nal...)
	}
	b[0] = f | nri | nalSTAPA
	return b
}

// appendFUA splits nal into FU-A fragments (RFC 6184 5.8):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	| FU indicator  |   FU header   |                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               |
//	|                         FU payload                            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// FU indicator: F|NRI of the NAL unit and type 28; FU header: S|E|R|type.
// The NAL header octet itself is not sent: it is rebuilt from those two.
// Fragments are of near-equal size so the last one is not a runt.
func appendFUA(out [][]byte, nal []byte, mtu int) [][]byte {
	indicator := nal[0]&0xe0 | nalFUA
	typ := nal[0] & nalTypeMask
	data := nal[1:]
	maxFrag := mtu - 2
	n := (len(data) + maxFrag - 1) / maxFrag
	frag := (len(data) + n - 1) / n
	for off := 0; off < len(data); off += frag {
		end := min(off+frag, len(data))
		hdr := typ
		if off == 0 {
			hdr |= 0x80
		}
		if end == len(data) {
			hdr |= 0x40
		}
		pkt := make([]byte, 2, 2+end-off)
		pkt[0], pkt[1] = indicator, hdr
		out = append(out, append(pkt, data[off:end]...))
	}
	return out
}
