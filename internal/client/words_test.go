package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/z5vrs/z5/internal/addressbook"
)

// TestPlainNetError: connection failures read as words, not as the SIP
// stack's internals, and still match errors.Is.
func TestPlainNetError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("client transcation failed to request connection: Transport<TCP> dial err=%w", syscall.ECONNREFUSED), "connection refused: nothing listens there"},
		{errors.New("Transport<TCP> dial err=dial tcp 127.0.0.1:5060: connect: connection refused"), "connection refused"},
		{fmt.Errorf("ping: %w", context.DeadlineExceeded), "no answer in time"},
		{fmt.Errorf("x: %w", syscall.EHOSTUNREACH), "no route to the server"},
		{errors.New("something else"), "something else"},
	} {
		got := plainNetError(tc.err)
		if !strings.HasPrefix(got.Error(), tc.want) || strings.Contains(got.Error(), "transcation") || !errors.Is(got, tc.err) {
			t.Errorf("plainNetError(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestCallHints: busy only for 486/600, declined for 603, no answer for
// 408 and 480.
func TestCallHints(t *testing.T) {
	for _, tc := range []struct {
		ce   *CallError
		want string
	}{
		{&CallError{Status: 486, Err: ErrBusy}, "busy"},
		{&CallError{Status: 600, Err: ErrBusy}, "busy"},
		{&CallError{Status: 603, Err: ErrDeclined}, "declined"},
		{&CallError{Status: 408, Err: fmt.Errorf("%w: no answer", ErrUnavailable)}, "nobody answered"},
		{&CallError{Status: 480, Err: ErrUnavailable}, "not signed in or did not answer"},
		{&CallError{Status: 404, Err: ErrUnavailable}, "check the number"},
	} {
		if got := callHint(tc.ce); !strings.Contains(got, tc.want) {
			t.Errorf("callHint(%d) = %q, want %q", tc.ce.Status, got, tc.want)
		}
		if tc.ce.Status != 486 && tc.ce.Status != 600 && strings.Contains(callHint(tc.ce), "busy") {
			t.Errorf("callHint(%d) says busy", tc.ce.Status)
		}
	}
}

// TestCallingYourself: dialing your own number (or a contact holding it)
// is refused before any INVITE, in words, not as "not signed in".
func TestCallingYourself(t *testing.T) {
	p := &Phone{c: &Client{state: &State{Number: "2025550101",
		Contacts: []addressbook.Contact{{ID: "c1", Name: "Me", Number: "2025550101"}}}}}
	for _, target := range []string{"2025550101", "+12025550101", "Me"} {
		_, err := p.Call(t.Context(), target, MediaOptions{}, nil)
		var se *StepError
		if !errors.Is(err, ErrCallingSelf) || !errors.As(err, &se) || se.Hint == "" || strings.Contains(err.Error(), "not signed in") {
			t.Errorf("Call(%q) = %v", target, err)
		}
	}
}
