package media

import (
	_ "embed"
	"fmt"
)

// The test clip (testdata/gen.sh) ships in the binary so `z5 call` and
// `z5d demo` send real H.264 and PCMU with nothing else installed.
var (
	//go:embed testdata/clip.h264
	embeddedH264 []byte
	//go:embed testdata/clip.wav
	embeddedWAV []byte
)

// ClipFPS is the built-in clip's frame rate.
const ClipFPS = 30

// DefaultVideo is the built-in clip: 640x480, 30 fps, H.264 Constrained
// Baseline, looping.
func DefaultVideo() (*H264Source, error) { return NewH264Source(embeddedH264, ClipFPS) }

// DefaultAudio is the built-in 440 Hz tone, 8 kHz μ-law, looping.
func DefaultAudio() (*PCMUSource, error) {
	b, err := wavMulawData(embeddedWAV)
	if err != nil {
		return nil, fmt.Errorf("media: built-in clip: %w", err)
	}
	return NewPCMUSource(b)
}
