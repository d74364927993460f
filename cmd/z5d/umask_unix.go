//go:build unix

package main

import "syscall"

// ownerOnly makes every file z5d creates (database, WAL, keys, profile)
// readable by its own user only, whatever umask it was started with: the
// database holds digests that register as the users.
func ownerOnly() { syscall.Umask(0o077) }
