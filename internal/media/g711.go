package media

// ULawToLinear decodes one G.711 μ-law code to a 16-bit linear sample
// (ITU-T G.711, the classic bias-33 expansion).
func ULawToLinear(u byte) int16 {
	u = ^u
	t := (int32(u&0x0f)<<3 + 0x84) << ((u & 0x70) >> 4)
	if u&0x80 != 0 {
		return int16(0x84 - t)
	}
	return int16(t - 0x84)
}

// LinearToULaw encodes one 16-bit sample as G.711 μ-law (ITU-T G.711,
// the segment search over the biased magnitude).
func LinearToULaw(s int16) byte {
	const bias, clip = 0x84, 32635
	sign := byte(0)
	v := int(s)
	if v < 0 {
		v, sign = -v, 0x80
	}
	v = min(v, clip) + bias
	exp := byte(7)
	for mask := 0x4000; v&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := byte(v>>(int(exp)+3)) & 0x0f
	return ^(sign | exp<<4 | mant)
}

// appendPCM16 appends μ-law samples decoded to 16-bit little-endian PCM.
func appendPCM16(dst, ulaw []byte) []byte {
	for _, u := range ulaw {
		s := ULawToLinear(u)
		dst = append(dst, byte(s), byte(uint16(s)>>8))
	}
	return dst
}
