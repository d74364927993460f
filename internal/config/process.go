package config

// Process tunes the Go runtime of each z5d process. The environment's
// GOGC and GOMEMLIMIT, when set, win over both.
type Process struct {
	// GCPercent is the collector's GOGC: the heap may grow this many
	// percent past what was live after a collection before the next one
	// starts. Default 100, Go's own. A node's live heap is small next to
	// what each request allocates and drops, so under load it collects
	// many times a second, and every cycle also shrinks the stacks of
	// idle request goroutines, which the next request grows (copies)
	// again: 400 takes about a quarter off the CPU of a REGISTER at
	// 11,000/s, for a heap up to five times the live one between
	// collections and about a third more heap held after one
	// (BENCHMARKS.md, "REGISTER over one connection").
	GCPercent int `toml:"gc_percent"`
	// MemoryLimitMB is a soft limit on the Go heap and stacks (GOMEMLIMIT)
	// in MiB: nearing it, the collector runs as often as it must to stay
	// under it, whatever gc_percent allows. 0 (the default): none.
	MemoryLimitMB int `toml:"memory_limit_mb"`
}

func (p *Process) applyDefaults() {
	orDefault(&p.GCPercent, 100)
}

func (p *Process) validate() Errors {
	var ck checks
	ck.within("process.gc_percent", p.GCPercent, 25, 10000)
	ck.within("process.memory_limit_mb", p.MemoryLimitMB, 0, 1<<30)
	return ck.errs
}
