package addressbook

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The vCard and xCard codecs share their contract, so their tests share
// these runners; each format brings its own documents.
type (
	encoder func(w io.Writer, contacts []Contact) error
	decoder func(r io.Reader, maxCards int, maxBytes int64) ([]Contact, error)
)

type decodeCase struct {
	name string
	in   string
	want []Contact
}

// runDecode checks that each document decodes (at most maxCards cards) to
// the contacts it wants.
func runDecode(t *testing.T, decode decoder, maxCards int, tests []decodeCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decode(strings.NewReader(tt.in), maxCards, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got, stored); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

type decodeErrorCase struct {
	name   string
	in     string
	want   string // the whole error message
	target error  // what the error wraps, or nil
}

// runDecodeErrors checks that each document fails to decode (at most 2
// cards) with exactly the message it wants, as an *Error wrapping target.
func runDecodeErrors(t *testing.T, decode decoder, tests []decodeErrorCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decode(strings.NewReader(tt.in), 2, 1<<20)
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %q\nwant %q", err, tt.want)
			}
			if tt.target != nil && !errors.Is(err, tt.target) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.target)
			}
			if _, ok := errors.AsType[*Error](err); !ok {
				t.Errorf("%T is not *Error", err)
			}
		})
	}
}

// fuzzDecode is what a fuzzer asserts of any document: decode rejects it
// with a short message, or accepts only valid contacts that, unless
// exportable (nil: all are) rejects one, survive our own export and import
// unchanged.
func fuzzDecode(t *testing.T, in string, encode encoder, decode decoder, exportable func(Contact) bool) {
	t.Helper()
	got, err := decode(strings.NewReader(in), 50, 64<<10)
	if err != nil {
		if len(err.Error()) > 1024 {
			t.Errorf("error message of %d bytes", len(err.Error()))
		}
		return
	}
	checkAccepted(t, got, encode, decode, exportable)
}

// checkAccepted asserts of contacts a decoder accepted that each is valid
// and, unless exportable (nil: all are) rejects one, that they survive our
// own export and import unchanged.
func checkAccepted(t *testing.T, got []Contact, encode encoder, decode decoder, exportable func(Contact) bool) {
	t.Helper()
	for i, c := range got {
		if err := Validate(c); err != nil {
			t.Fatalf("contact %d accepted but invalid: %v", i, err)
		}
	}
	for _, c := range got {
		if exportable != nil && !exportable(c) {
			return
		}
	}
	var out bytes.Buffer
	if err := encode(&out, got); err != nil {
		t.Fatal(err)
	}
	again, err := decode(&out, 50, 1<<20)
	if err != nil {
		t.Fatalf("re-import of our own export: %v\n%s", err, out.String())
	}
	if d := cmp.Diff(got, again, stored); d != "" {
		t.Fatalf("export/import changed contacts (-first +again):\n%s", d)
	}
}
