package media

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Source produces the frames of one outgoing stream, in send order. Next
// returns one frame's payload and how long it lasts; the payload belongs to
// the Source and must not be modified. A Source may loop forever.
type Source interface {
	Next() (payload []byte, duration time.Duration, err error)
}

// KeyframeSource is a Source that can skip ahead to its next keyframe, which
// a Session does when the peer sends PLI or FIR.
type KeyframeSource interface {
	Source
	RequestKeyframe()
}

// maxClipSize bounds what the file sources read into memory.
const maxClipSize = 64 << 20

func readClip(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("media: open clip: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxClipSize+1))
	if err != nil {
		return nil, fmt.Errorf("media: read clip %s: %w", path, err)
	}
	if len(b) > maxClipSize {
		return nil, fmt.Errorf("media: clip %s larger than %d bytes: %w", path, maxClipSize, ErrUnsupportedFormat)
	}
	return b, nil
}

// H264Source loops over the access units of an Annex B H.264 clip at a
// fixed frame rate. Each frame is returned as Annex B with 4-byte start
// codes; SPS, PPS and SEI travel with the picture that follows them.
type H264Source struct {
	frames   [][]byte
	keys     []bool
	frameDur time.Duration

	mu      sync.Mutex // guards the following
	next    int
	wantKey bool
}

// OpenH264File reads an Annex B H.264 file (such as testdata/clip.h264) as
// a 30 fps looping source.
func OpenH264File(path string) (*H264Source, error) {
	b, err := readClip(path)
	if err != nil {
		return nil, err
	}
	s, err := NewH264Source(b, 30)
	if err != nil {
		return nil, fmt.Errorf("media: %s: %w", path, err)
	}
	return s, nil
}

// NewH264Source splits an Annex B stream into access units played at fps
// frames per second.
func NewH264Source(annexB []byte, fps int) (*H264Source, error) {
	if fps <= 0 || fps > 240 {
		return nil, fmt.Errorf("media: frame rate %d out of range 1-240: %w", fps, ErrUnsupportedFormat)
	}
	aus := splitAccessUnits(splitAnnexB(annexB))
	s := &H264Source{frameDur: time.Second / time.Duration(fps)}
	for _, au := range aus {
		var frame []byte
		key, pic := false, false
		for _, nal := range au {
			frame = appendAnnexB(frame, nal)
			t := nal[0] & nalTypeMask
			key = key || t == nalIDR
			pic = pic || isVCL(t)
		}
		if !pic {
			// Trailing parameter sets with no picture: nothing to show.
			continue
		}
		s.frames = append(s.frames, frame)
		s.keys = append(s.keys, key)
	}
	if len(s.frames) == 0 {
		return nil, fmt.Errorf("media: no H.264 pictures in %d bytes: %w", len(annexB), ErrNoFrames)
	}
	return s, nil
}

// Len is the number of frames in one loop of the clip.
func (s *H264Source) Len() int { return len(s.frames) }

// FrameDuration is the fixed duration of every frame.
func (s *H264Source) FrameDuration() time.Duration { return s.frameDur }

// Next returns the next access unit, looping at the end of the clip. After
// RequestKeyframe it skips ahead to the next IDR picture.
func (s *H264Source) Next() ([]byte, time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wantKey {
		s.wantKey = false
		for i := range s.frames {
			if j := (s.next + i) % len(s.frames); s.keys[j] {
				s.next = j
				break
			}
		}
	}
	f := s.frames[s.next]
	s.next = (s.next + 1) % len(s.frames)
	return f, s.frameDur, nil
}

// RequestKeyframe makes the following Next jump to the next IDR picture (or
// stay, if the next picture is one). Safe to call from any goroutine.
func (s *H264Source) RequestKeyframe() {
	s.mu.Lock()
	s.wantKey = true
	s.mu.Unlock()
}

// PCMU framing: 20 ms of 8 kHz G.711 is 160 one-byte samples.
const (
	pcmuRate       = 8000
	pcmuFrameBytes = 160
	pcmuFrameDur   = 20 * time.Millisecond
)

// PCMUSource loops over G.711 μ-law samples in 20 ms frames.
type PCMUSource struct {
	samples []byte

	mu  sync.Mutex // guards pos
	pos int
}

// OpenPCMU reads a μ-law clip: a WAV file with WAVE_FORMAT_MULAW, 8 kHz,
// mono (such as testdata/clip.wav), or raw μ-law bytes (.ulaw, .mulaw, .ul).
func OpenPCMU(path string) (*PCMUSource, error) {
	b, err := readClip(path)
	if err != nil {
		return nil, err
	}
	if len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WAVE" {
		b, err = wavMulawData(b)
		if err != nil {
			return nil, fmt.Errorf("media: %s: %w", path, err)
		}
	} else if ext := filepath.Ext(path); ext == ".wav" {
		return nil, fmt.Errorf("media: %s: not a RIFF/WAVE file: %w", path, ErrUnsupportedFormat)
	}
	s, err := NewPCMUSource(b)
	if err != nil {
		return nil, fmt.Errorf("media: %s: %w", path, err)
	}
	return s, nil
}

// NewPCMUSource plays raw μ-law samples in a loop.
func NewPCMUSource(ulaw []byte) (*PCMUSource, error) {
	if len(ulaw) == 0 {
		return nil, fmt.Errorf("media: empty μ-law clip: %w", ErrNoFrames)
	}
	return &PCMUSource{samples: ulaw}, nil
}

// Next returns the next 160 samples (20 ms), wrapping around the clip.
func (s *PCMUSource) Next() ([]byte, time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]byte, pcmuFrameBytes)
	for n := 0; n < len(out); {
		c := copy(out[n:], s.samples[s.pos:])
		n += c
		s.pos = (s.pos + c) % len(s.samples)
	}
	return out, pcmuFrameDur, nil
}

// WAV format tags (RFC 2361).
const (
	wavFormatMulaw      = 0x0007
	wavFormatExtensible = 0xfffe
)

// wavMulawData returns the samples of a RIFF/WAVE file holding 8 kHz mono
// 8-bit μ-law, walking the chunk list (chunks are padded to even sizes).
func wavMulawData(b []byte) ([]byte, error) {
	var (
		fmtOK bool
		data  []byte
	)
	for p := 12; p+8 <= len(b); {
		id := string(b[p : p+4])
		size := int(binary.LittleEndian.Uint32(b[p+4 : p+8]))
		body := b[p+8:]
		if size > len(body) {
			if id != "data" {
				return nil, fmt.Errorf("wav chunk %q at %d: size %d past end: %w", id, p, size, ErrUnsupportedFormat)
			}
			// A recorder that died before fixing the header: take what is there.
			size = len(body)
		}
		body = body[:size]
		switch id {
		case "fmt ":
			if err := checkWavFmt(body); err != nil {
				return nil, err
			}
			fmtOK = true
		case "data":
			data = body
		}
		p += 8 + size + size&1
	}
	switch {
	case !fmtOK:
		return nil, fmt.Errorf("wav: no fmt chunk: %w", ErrUnsupportedFormat)
	case data == nil:
		return nil, fmt.Errorf("wav: no data chunk: %w", ErrUnsupportedFormat)
	}
	return data, nil
}

func checkWavFmt(c []byte) error {
	if len(c) < 16 {
		return fmt.Errorf("wav: fmt chunk of %d bytes: %w", len(c), ErrUnsupportedFormat)
	}
	tag := binary.LittleEndian.Uint16(c[0:])
	channels := binary.LittleEndian.Uint16(c[2:])
	rate := binary.LittleEndian.Uint32(c[4:])
	bits := binary.LittleEndian.Uint16(c[14:])
	if tag == wavFormatExtensible && len(c) >= 26 {
		tag = binary.LittleEndian.Uint16(c[24:]) // first bytes of the SubFormat GUID
	}
	if tag != wavFormatMulaw || channels != 1 || rate != pcmuRate || bits != 8 {
		return fmt.Errorf("wav: format %#04x, %d channel(s), %d Hz, %d bits; want μ-law (0x0007), mono, 8000 Hz, 8 bits: %w",
			tag, channels, rate, bits, ErrUnsupportedFormat)
	}
	return nil
}
