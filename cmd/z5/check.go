package main

import (
	"context"
)

func (e *env) check(ctx context.Context, args []string) error {
	return usagef("check: the network readiness check is not built yet")
}
