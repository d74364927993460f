//go:build !linux

package cli

import (
	"errors"
	"os"
)

// Keys is only implemented on Linux; elsewhere interactive answering is
// not offered.
func Keys(f *os.File) (<-chan byte, func(), error) {
	return nil, nil, errors.New("single-key input is only supported on Linux")
}

// noEcho is left to term.ReadPassword elsewhere.
func noEcho(*os.File) (func(), error) { return func() {}, nil }
