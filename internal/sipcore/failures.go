package sipcore

import "time"

// Failures is the count of failed digests for one key (a source and user,
// or an account) in the window that opened at Since.
type Failures struct {
	Count int
	Since time.Time
}

// ReserveFailure decides whether one more digest may be checked for a key
// whose failures are f, max failures being allowed within window. When it
// may, the check is counted as a failure in advance (next): concurrent
// guesses then cannot all pass the limit before any of them is counted.
// A check that turns out not to be a wrong guess gives it back with
// ReleaseFailure. With enforce false the check always proceeds, still
// reserved (a device on its own registered connection).
func ReserveFailure(f Failures, max int, window time.Duration, now time.Time, enforce bool) (next Failures, ok bool) {
	if f.Count == 0 || now.Sub(f.Since) > window {
		f = Failures{Since: now}
	}
	if enforce && f.Count >= max {
		return f, false
	}
	f.Count++
	return f, true
}

// ReleaseFailure gives back one reserved failure.
func ReleaseFailure(f Failures) Failures {
	if f.Count > 0 {
		f.Count--
	}
	return f
}

// FailureBlocked reports whether a key with failures f is at the limit.
func FailureBlocked(f Failures, max int, window time.Duration, now time.Time) bool {
	return f.Count >= max && now.Sub(f.Since) <= window
}
