package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/media"
)

// TestReportDrawsStatsFile: the stats file `z5 call --stats-file` keeps
// (written here by the same statsRecorder) becomes a summary and an SVG.
func TestReportDrawsStatsFile(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "call.csv")
	sr, err := newStatsRecorder(csv)
	if err != nil {
		t.Fatal(err)
	}
	var st media.StreamStats
	st.Kind = media.KindVideo
	for i := 1; i <= 5; i++ {
		st.BytesSent += 62500
		st.FramesSent += 30
		st.PacketsReceived += 100
		st.BytesReceived += 50000
		st.FramesReceived += 30
		st.RTTMs, st.RemoteReports = 12, uint64(i)
		if err := sr.add(time.Duration(i)*time.Second, []media.StreamStats{st}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sr.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	out := filepath.Join(dir, "call.svg")
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"--home", dir, "report", csv, "--svg", out}, nil, &stdout, &stderr); err != nil {
		t.Fatalf("z5 report: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"call.csv: 10 rows", "video sent (far end's view)  Bitrate kb/s            500.0    500.0    500.0", "Round-trip time ms", "chart: " + out} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	svg, err := os.ReadFile(out)
	if err != nil || !bytes.Contains(svg, []byte("<title id=\"title\">Call quality: call.csv</title>")) {
		t.Errorf("svg: %v\n%.300s", err, svg)
	}
}

func TestReportErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("a,b\n"), 0o600)
	for _, tc := range []struct {
		args  []string
		usage bool
		want  string
	}{
		{[]string{"report"}, true, "want one STATS.csv"},
		{[]string{"report", "a.csv", "b.csv"}, true, "want one STATS.csv"},
		{[]string{"report", filepath.Join(dir, "none.csv")}, false, "no such file"},
		{[]string{"report", bad}, false, "not a call stats file"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), append([]string{"--home", dir}, tc.args...), nil, &stdout, &stderr)
		var ue usageError
		if err == nil || errors.As(err, &ue) != tc.usage || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("z5 %v: %v (usage error %v), want %q", tc.args, err, errors.As(err, &ue), tc.want)
		}
	}
}
