package demo

import (
	"strings"
	"testing"
)

// TestRecordingsNote: the demo names its recordings' path only when they
// outlive it (--data); from a temp dir it says they are removed and names
// no path.
func TestRecordingsNote(t *testing.T) {
	for _, tc := range []struct {
		name      string
		kept      bool
		want, not []string
	}{
		{"kept", true, []string{"alice-received.mkv, bob-received.mkv in /data/recordings", "ffplay"}, []string{"removed"}},
		{"temp dir", false, []string{"removed", "--data DIR"}, []string{"/tmp/z5-demo-1/recordings", "alice-received.mkv"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := "/tmp/z5-demo-1/recordings"
			if tc.kept {
				dir = "/data/recordings"
			}
			got := recordingsNote(tc.kept, dir, dir+"/alice-received.mkv", dir+"/bob-received.mkv")
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("%q names %q", got, n)
				}
			}
		})
	}
}
