package media

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWAVSinkTimeline(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rx.wav")
	s, err := NewWAVSink(p)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := bytes.Repeat([]byte{1}, 4), bytes.Repeat([]byte{2}, 4), bytes.Repeat([]byte{3}, 3)
	writes := []struct {
		ts uint32
		pl []byte
	}{
		{1000, a},
		{1008, b},     // 4 samples lost: silence
		{1010, c},     // overlaps 2: only the last one kept
		{1004, a},     // late: dropped
		{1013, c[:1]}, // in order
	}
	for _, w := range writes {
		if err := s.WriteFrame(w.pl, w.ts); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.WriteFrame(a, 2000); !errors.Is(err, ErrClosed) {
		t.Errorf("write after close: %v", err)
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data, err := wavMulawData(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{1, 1, 1, 1, 0xff, 0xff, 0xff, 0xff, 2, 2, 2, 2, 3, 3}
	if diff := cmp.Diff(want, data); diff != "" {
		t.Errorf("samples (-want +got):\n%s", diff)
	}
	if len(raw)%2 != 0 {
		t.Errorf("file of odd length %d: RIFF chunks are padded", len(raw))
	}
	// Same header layout as ffmpeg's own μ-law WAV (testdata/clip.wav).
	clip, err := os.ReadFile(clipWAV)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := wavHeader(24000), clip[:wavHeaderSize]; !bytes.Equal(got, want) {
		t.Errorf("header\n% x\nffmpeg writes\n% x", got, want)
	}
}

func TestH264FileSink(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rx.h264")
	s, err := NewH264FileSink(p)
	if err != nil {
		t.Fatal(err)
	}
	src, err := OpenH264File(clipH264)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range src.frames {
		if err := s.WriteFrame(f, 0); err != nil {
			t.Fatal(err)
		}
	}
	if s.Frames() != 90 {
		t.Errorf("frames %d", s.Frames())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("recording mode: %v %v", fi, err)
	}
	if n := ffprobeFrames(t, p); n != 90 {
		t.Errorf("ffprobe counts %d frames, want 90", n)
	}
}

// ffprobeFrames decodes an .h264 file with ffprobe and returns its frame
// count; decoding errors fail the test. It skips without ffprobe.
func ffprobeFrames(t *testing.T, path string) int {
	t.Helper()
	ffprobe, err := exec.LookPath("ffprobe")
	if err != nil {
		t.Skip("ffprobe not installed (Debian package ffmpeg)")
	}
	cmd := exec.Command(ffprobe, "-v", "error", "-f", "h264", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,profile,width,height,nb_read_frames", "-of", "default=nw=1", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v: %s", path, err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("ffprobe reports decoding errors:\n%s", stderr.String())
	}
	fields := map[string]string{}
	for line := range strings.Lines(string(out)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		fields[k] = v
	}
	if fields["codec_name"] != "h264" || fields["width"] != "640" || fields["height"] != "480" {
		t.Errorf("ffprobe: %v", fields)
	}
	var n int
	for _, c := range fields["nb_read_frames"] {
		if c < '0' || c > '9' {
			t.Fatalf("ffprobe frame count %q", fields["nb_read_frames"])
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// ffprobeWAV checks that ffprobe decodes a recording as 8 kHz mono μ-law
// and returns its duration in seconds.
func ffprobeWAV(t *testing.T, path string) string {
	t.Helper()
	ffprobe, err := exec.LookPath("ffprobe")
	if err != nil {
		t.Skip("ffprobe not installed (Debian package ffmpeg)")
	}
	out, err := exec.Command(ffprobe, "-v", "error", "-show_entries", "stream=codec_name,sample_rate,channels,duration",
		"-of", "default=nw=1", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v: %s", path, err, out)
	}
	s := string(out)
	for _, want := range []string{"codec_name=pcm_mulaw", "sample_rate=8000", "channels=1"} {
		if !strings.Contains(s, want) {
			t.Errorf("ffprobe %s: no %q in\n%s", path, want, s)
		}
	}
	_, dur, _ := strings.Cut(s, "duration=")
	return strings.TrimSpace(dur)
}
