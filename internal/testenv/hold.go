package testenv

import "context"

// Hold waits until hold is closed, or until ctx ends and then returns its
// error; a nil hold returns at once. Fake stores use it to keep a write in
// flight while a test looks at what waits behind it.
func Hold(ctx context.Context, hold <-chan struct{}) error {
	if hold == nil {
		return nil
	}
	select {
	case <-hold:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
