package provider

import (
	"testing"

	"github.com/z5vrs/z5/internal/config"
)

// TestTuningFor: the config's settings unless the environment set GOGC or
// GOMEMLIMIT; no memory limit unless one is configured.
func TestTuningFor(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    config.Process
		env  map[string]string
		want runtimeTuning
	}{
		{"defaults", config.Process{GCPercent: 400}, nil, runtimeTuning{400, -1}},
		{"limit", config.Process{GCPercent: 200, MemoryLimitMB: 1024}, nil, runtimeTuning{200, 1 << 30}},
		{"GOGC set", config.Process{GCPercent: 400, MemoryLimitMB: 64}, map[string]string{"GOGC": "100"}, runtimeTuning{-1, 64 << 20}},
		{"GOMEMLIMIT set", config.Process{GCPercent: 400, MemoryLimitMB: 64}, map[string]string{"GOMEMLIMIT": "1GiB"}, runtimeTuning{400, -1}},
	} {
		got := tuningFor(tc.p, func(k string) string { return tc.env[k] })
		if got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
