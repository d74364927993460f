// Package location checks a registered location: the civic address a
// customer gives for 911, stored with the account and sent to the PSAP
// with an emergency call. Validate is the one rule every entry point
// (admin, MCS API, client) applies. It is a leaf package: the client links
// it without the store.
package location

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Field length bounds, in characters.
const (
	MaxStreet = 100
	MaxCity   = 60
)

// Country is the only country a registered location may be in: the
// service is for US numbers.
const Country = "US"

// States are the USPS codes a location's state may be: the 50 states, DC,
// and the territories with NANP numbers (PR, VI, GU, AS, MP).
var States = map[string]string{
	"AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
	"CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "FL": "Florida", "GA": "Georgia",
	"HI": "Hawaii", "ID": "Idaho", "IL": "Illinois", "IN": "Indiana", "IA": "Iowa",
	"KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana", "ME": "Maine", "MD": "Maryland",
	"MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota", "MS": "Mississippi", "MO": "Missouri",
	"MT": "Montana", "NE": "Nebraska", "NV": "Nevada", "NH": "New Hampshire", "NJ": "New Jersey",
	"NM": "New Mexico", "NY": "New York", "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio",
	"OK": "Oklahoma", "OR": "Oregon", "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina",
	"SD": "South Dakota", "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont",
	"VA": "Virginia", "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming",
	"DC": "District of Columbia",
	"PR": "Puerto Rico", "VI": "U.S. Virgin Islands", "GU": "Guam", "AS": "American Samoa", "MP": "Northern Mariana Islands",
}

var zipRE = regexp.MustCompile(`^[0-9]{5}(-[0-9]{4})?$`)

// Address is a validated civic address (what Validate returns): fields
// trimmed, State upper case, Country "US". It is what a PIDF-LO civic
// address is made from (RFC 5139: A1 = State, A3 = City, PC = Zip, RD and
// HNO from Street).
type Address struct {
	Street  string `json:"street"`
	City    string `json:"city"`
	State   string `json:"state"`
	Zip     string `json:"zip"`
	Country string `json:"country"`
}

// FieldError is one field that failed validation; Field is the JSON name.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Errors are every field that failed, in field order.
type Errors []FieldError

func (e Errors) Error() string {
	parts := make([]string, len(e))
	for i, f := range e {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid location: " + strings.Join(parts, "; ")
}

// Validate checks a and returns it normalized, or Errors naming every
// field that is wrong. An empty Country is "US".
func Validate(a Address) (Address, error) {
	a = Address{
		Street:  collapse(a.Street),
		City:    collapse(a.City),
		State:   strings.ToUpper(strings.TrimSpace(a.State)),
		Zip:     strings.TrimSpace(a.Zip),
		Country: strings.ToUpper(strings.TrimSpace(a.Country)),
	}
	if a.Country == "" {
		a.Country = Country
	}
	var errs Errors
	if msg := text(a.Street, MaxStreet); msg != "" {
		errs = append(errs, FieldError{"street", msg})
	}
	if msg := text(a.City, MaxCity); msg != "" {
		errs = append(errs, FieldError{"city", msg})
	}
	if _, ok := States[a.State]; !ok {
		errs = append(errs, FieldError{"state", fmt.Sprintf("%q is not a USPS state code (two letters, e.g. NY; DC, PR, VI, GU, AS and MP too)", clip(a.State))})
	}
	if !zipRE.MatchString(a.Zip) {
		errs = append(errs, FieldError{"zip", fmt.Sprintf("%q is not a ZIP code (5 digits, or 5+4 as 12345-6789)", clip(a.Zip))})
	}
	if a.Country != Country {
		errs = append(errs, FieldError{"country", fmt.Sprintf("%q: only US addresses can be registered", clip(a.Country))})
	}
	if errs != nil {
		return Address{}, errs
	}
	return a, nil
}

// collapse trims s and turns each run of spaces into one, so the same
// address is stored one way.
func collapse(s string) string { return strings.Join(strings.Fields(s), " ") }

// text checks a free-text field: 1 to max printable characters.
func text(s string, max int) string {
	if !utf8.ValidString(s) {
		return "not valid UTF-8"
	}
	n := utf8.RuneCountInString(s)
	switch {
	case n == 0:
		return "required"
	case n > max:
		return fmt.Sprintf("%d characters, at most %d", n, max)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Sprintf("holds the unprintable character %U", r)
		}
	}
	return ""
}

// clip bounds what an error echoes of the input, as valid UTF-8.
func clip(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if r := []rune(s); len(r) > 20 {
		return string(r[:20]) + "..."
	}
	return s
}

// OneLine is the address on one line, "street, city, ST zip": how an
// interpreter's station shows a 911 caller's location.
func (a Address) OneLine() string {
	return a.Street + ", " + a.City + ", " + a.State + " " + a.Zip
}

// SplitStreet splits Street into a house number and the rest (RFC 5139
// HNO and RD) when it begins with a number ("350 Fifth Avenue" -> "350",
// "Fifth Avenue"); otherwise the house number is empty.
func (a Address) SplitStreet() (houseNumber, road string) {
	hno, rest, ok := strings.Cut(a.Street, " ")
	if !ok || hno == "" || rest == "" || !unicode.IsDigit(rune(hno[0])) {
		return "", a.Street
	}
	return hno, rest
}
