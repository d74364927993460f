package media

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"sync"
)

// Sink records the frames of one incoming stream. WriteFrame gets a whole
// decodable frame (an Annex B access unit for H.264, μ-law samples for
// PCMU) with its RTP timestamp and must not keep payload. A Session closes
// its sinks in Stop.
type Sink interface {
	WriteFrame(payload []byte, rtpTimestamp uint32) error
	Close() error
}

// H264FileSink writes access units to a raw Annex B .h264 file, which
// ffmpeg and ffprobe read as is. The Receiver only hands it decodable frames,
// starting with a keyframe.
type H264FileSink struct {
	f *os.File

	mu     sync.Mutex // guards the following
	w      *bufio.Writer
	frames int
	closed bool
}

// NewH264FileSink creates (or truncates) path. Recordings are private to
// the user: mode 0600.
func NewH264FileSink(path string) (*H264FileSink, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("media: create h264 recording: %w", err)
	}
	return &H264FileSink{f: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

// WriteFrame appends one access unit.
func (s *H264FileSink) WriteFrame(au []byte, _ uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if _, err := s.w.Write(au); err != nil {
		return fmt.Errorf("media: write %s: %w", s.f.Name(), err)
	}
	s.frames++
	return nil
}

// Frames is the number of access units written.
func (s *H264FileSink) Frames() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frames
}

// Close flushes and closes the file. It is idempotent.
func (s *H264FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.w.Flush()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("media: close %s: %w", s.f.Name(), err)
	}
	return nil
}

// WAV layout written by WAVSink: a RIFF header, an 18-byte fmt chunk
// (WAVE_FORMAT_MULAW needs cbSize), the fact chunk non-PCM formats carry,
// then the data chunk. The sizes are patched in Close.
const (
	wavHeaderSize  = 12 + 8 + 18 + 8 + 4 + 8
	wavMaxData     = 1<<32 - 1 - wavHeaderSize
	ulawSilence    = 0xff // μ-law code of a zero sample
	maxSilenceFill = 5 * pcmuRate
)

// WAVSink writes G.711 μ-law samples to a WAV file (WAVE_FORMAT_MULAW,
// 8 kHz, mono). It keeps the timeline: samples lost on the way are filled
// with silence from the RTP timestamps (up to 5 s; a larger jump is the
// sender restarting its clock and is not filled), and late or duplicated
// samples are dropped.
type WAVSink struct {
	f *os.File

	mu      sync.Mutex // guards the following
	w       *bufio.Writer
	size    int64 // data bytes written
	started bool
	nextTS  uint32
	closed  bool
}

// NewWAVSink creates (or truncates) path with mode 0600.
func NewWAVSink(path string) (*WAVSink, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("media: create wav recording: %w", err)
	}
	s := &WAVSink{f: f, w: bufio.NewWriterSize(f, 32<<10)}
	if _, err := s.w.Write(wavHeader(0)); err != nil {
		f.Close()
		return nil, fmt.Errorf("media: write wav header %s: %w", path, err)
	}
	return s, nil
}

func wavHeader(dataSize uint32) []byte {
	h := make([]byte, 0, wavHeaderSize)
	le32 := func(v uint32) { h = binary.LittleEndian.AppendUint32(h, v) }
	le16 := func(v uint16) { h = binary.LittleEndian.AppendUint16(h, v) }
	h = append(h, "RIFF"...)
	le32(wavHeaderSize - 8 + dataSize + dataSize&1)
	h = append(h, "WAVEfmt "...)
	le32(18)
	le16(wavFormatMulaw)
	le16(1)        // channels
	le32(pcmuRate) // sample rate
	le32(pcmuRate) // byte rate
	le16(1)        // block align
	le16(8)        // bits per sample
	le16(0)        // cbSize
	h = append(h, "fact"...)
	le32(4)
	le32(dataSize) // samples per channel
	h = append(h, "data"...)
	le32(dataSize)
	return h
}

// WriteFrame appends the samples of one RTP packet with timestamp ts.
func (s *WAVSink) WriteFrame(samples []byte, ts uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	end := ts + uint32(len(samples))
	if s.started {
		switch d := int32(ts - s.nextTS); {
		case d > 0 && d <= maxSilenceFill:
			if err := s.write(silence(int(d))); err != nil {
				return err
			}
		case d < 0 && -int64(d) < int64(len(samples)):
			samples = samples[-d:] // overlaps what was written
		case d < 0 && d > -maxSilenceFill:
			return nil // late or duplicate
		}
	}
	s.started = true
	s.nextTS = end
	return s.write(samples)
}

func silence(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = ulawSilence
	}
	return b
}

func (s *WAVSink) write(b []byte) error {
	if s.size+int64(len(b)) > wavMaxData {
		return fmt.Errorf("media: %s reached the 4 GiB WAV limit: %w", s.f.Name(), ErrUnsupportedFormat)
	}
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("media: write %s: %w", s.f.Name(), err)
	}
	s.size += int64(len(b))
	return nil
}

// Close pads the data chunk to an even size, writes the final sizes into
// the header and closes the file. It is idempotent.
func (s *WAVSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if s.size&1 == 1 {
		err = s.w.WriteByte(0)
	}
	if err == nil {
		err = s.w.Flush()
	}
	if err == nil {
		_, err = s.f.WriteAt(wavHeader(uint32(s.size)), 0)
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("media: close %s: %w", s.f.Name(), err)
	}
	return nil
}

// Tee is a Sink that hands every frame to each of sinks in turn (a call
// recorded to Matroska and, on request, to raw files too). Every sink gets
// every frame; the first error is returned.
func Tee(sinks ...Sink) Sink {
	var live []Sink
	for _, s := range sinks {
		if s != nil {
			live = append(live, s)
		}
	}
	if len(live) == 1 {
		return live[0]
	}
	return teeSink(live)
}

type teeSink []Sink

func (t teeSink) WriteFrame(payload []byte, ts uint32) error {
	var err error
	for _, s := range t {
		if werr := s.WriteFrame(payload, ts); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

func (t teeSink) Close() error {
	var err error
	for _, s := range t {
		if cerr := s.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}
