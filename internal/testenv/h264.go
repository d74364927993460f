package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ProbeH264 writes stream (H.264 in Annex B, as a depacketizer returns
// it) to a file and returns what ffprobe decodes of it, as
// "codec,width,height,frames" (for example "h264,320,240,12"). ok is false
// when there is nothing to compare: ffprobe is not installed (Debian
// package ffmpeg), so the caller checks what it can without it, or it
// failed, and the test is marked failed.
func ProbeH264(t testing.TB, stream []byte) (summary string, ok bool) {
	t.Helper()
	ffprobe, err := exec.LookPath("ffprobe")
	if err != nil {
		return "", false
	}
	f := filepath.Join(t.TempDir(), "stream.h264")
	if err := os.WriteFile(f, stream, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(ffprobe, "-v", "error", "-count_frames", "-show_entries",
		"stream=codec_name,width,height,nb_read_frames", "-of", "csv=p=0", f).CombinedOutput()
	if err != nil {
		t.Errorf("ffprobe of %d bytes of H.264: %v: %s", len(stream), err, out)
		return "", false
	}
	return strings.TrimSpace(string(out)), true
}
