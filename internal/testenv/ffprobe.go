package testenv

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"testing"
)

// MKV is what ffprobe says about a Matroska recording.
type MKV struct {
	Format struct {
		Name     string `json:"format_name"`
		Duration string `json:"duration"`
	} `json:"format"`
	Streams []struct {
		Type       string `json:"codec_type"`
		Codec      string `json:"codec_name"`
		Width      int    `json:"width"`
		Height     int    `json:"height"`
		SampleRate string `json:"sample_rate"`
		Channels   int    `json:"channels"`
		Frames     string `json:"nb_read_frames"`
	} `json:"streams"`
}

// ProbeMKV runs ffprobe (counting frames) and ffmpeg (decoding everything)
// on path: the file must be Matroska that both read without a word of
// error. It skips the test without ffmpeg (Debian package ffmpeg).
func ProbeMKV(t testing.TB, path string) MKV {
	t.Helper()
	ffprobe, err := exec.LookPath("ffprobe")
	if err != nil {
		t.Skip("ffprobe not installed (Debian package ffmpeg)")
	}
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg not installed (Debian package ffmpeg)")
	}
	cmd := exec.Command(ffprobe, "-v", "error", "-count_frames", "-show_entries",
		"format=format_name,duration:stream=codec_type,codec_name,width,height,sample_rate,channels,nb_read_frames",
		"-of", "json", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, stderr.String())
	}
	var p MKV
	if err := json.Unmarshal(out, &p); err != nil || p.Format.Name != "matroska,webm" {
		t.Fatalf("ffprobe %s: %v, not Matroska:\n%s", path, err, out)
	}
	if out, err := exec.Command(ffmpeg, "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("ffmpeg decoding %s: %v\n%s", path, err, out)
	}
	return p
}
