package media

// ulawToLinear decodes one G.711 μ-law code to a 16-bit linear sample
// (ITU-T G.711, the classic bias-33 expansion).
func ulawToLinear(u byte) int16 {
	u = ^u
	t := (int32(u&0x0f)<<3 + 0x84) << ((u & 0x70) >> 4)
	if u&0x80 != 0 {
		return int16(0x84 - t)
	}
	return int16(t - 0x84)
}

// appendPCM16 appends μ-law samples decoded to 16-bit little-endian PCM.
func appendPCM16(dst, ulaw []byte) []byte {
	for _, u := range ulaw {
		s := ulawToLinear(u)
		dst = append(dst, byte(s), byte(uint16(s)>>8))
	}
	return dst
}
