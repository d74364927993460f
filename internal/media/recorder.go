package media

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/z5vrs/z5/internal/mkv"
)

// Recorder timeline rules: an RTP timestamp jump of more than this is the
// sender restarting its clock (a new SSRC, a re-INVITE), not time passing,
// so the track is re-anchored on the arrival time.
const maxTimestampJump = 10 * time.Second

// RecorderConfig says which tracks a call recording holds.
type RecorderConfig struct {
	Path  string
	Video bool // an H.264 track, declared once its parameter sets arrive
	Audio bool // PCMU, stored decoded as 16-bit PCM
	// Text adds a UTF-8 subtitle track for the call's text transcript.
	Text bool
	// Now is the clock that anchors each track; nil means time.Now.
	Now func() time.Time
}

// Recorder writes the media of one call to a Matroska file: H.264 video,
// audio as 16-bit 8 kHz PCM, and a subtitle track for text. Each track's
// blocks are timed by its RTP timestamps from an anchor, the arrival time
// of its first frame, so audio and video stay in step with each other and
// gaps from loss stay gaps. The file is private to the user: mode 0600.
type Recorder struct {
	f   *os.File
	w   *mkv.Writer
	now func() time.Time

	video, audio, text int // track numbers, 0 when absent

	mu        sync.Mutex // guards the following
	started   bool
	start     time.Time
	videoTL   rtpTimeline
	audioTL   rtpTimeline
	videoOK   bool // the H.264 track has its avcC
	dropped   int  // video frames before the first keyframe with SPS and PPS
	closed    bool
	closeErr  error
	audioBuf  []byte
	lastText  int64
	videoSink *trackSink
	audioSink *trackSink
}

// NewRecorder creates (or truncates) cfg.Path and writes the file's head.
func NewRecorder(cfg RecorderConfig) (*Recorder, error) {
	r := &Recorder{now: cfg.Now}
	if r.now == nil {
		r.now = time.Now
	}
	var tracks []mkv.TrackConfig
	if cfg.Video {
		tracks = append(tracks, mkv.TrackConfig{CodecID: mkv.CodecH264, Name: "video", NeedsPrivate: true})
		r.video = len(tracks)
	}
	if cfg.Audio {
		tracks = append(tracks, mkv.TrackConfig{CodecID: mkv.CodecPCM, Name: "audio", SampleRate: pcmuRate, Channels: 1, BitDepth: 16})
		r.audio = len(tracks)
	}
	if cfg.Text {
		tracks = append(tracks, mkv.TrackConfig{CodecID: mkv.CodecText, Name: "text"})
		r.text = len(tracks)
	}
	f, err := os.OpenFile(cfg.Path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("media: create recording: %w", err)
	}
	r.f = f
	if r.w, err = mkv.NewWriter(f, tracks...); err != nil {
		f.Close()
		return nil, fmt.Errorf("media: recording %s: %w", cfg.Path, err)
	}
	r.videoTL.clock, r.audioTL.clock = ClockH264, ClockPCMU
	return r, nil
}

// Path is the file being written.
func (r *Recorder) Path() string { return r.f.Name() }

// VideoSink is the Sink for the received H.264 stream, or nil without a
// video track.
func (r *Recorder) VideoSink() Sink {
	if r.video == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.videoSink == nil {
		r.videoSink = &trackSink{write: r.writeVideo}
	}
	return r.videoSink
}

// AudioSink is the Sink for the received PCMU stream, or nil without an
// audio track.
func (r *Recorder) AudioSink() Sink {
	if r.audio == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.audioSink == nil {
		r.audioSink = &trackSink{write: r.writeAudio}
	}
	return r.audioSink
}

// wallMs is the time since the first frame of any track; the caller holds mu.
func (r *Recorder) wallMs() int64 {
	now := r.now()
	if !r.started {
		r.started, r.start = true, now
	}
	return max(now.Sub(r.start).Milliseconds(), 0)
}

func (r *Recorder) writeVideo(au []byte, ts uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	key := false
	var sps, pps []byte
	for _, nal := range splitAnnexB(au) {
		switch nal[0] & nalTypeMask {
		case nalIDR:
			key = true
		case nalSPS:
			sps = nal
		case nalPPS:
			pps = nal
		}
	}
	if !r.videoOK {
		// The track's setup comes from the first keyframe that carries
		// its parameter sets; frames before it cannot be decoded.
		if !key || sps == nil || pps == nil {
			r.dropped++
			return nil
		}
		w, h, err := spsSize(sps)
		if err != nil {
			r.dropped++
			return fmt.Errorf("media: record video: %w", err)
		}
		cfg, err := avcDecoderConfig(sps, pps)
		if err != nil {
			r.dropped++
			return fmt.Errorf("media: record video: %w", err)
		}
		if err := r.w.SetCodecPrivate(r.video, cfg, w, h); err != nil {
			return fmt.Errorf("media: record video: %w", err)
		}
		r.videoOK = true
	}
	ms, ok := r.videoTL.at(ts, r.wallMs())
	if !ok {
		return nil // late or repeated
	}
	if err := r.w.WriteBlock(r.video, ms, key, annexBToAVCC(au)); err != nil {
		return fmt.Errorf("media: record video: %w", err)
	}
	return nil
}

func (r *Recorder) writeAudio(ulaw []byte, ts uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	ms, ok := r.audioTL.at(ts, r.wallMs())
	if !ok {
		return nil
	}
	r.audioBuf = appendPCM16(r.audioBuf[:0], ulaw)
	if err := r.w.WriteBlock(r.audio, ms, true, r.audioBuf); err != nil {
		return fmt.Errorf("media: record audio: %w", err)
	}
	return nil
}

// WriteText adds a line of the call's text to the subtitle track, shown at
// the time it was typed for duration d. Lines are kept in order: one timed
// before the previous is moved after it.
func (r *Recorder) WriteText(text string, at time.Time, d time.Duration) error {
	if r.text == 0 {
		return fmt.Errorf("media: recording without a text track: %w", ErrBadConfig)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if !r.started {
		r.started, r.start = true, at
	}
	ms := max(at.Sub(r.start).Milliseconds(), r.lastText)
	r.lastText = ms
	if err := r.w.WriteText(r.text, ms, max(d.Milliseconds(), 1), text); err != nil {
		return fmt.Errorf("media: record text: %w", err)
	}
	return nil
}

// VideoFramesDropped counts video frames received before the first
// keyframe that carried SPS and PPS: nothing before it can be decoded.
func (r *Recorder) VideoFramesDropped() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}

// Close finishes the file (duration, seek index) and closes it. It is
// idempotent; the track sinks refuse frames afterwards.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return r.closeErr
	}
	r.closed = true
	err := r.w.Close()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		r.closeErr = fmt.Errorf("media: close %s: %w", r.f.Name(), err)
	}
	return r.closeErr
}

// trackSink is one track of a Recorder seen as a Session's Sink. Closing it
// ends that track only: the Recorder is finished by its owner, who may
// still add text after the media stops.
type trackSink struct {
	write  func([]byte, uint32) error
	mu     sync.Mutex
	closed bool
}

func (s *trackSink) WriteFrame(payload []byte, ts uint32) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return s.write(payload, ts)
}

func (s *trackSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// rtpTimeline maps one stream's RTP timestamps to milliseconds in the
// file: the first frame lands at its arrival time, later ones at that
// anchor plus their RTP distance from it.
type rtpTimeline struct {
	clock   uint32
	started bool
	anchor  int64 // ms of the frame at ext 0
	last    uint32
	ext     int64 // ticks since the anchor frame
	lastMs  int64
}

// at returns the file time of a frame with RTP timestamp ts that arrived
// wall ms after the recording began. ok is false for a frame at or before
// the previous one (late, duplicated): a track's blocks only move forward,
// each at least a millisecond after the one before.
func (tl *rtpTimeline) at(ts uint32, wall int64) (ms int64, ok bool) {
	jump := int64(maxTimestampJump/time.Second) * int64(tl.clock)
	if tl.started {
		d := int64(int32(ts - tl.last))
		if d > -jump && d <= 0 {
			return 0, false
		}
		if d > 0 && d < jump {
			tl.ext += d
			tl.last = ts
			// Frames a tick apart would share a millisecond; the later
			// one goes one millisecond on rather than being dropped (a
			// dropped video frame breaks the frames that refer to it).
			ms = max(tl.anchor+tl.ext*1000/int64(tl.clock), tl.lastMs+1)
			tl.lastMs = ms
			return ms, true
		}
		wall = max(wall, tl.lastMs+1)
	}
	tl.started, tl.anchor, tl.ext, tl.last, tl.lastMs = true, wall, 0, ts, wall
	return wall, true
}
