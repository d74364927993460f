package pstnpeer

import (
	"math"

	"github.com/z5vrs/z5/internal/media"
)

// ToneHz is the pitch of the audio the peer plays into every call.
const ToneHz = 440

// tone is one second of a sine at hz, 8 kHz G.711 μ-law, at about a
// quarter of full scale (a voice-like level that does not clip): a whole
// number of cycles, so it loops without a click.
func tone(hz float64) []byte {
	out := make([]byte, 8000)
	for i := range out {
		v := 8000 * math.Sin(2*math.Pi*hz*float64(i)/8000)
		out[i] = media.LinearToULaw(int16(v))
	}
	return out
}
