package location

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidate(t *testing.T) {
	ok := Address{Street: "350 Fifth Avenue", City: "New York", State: "NY", Zip: "10118"}
	with := func(f func(*Address)) Address { a := ok; f(&a); return a }
	tests := []struct {
		name string
		in   Address
		want Address  // when valid
		bad  []string // fields refused, in order
	}{
		{"plain", ok, with(func(a *Address) { a.Country = "US" }), nil},
		{"normalized", Address{Street: "  350   Fifth Avenue ", City: " New  York", State: " ny ", Zip: " 10118-0110 ", Country: "us"},
			Address{Street: "350 Fifth Avenue", City: "New York", State: "NY", Zip: "10118-0110", Country: "US"}, nil},
		{"accented city", with(func(a *Address) { a.City, a.State, a.Zip = "Mayagüez", "PR", "00680" }),
			Address{Street: "350 Fifth Avenue", City: "Mayagüez", State: "PR", Zip: "00680", Country: "US"}, nil},
		{"every territory", with(func(a *Address) { a.State = "MP" }), with(func(a *Address) { a.State, a.Country = "MP", "US" }), nil},
		{"street of 100", with(func(a *Address) { a.Street = strings.Repeat("a", 100) }),
			with(func(a *Address) { a.Street, a.Country = strings.Repeat("a", 100), "US" }), nil},
		{"street of 101", with(func(a *Address) { a.Street = strings.Repeat("a", 101) }), Address{}, []string{"street"}},
		{"city of 61", with(func(a *Address) { a.City = strings.Repeat("é", 61) }), Address{}, []string{"city"}},
		{"empty", Address{}, Address{}, []string{"street", "city", "state", "zip"}},
		{"blank street", with(func(a *Address) { a.Street = "   " }), Address{}, []string{"street"}},
		{"control character", with(func(a *Address) { a.Street = "1 Main\x00St" }), Address{}, []string{"street"}},
		{"line breaks are spaces", with(func(a *Address) { a.City = "New\nYork\u2028" }), with(func(a *Address) { a.Country = "US" }), nil},
		{"format character", with(func(a *Address) { a.City = "New\u200bYork" }), Address{}, []string{"city"}},
		{"invalid UTF-8", with(func(a *Address) { a.City = "New \xffYork" }), Address{}, []string{"city"}},
		{"unknown state", with(func(a *Address) { a.State = "XX" }), Address{}, []string{"state"}},
		{"state spelled out", with(func(a *Address) { a.State = "New York" }), Address{}, []string{"state"}},
		{"zip of 4", with(func(a *Address) { a.Zip = "1011" }), Address{}, []string{"zip"}},
		{"zip+4 without dash", with(func(a *Address) { a.Zip = "101180110" }), Address{}, []string{"zip"}},
		{"zip with letters", with(func(a *Address) { a.Zip = "1011A" }), Address{}, []string{"zip"}},
		{"zip of arabic-indic digits", with(func(a *Address) { a.Zip = "١٢٣٤٥" }), Address{}, []string{"zip"}},
		{"other country", with(func(a *Address) { a.Country = "CA" }), Address{}, []string{"country"}},
		{"two wrong", with(func(a *Address) { a.State, a.Zip = "ZZ", "x" }), Address{}, []string{"state", "zip"}},
	}
	for _, tt := range tests {
		got, err := Validate(tt.in)
		if tt.bad == nil {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			} else if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("%s: (-want +got)\n%s", tt.name, d)
			}
			continue
		}
		var fe Errors
		if !errors.As(err, &fe) {
			t.Errorf("%s: error %v, want Errors", tt.name, err)
			continue
		}
		var fields []string
		for _, f := range fe {
			fields = append(fields, f.Field)
			if f.Message == "" {
				t.Errorf("%s: %s has no message", tt.name, f.Field)
			}
		}
		if d := cmp.Diff(tt.bad, fields); d != "" {
			t.Errorf("%s: fields refused (-want +got)\n%s", tt.name, d)
		}
		if got != (Address{}) {
			t.Errorf("%s: refused address returned %+v", tt.name, got)
		}
	}
}

// TestValidateEchoIsBounded: what an error repeats of the input is short
// and valid UTF-8, whatever was sent.
func TestValidateEchoIsBounded(t *testing.T) {
	_, err := Validate(Address{Street: "x", City: "y", State: strings.Repeat("\xff", 5000), Zip: strings.Repeat("9", 5000)})
	if err == nil {
		t.Fatal("accepted")
	}
	msg := err.Error()
	if len(msg) > 400 || !strings.Contains(msg, "...") || strings.Contains(msg, "\xff") {
		t.Errorf("error echoes too much or invalid UTF-8 (%d bytes): %q", len(msg), msg)
	}
}

func TestStates(t *testing.T) {
	if len(States) != 56 {
		t.Errorf("%d state codes, want 56 (50 states, DC, 5 territories)", len(States))
	}
	for code := range States {
		if len(code) != 2 || strings.ToUpper(code) != code {
			t.Errorf("state code %q", code)
		}
	}
}

func TestSplitStreet(t *testing.T) {
	for _, tt := range []struct{ street, hno, rd string }{
		{"350 Fifth Avenue", "350", "Fifth Avenue"},
		{"1600 Pennsylvania Ave NW", "1600", "Pennsylvania Ave NW"},
		{"12B Elm St", "12B", "Elm St"},
		{"One Infinite Loop", "", "One Infinite Loop"},
		{"Broadway", "", "Broadway"},
		{"350", "", "350"},
	} {
		hno, rd := Address{Street: tt.street}.SplitStreet()
		if hno != tt.hno || rd != tt.rd {
			t.Errorf("SplitStreet(%q) = %q, %q; want %q, %q", tt.street, hno, rd, tt.hno, tt.rd)
		}
	}
}

func TestOneLine(t *testing.T) {
	a := Address{Street: "1 Main St", City: "Austin", State: "TX", Zip: "78701", Country: "US"}
	if got, want := a.OneLine(), "1 Main St, Austin, TX 78701"; got != want {
		t.Errorf("OneLine = %q, want %q", got, want)
	}
}
