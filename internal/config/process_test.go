package config

import (
	"strings"
	"testing"
)

// TestProcess: [process] gc_percent is 100 unless set, memory_limit_mb
// none; values out of range are refused with the key.
func TestProcess(t *testing.T) {
	for _, tc := range []struct {
		extra       string
		gc, limitMB int
		err         string
	}{
		{"", 100, 0, ""},
		{"gc_percent = 400\n", 400, 0, ""},
		{"memory_limit_mb = 2048\n", 100, 2048, ""},
		{"gc_percent = 5\n", 0, 0, "process.gc_percent: 5: must be 25 to 10000"},
		{"memory_limit_mb = -1\n", 0, 0, "process.memory_limit_mb: -1: must be 0 to"},
	} {
		c, err := Parse("test.toml", append(devTOML[:len(devTOML):len(devTOML)], "\n[process]\n"+tc.extra...))
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.extra, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.extra, err)
		case c.Process.GCPercent != tc.gc || c.Process.MemoryLimitMB != tc.limitMB:
			t.Errorf("%q: gc_percent %d, memory_limit_mb %d; want %d, %d", tc.extra, c.Process.GCPercent, c.Process.MemoryLimitMB, tc.gc, tc.limitMB)
		}
	}
}
