package main

import (
	"bytes"
	"testing"
	"testing/synctest"
	"time"
)

// TestWhileSlow: a step that stays silent past slowNotice says it is still
// trying, once; a quick one says nothing; --json never.
func TestWhileSlow(t *testing.T) {
	for _, tc := range []struct {
		took time.Duration
		json bool
		want string
	}{
		{100 * time.Millisecond, false, ""},
		{slowNotice + time.Second, false, "still trying\n"},
		{3 * slowNotice, false, "still trying\n"},
		{slowNotice + time.Second, true, ""},
	} {
		synctest.Test(t, func(t *testing.T) {
			var out bytes.Buffer
			e := &env{stdout: &out, json: tc.json}
			stop := e.whileSlow("still trying")
			time.Sleep(tc.took)
			stop()
			stop() // idempotent: listen stops it early and again on return
			if out.String() != tc.want {
				t.Errorf("after %s (json %v): printed %q, want %q", tc.took, tc.json, out.String(), tc.want)
			}
		})
	}
}
