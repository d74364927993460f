package provider

import (
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/z5vrs/z5/internal/config"
)

// runtimeTuning is what TuneRuntime sets: a GOGC, and a soft memory limit
// in bytes; -1 leaves either as it is.
type runtimeTuning struct {
	gcPercent   int
	memoryLimit int64
}

// tuningFor decides the runtime settings of [process] p: the
// environment's GOGC and GOMEMLIMIT, when set, are the operator's word
// and win (Go applied them at start).
func tuningFor(p config.Process, getenv func(string) string) runtimeTuning {
	t := runtimeTuning{gcPercent: p.GCPercent, memoryLimit: int64(p.MemoryLimitMB) << 20}
	if getenv("GOGC") != "" {
		t.gcPercent = -1
	}
	if getenv("GOMEMLIMIT") != "" || p.MemoryLimitMB == 0 {
		t.memoryLimit = -1
	}
	return t
}

// TuneRuntime applies [process] to this process's Go runtime (see
// config.Process for why its collector is not Go's default). Call it
// once, before serving.
func TuneRuntime(p config.Process, log *slog.Logger) {
	t := tuningFor(p, os.Getenv)
	if t.gcPercent >= 0 {
		debug.SetGCPercent(t.gcPercent)
	}
	if t.memoryLimit >= 0 {
		debug.SetMemoryLimit(t.memoryLimit)
	}
	log.Debug("go runtime tuned", "gc_percent", t.gcPercent, "memory_limit_bytes", t.memoryLimit)
}
