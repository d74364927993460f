package addressbook

import (
	"errors"
	"fmt"
	"strings"
)

// Errors callers branch on.
var (
	// ErrTooLarge: the input exceeds the byte limit given to Decode.
	ErrTooLarge = errors.New("vcard input too large")
	// ErrTooManyCards: the input holds more cards than allowed.
	ErrTooManyCards = errors.New("too many vcards")
	// ErrSyntax: the input is not vCard.
	ErrSyntax = errors.New("vcard syntax error")
)

// Error pins a decoding problem to its place in the input: which card
// (1-based, 0 when outside any card), which line, which property.
type Error struct {
	Card     int
	Line     int
	Property string
	Err      error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("vcard")
	switch {
	case e.Card > 0 && e.Line > 0:
		fmt.Fprintf(&b, " card %d, line %d", e.Card, e.Line)
	case e.Card > 0:
		fmt.Fprintf(&b, " card %d", e.Card)
	case e.Line > 0:
		fmt.Fprintf(&b, " line %d", e.Line)
	}
	b.WriteString(": ")
	if e.Property != "" {
		b.WriteString(e.Property)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// PropertyError is a problem FromVCard found in one property of a card;
// Index says which occurrence (0 for the first TEL, 1 for the second...).
type PropertyError struct {
	Property string
	Index    int
	Err      error
}

func (e *PropertyError) Error() string { return e.Property + ": " + e.Err.Error() }

func (e *PropertyError) Unwrap() error { return e.Err }
