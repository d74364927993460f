package cli

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Keys reads single key presses (no Enter, no echo) from the terminal f
// until stop is called; stop restores the terminal and returns once the
// reader has ended. Output processing stays on, so "\n" still starts a
// new line.
func Keys(f *os.File) (keys <-chan byte, stop func(), err error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, nil, fmt.Errorf("terminal: %w", err)
	}
	t := *old
	t.Lflag &^= unix.ICANON | unix.ECHO
	// Reads return after a key or 0.1 s, so the reader notices stop.
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 0, 1
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &t); err != nil {
		return nil, nil, fmt.Errorf("terminal: %w", err)
	}
	ch := make(chan byte, 8)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		b := make([]byte, 1)
		for ctx.Err() == nil {
			n, err := unix.Read(fd, b)
			if err != nil && err != unix.EINTR && err != unix.EAGAIN {
				return
			}
			if n == 1 {
				select {
				case ch <- b[0]:
				case <-ctx.Done():
				}
			}
		}
	}()
	return ch, func() {
		cancel()
		<-done
		unix.IoctlSetTermios(fd, unix.TCSETS, old)
	}, nil
}

// noEcho turns the terminal's echo off before the password prompt is
// shown, so nothing typed right after the prompt appears can echo.
func noEcho(f *os.File) (restore func(), err error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	t := *old
	t.Lflag &^= unix.ECHO
	t.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &t); err != nil {
		return nil, err
	}
	return func() { unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}
