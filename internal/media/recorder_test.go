package media

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/z5vrs/z5/internal/testenv"
)

// fakeClock advances only when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// TestRecorderPlays records 3 s of the built-in clip the way a Session
// hands it over (access units and μ-law packets with RTP timestamps from
// random bases, audio starting 100 ms before video) and has ffmpeg decode
// the file: both streams, a real duration, every frame.
func TestRecorderPlays(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "call.mkv")
	rec, err := NewRecorder(RecorderConfig{Path: path, Video: true, Audio: true, Text: true, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	video, err := DefaultVideo()
	if err != nil {
		t.Fatal(err)
	}
	audio, err := DefaultAudio()
	if err != nil {
		t.Fatal(err)
	}
	vs, as := rec.VideoSink(), rec.AudioSink()
	// 10 ms steps over 3.1 s: audio every 20 ms from 0, video every
	// 33.3 ms from 100 ms; timestamp bases near the 32-bit wrap.
	vts, ats := uint32(0xffff0000), uint32(0xfffffe00)
	nextVideo := 100 * time.Millisecond
	var videoFrames, audioPackets int
	for el := time.Duration(0); el < 3100*time.Millisecond; el += 10 * time.Millisecond {
		clk.t = clk.t.Add(10 * time.Millisecond)
		if el%(20*time.Millisecond) == 0 {
			pl, _, _ := audio.Next()
			if err := as.WriteFrame(pl, ats); err != nil {
				t.Fatal(err)
			}
			ats += 160
			audioPackets++
		}
		if el >= nextVideo && videoFrames < 90 {
			au, _, _ := video.Next()
			if err := vs.WriteFrame(au, vts); err != nil {
				t.Fatal(err)
			}
			vts += 3000
			videoFrames++
			nextVideo += time.Second / 30
		}
	}
	if err := rec.WriteText("hello, can you see me?", clk.t.Add(-2*time.Second), 1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// The Session closes the track sinks, the call's owner the recorder.
	vs.Close()
	as.Close()
	if err := vs.WriteFrame([]byte{0, 0, 0, 1, 0x65}, vts); !errors.Is(err, ErrClosed) {
		t.Errorf("write after the track closed: %v", err)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("recording mode: %v %v, want 0600", fi.Mode(), err)
	}

	p := testenv.ProbeMKV(t, path)
	dur, _ := strconv.ParseFloat(p.Format.Duration, 64)
	t.Logf("ffprobe: %s, %.3f s, %+v", p.Format.Name, dur, p.Streams)
	if p.Format.Name != "matroska,webm" || dur < 2.9 || dur > 3.2 {
		t.Errorf("format %q, duration %q: want matroska of about 3.1 s", p.Format.Name, p.Format.Duration)
	}
	if len(p.Streams) != 3 {
		t.Fatalf("streams: %+v, want video, audio, subtitle", p.Streams)
	}
	v, a, s := p.Streams[0], p.Streams[1], p.Streams[2]
	if v.Codec != "h264" || v.Width != 640 || v.Height != 480 || v.Frames != strconv.Itoa(videoFrames) {
		t.Errorf("video: %+v, want h264 640x480, %d frames", v, videoFrames)
	}
	if a.Codec != "pcm_s16le" || a.SampleRate != "8000" || a.Channels != 1 || a.Frames != strconv.Itoa(audioPackets) {
		t.Errorf("audio: %+v, want pcm_s16le 8000 Hz mono, %d frames", a, audioPackets)
	}
	if s.Type != "subtitle" || s.Frames != "1" {
		t.Errorf("text: %+v, want one subtitle", s)
	}
	if rec.VideoFramesDropped() != 0 {
		t.Errorf("%d video frames dropped, the first one is a keyframe", rec.VideoFramesDropped())
	}
	// In step: video began 100 ms after audio, and so it shows.
	if got := firstPTS(t, path, "v"); got != "0.100000" {
		t.Errorf("first video frame at %s s, want 0.100000", got)
	}
	if got := firstPTS(t, path, "a"); got != "0.000000" {
		t.Errorf("first audio frame at %s s, want 0.000000", got)
	}
}

// firstPTS is the presentation time of the first packet of a stream.
func firstPTS(t *testing.T, path, stream string) string {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", stream, "-read_intervals", "%+#1",
		"-show_entries", "packet=pts_time", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe packets of %s: %v", stream, err)
	}
	return string(bytes.TrimSpace(out))
}

// TestRecorderWaitsForParameterSets: video before a keyframe with SPS and
// PPS cannot be decoded and is left out; the file still plays.
func TestRecorderWaitsForParameterSets(t *testing.T) {
	clk := &fakeClock{t: time.Unix(0, 0)}
	path := filepath.Join(t.TempDir(), "late.mkv")
	rec, err := NewRecorder(RecorderConfig{Path: path, Video: true, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	video, err := DefaultVideo()
	if err != nil {
		t.Fatal(err)
	}
	video.Next() // the IDR: the stream joins mid-GOP
	vs := rec.VideoSink()
	ts := uint32(1234)
	for range 60 {
		clk.t = clk.t.Add(time.Second / 30)
		au, _, _ := video.Next()
		if err := vs.WriteFrame(au, ts); err != nil {
			t.Fatal(err)
		}
		ts += 3000
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	if got := rec.VideoFramesDropped(); got != 29 {
		t.Errorf("dropped %d frames before the keyframe, want 29", got)
	}
	p := testenv.ProbeMKV(t, path)
	if len(p.Streams) != 1 || p.Streams[0].Frames != "31" {
		t.Errorf("streams: %+v, want one video stream of 31 frames", p.Streams)
	}
}

func TestRecorderWithoutTextTrack(t *testing.T) {
	rec, err := NewRecorder(RecorderConfig{Path: filepath.Join(t.TempDir(), "a.mkv"), Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	if rec.VideoSink() != nil {
		t.Error("a video sink without a video track")
	}
	if err := rec.WriteText("x", time.Now(), time.Second); !errors.Is(err, ErrBadConfig) {
		t.Errorf("WriteText without a text track: %v", err)
	}
}

func TestRTPTimeline(t *testing.T) {
	type step struct {
		ts   uint32
		wall int64
		ms   int64
		ok   bool
	}
	tests := []struct {
		name  string
		clock uint32
		steps []step
	}{
		{"anchored on arrival, then RTP time", 8000, []step{
			{1000, 40, 40, true},
			{1160, 75, 60, true}, // arrived late: placed by its timestamp
			{1320, 80, 80, true},
		}},
		{"late and duplicate dropped", 8000, []step{
			{1000, 0, 0, true},
			{1320, 40, 40, true},
			{1160, 41, 0, false},
			{1320, 42, 0, false},
			{1480, 60, 60, true},
		}},
		{"a tick apart: a millisecond on, not dropped", 90000, []step{
			{0, 0, 0, true},
			{45, 1, 1, true},
			{90, 1, 2, true},
			{9000, 100, 100, true},
		}},
		{"gap kept", 90000, []step{
			{0, 10, 10, true},
			{90000, 1010, 1010, true},
		}},
		{"wraps", 90000, []step{
			{0xffffff00, 0, 0, true},
			{0x00000100 + 90000, 1000, 1005, true}, // 90512 ticks on
		}},
		{"clock restart re-anchors", 8000, []step{
			{5000, 0, 0, true},
			{5160, 20, 20, true},
			{900000000, 45, 45, true},
			{900000160, 70, 65, true},
			{10, 71, 71, true}, // backwards by far: a new anchor too
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tl := rtpTimeline{clock: tc.clock}
			var got, want []step
			for _, s := range tc.steps {
				ms, ok := tl.at(s.ts, s.wall)
				got = append(got, step{s.ts, s.wall, ms, ok})
				want = append(want, s)
			}
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(step{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSPSSizeAndAVCC(t *testing.T) {
	var sps, pps []byte
	for _, nal := range splitAnnexB(embeddedH264) {
		switch nal[0] & nalTypeMask {
		case nalSPS:
			sps = nal
		case nalPPS:
			pps = nal
		}
		if sps != nil && pps != nil {
			break
		}
	}
	w, h, err := spsSize(sps)
	if err != nil || w != 640 || h != 480 {
		t.Errorf("clip sps: %dx%d %v, want 640x480", w, h, err)
	}
	cfg, err := avcDecoderConfig(sps, pps)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{1, sps[1], sps[2], sps[3], 0xff, 0xe1, 0, byte(len(sps))}, sps...)
	want = append(append(want, 1, 0, byte(len(pps))), pps...)
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("avcC (-want +got):\n%s", diff)
	}
	// 1920x1080 High profile: 68 rows of macroblocks cropped by 8 lines.
	hd := []byte{0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc6, 0x58}
	if w, h, err := spsSize(hd); err != nil || w != 1920 || h != 1080 {
		t.Errorf("high profile sps: %dx%d %v, want 1920x1080", w, h, err)
	}
	for _, bad := range [][]byte{nil, {0x67}, {0x68, 1, 2, 3, 4}, sps[:5]} {
		if _, _, err := spsSize(bad); !errors.Is(err, errSPS) {
			t.Errorf("spsSize(% x): %v, want errSPS", bad, err)
		}
	}
}

func TestAnnexBToAVCC(t *testing.T) {
	au := []byte{0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x65, 9, 9, 9}
	want := []byte{0, 0, 0, 3, 0x67, 1, 2, 0, 0, 0, 4, 0x65, 9, 9, 9}
	if diff := cmp.Diff(want, annexBToAVCC(au)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestG711(t *testing.T) {
	for _, tc := range []struct {
		u    byte
		want int16
	}{
		{0xff, 0}, {0x7f, 0}, {0x00, -32124}, {0x80, 32124}, {0xfe, 8}, {0x7e, -8}, {0xef, 132}, {0x6f, -132},
	} {
		if got := ULawToLinear(tc.u); got != tc.want {
			t.Errorf("ULawToLinear(%#02x) = %d, want %d", tc.u, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in   int16
		want byte
	}{{0, 0xff}, {-1, 0x7f}, {32767, 0x80}, {-32768, 0x00}} {
		if got := LinearToULaw(tc.in); got != tc.want {
			t.Errorf("LinearToULaw(%d) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
	if got := appendPCM16(nil, []byte{0x80, 0xff}); !bytes.Equal(got, []byte{0x7c, 0x7d, 0, 0}) {
		t.Errorf("appendPCM16: % x", got)
	}
}

// FuzzSPSSize: the SPS comes from the peer; no input may panic, loop or
// yield an absurd picture size.
func FuzzSPSSize(f *testing.F) {
	for _, nal := range splitAnnexB(embeddedH264) {
		if nal[0]&nalTypeMask == nalSPS {
			f.Add(nal)
			break
		}
	}
	f.Add([]byte{0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc6, 0x58})
	f.Add([]byte{0x67, 0x64, 0, 0, 0xff})
	f.Fuzz(func(t *testing.T, nal []byte) {
		w, h, err := spsSize(nal)
		if err == nil && (w <= 0 || h <= 0 || w > 16384 || h > 16384) {
			t.Errorf("spsSize accepted %dx%d", w, h)
		}
		if err != nil && !errors.Is(err, errSPS) {
			t.Errorf("error %v is not errSPS", err)
		}
		annexBToAVCC(append([]byte{0, 0, 1}, nal...))
	})
}
