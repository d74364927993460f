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
		c := parseWant(t, tc.extra, append(devTOML[:len(devTOML):len(devTOML)], "\n[process]\n"+tc.extra...), tc.err)
		if c != nil && (c.Process.GCPercent != tc.gc || c.Process.MemoryLimitMB != tc.limitMB) {
			t.Errorf("%q: gc_percent %d, memory_limit_mb %d; want %d, %d", tc.extra, c.Process.GCPercent, c.Process.MemoryLimitMB, tc.gc, tc.limitMB)
		}
	}
}

// parseWant parses src, the case named by what it added, and checks its
// error against wantErr (a part of the message; "" wants none). It returns
// the config when there is one left to check, else nil.
func parseWant(t *testing.T, added string, src []byte, wantErr string) *Config {
	t.Helper()
	c, err := Parse("test.toml", src)
	switch {
	case wantErr != "":
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%q: error %v, want %q", added, err, wantErr)
		}
		return nil
	case err != nil:
		t.Errorf("%q: %v", added, err)
		return nil
	}
	return c
}
