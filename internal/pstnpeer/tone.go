package pstnpeer

import "math"

// ToneHz is the pitch of the audio the peer plays into every call.
const ToneHz = 440

// tone is one second of a sine at hz, 8 kHz G.711 μ-law, at about a
// quarter of full scale (a voice-like level that does not clip): a whole
// number of cycles, so it loops without a click.
func tone(hz float64) []byte {
	out := make([]byte, 8000)
	for i := range out {
		v := 8000 * math.Sin(2*math.Pi*hz*float64(i)/8000)
		out[i] = linearToULaw(int16(v))
	}
	return out
}

// linearToULaw encodes one 16-bit sample as G.711 μ-law (ITU-T G.711,
// the segment search over the biased magnitude).
func linearToULaw(s int16) byte {
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
