package main

import (
	"io"
	"os"

	"github.com/z5vrs/z5/internal/cli"
)

// typedText is what the user types for real-time text, chunk by chunk as
// it comes: key by key from a terminal (no Enter needed, no echo; Ctrl-C
// still hangs up), or bytes as they arrive from a pipe. stop restores the
// terminal; echo says it is one (what is typed is then shown by z5, not
// by the terminal). The pipe reader ends at end of input; a read blocked
// on a pipe cannot be cancelled, so it lives as long as the process.
func typedText(stdin io.Reader) (typed <-chan []byte, echo bool, stop func()) {
	out := make(chan []byte)
	if f, ok := stdin.(*os.File); ok && cli.IsTerminal(f) {
		keys, stopKeys, err := cli.Keys(f)
		if err == nil {
			done := make(chan struct{})
			go func() {
				defer close(out)
				for k := range keys {
					select {
					case out <- []byte{k}:
					case <-done:
						return
					}
				}
			}()
			return out, true, func() { close(done); stopKeys() }
		}
	}
	go func() {
		defer close(out)
		buf := make([]byte, 512)
		for {
			n, err := stdin.Read(buf)
			if n > 0 {
				out <- append([]byte(nil), buf[:n]...)
			}
			if err != nil {
				return
			}
		}
	}()
	return out, false, func() {}
}
