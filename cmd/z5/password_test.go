package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestLoginPasswordStdinLimit: z5 login --password-stdin reads its line
// with the admin commands' 4096-byte limit.
func TestLoginPasswordStdinLimit(t *testing.T) {
	var out, errb bytes.Buffer
	in := strings.NewReader(strings.Repeat("x", 5000) + "\n")
	err := run(context.Background(), []string{"--home", t.TempDir(), "login", "--username", "alice", "--password-stdin"}, in, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "longer than 4096 bytes") {
		t.Fatalf("login with a 5000-byte password: %v\n%s%s", err, out.String(), errb.String())
	}
}
