// Package addressbook is the phone's address book without transport: what a
// valid contact is, and how a contact maps to and from vCard 4.0 (RFC 6350).
// The MCS HTTPS API (step 3), CardDAV and the client's import/export all
// share these rules, so a contact accepted by one is accepted by all and
// survives an export/import round trip unchanged.
package addressbook

import (
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/z5vrs/z5/internal/clip"
)

// Limits of one contact.
const (
	MaxFieldLen  = 256  // characters, every single-line field
	MaxNoteBytes = 4096 // bytes of the note
	MaxPhones    = 20
)

// PhoneTypes are the kinds of Phone.Type, in the order a vCard TEL with
// several TYPE values is mapped to one.
var PhoneTypes = []string{"video", "cell", "text", "home", "work", "voice"}

var (
	e164    = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	sipHost = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?$`)
)

// FieldError is one problem with one field, named as in the JSON API
// ("name", "phones[2].number").
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Invalid lists every problem found in a contact.
type Invalid []*FieldError

func (v Invalid) Error() string {
	s := make([]string, len(v))
	for i, e := range v {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

// Normalize returns c with surrounding blanks trimmed from single-line
// fields, phone numbers in canonical form (see NormalizeNumber) and note line
// ends as LF. It is idempotent, and what Validate checks is its result.
func Normalize(c Contact) Contact {
	c.UID = strings.TrimSpace(c.UID)
	c.Name = strings.TrimSpace(c.Name)
	c.GivenName = strings.TrimSpace(c.GivenName)
	c.FamilyName = strings.TrimSpace(c.FamilyName)
	c.Number = NormalizeNumber(c.Number)
	c.Email = strings.TrimSpace(c.Email)
	c.Organization = strings.TrimSpace(c.Organization)
	c.Note = strings.ReplaceAll(strings.ReplaceAll(c.Note, "\r\n", "\n"), "\r", "\n")
	if c.Phones != nil {
		ps := make([]Phone, len(c.Phones))
		for i, p := range c.Phones {
			ps[i] = Phone{Type: strings.ToLower(strings.TrimSpace(p.Type)), Number: NormalizeNumber(p.Number)}
		}
		c.Phones = ps
	}
	return c
}

// NormalizeNumber puts a phone number in the form contacts store: a NANP
// number written any usual way ("(202) 555-0123", "+1 202 555 0123",
// "tel:+1-202-555-0123") becomes its 10 digits, another international
// number becomes E.164 ("+442079460000"), a SIP URI gets a lower-case
// scheme. Anything else is returned trimmed, for Validate to reject.
func NormalizeNumber(s string) string {
	s = strings.TrimSpace(s)
	orig := s
	if scheme, rest, ok := strings.Cut(s, ":"); ok {
		switch strings.ToLower(scheme) {
		case "sip", "sips":
			return strings.ToLower(scheme) + ":" + rest
		case "tel":
			// RFC 3966 parameters (";ext=", ";phone-context=") have no
			// place in a stored number. What does not normalize is kept as
			// the bare number, so "tel:X" and "X" validate alike (our own
			// export writes E.164-shaped numbers as tel: URIs).
			s, _, _ = strings.Cut(rest, ";")
			orig = s
		default:
			return s
		}
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && i == 0:
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')' || r == '/' || r == '\u00a0':
			// RFC 3966 visual separators, and what people type.
		default:
			return orig
		}
	}
	d := b.String()
	switch {
	case NumberPattern.MatchString(d):
		return d
	case len(d) == 11 && d[0] == '1' && NumberPattern.MatchString(d[1:]):
		return d[1:]
	case len(d) == 12 && strings.HasPrefix(d, "+1") && NumberPattern.MatchString(d[2:]):
		return d[2:]
	case e164.MatchString(d) && !strings.HasPrefix(d, "+1"):
		return d
	}
	return orig
}

// Validate reports every problem of c (as Invalid), or nil. It does not
// normalize: pass Normalize(c) for input typed by people.
func Validate(c Contact) error {
	var errs Invalid
	add := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	line := func(field, v string) {
		if msg := checkText(v, MaxFieldLen, false); msg != "" {
			add(field, "%s", msg)
		}
	}

	line("uid", c.UID)
	if strings.TrimSpace(c.Name) == "" {
		add("name", "required")
	} else {
		line("name", c.Name)
	}
	line("given_name", c.GivenName)
	line("family_name", c.FamilyName)
	switch {
	case c.Number == "":
		add("number", "required: a 10-digit number or a sip: URI")
	default:
		if msg := checkNumber(c.Number, false); msg != "" {
			add("number", "%s", msg)
		}
	}
	phones := c.Phones
	if len(phones) > MaxPhones {
		add("phones", "%d entries, at most %d", len(phones), MaxPhones)
		phones = nil // one clear message, not one per entry
	}
	for i, p := range phones {
		if !slices.Contains(PhoneTypes, p.Type) {
			add(fmt.Sprintf("phones[%d].type", i), "%q is not one of %s", clip.String(p.Type, 40), strings.Join(PhoneTypes, ", "))
		}
		if p.Number == "" {
			add(fmt.Sprintf("phones[%d].number", i), "required")
		} else if msg := checkNumber(p.Number, true); msg != "" {
			add(fmt.Sprintf("phones[%d].number", i), "%s", msg)
		}
	}
	if c.Email != "" {
		if msg := checkText(c.Email, MaxFieldLen, false); msg != "" {
			add("email", "%s", msg)
		} else if a, err := mail.ParseAddress(c.Email); err != nil || a.Address != c.Email || a.Name != "" {
			add("email", "%q is not an e-mail address (want user@example.com)", clip.String(c.Email, 40))
		}
	}
	line("organization", c.Organization)
	if len(c.Note) > MaxNoteBytes {
		add("note", "%d bytes, at most %d", len(c.Note), MaxNoteBytes)
	} else if msg := checkText(c.Note, MaxNoteBytes, true); msg != "" {
		add("note", "%s", msg)
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// checkText returns what is wrong with a text value, or "".
func checkText(v string, max int, multiline bool) string {
	if !utf8.ValidString(v) {
		return "not valid UTF-8"
	}
	if n := utf8.RuneCountInString(v); n > max {
		return fmt.Sprintf("%d characters, at most %d", n, max)
	}
	for i, r := range v {
		if multiline && (r == '\n' || r == '\t') {
			continue
		}
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return fmt.Sprintf("control character %U at byte %d", r, i)
		}
	}
	return ""
}

// checkNumber returns what is wrong with a contact's number, or "". The
// main number is what a Z5 calls: a NANP number or a SIP URI. Additional
// phones may also be international (E.164).
func checkNumber(n string, intl bool) string {
	if msg := checkText(n, MaxFieldLen, false); msg != "" {
		return msg
	}
	if NumberPattern.MatchString(n) {
		return ""
	}
	if intl && e164.MatchString(n) {
		return ""
	}
	if scheme, rest, ok := strings.Cut(n, ":"); ok && (scheme == "sip" || scheme == "sips") {
		return checkSIPURI(rest)
	}
	want := "a 10-digit NANP number (2025550123) or a sip: URI"
	if intl {
		want = "a 10-digit NANP number, an E.164 number (+442079460000) or a sip: URI"
	}
	return fmt.Sprintf("%q is not %s", clip.String(n, 40), want)
}

// checkSIPURI checks the part after "sip:": [user@]host[:port][;params],
// printable ASCII, no blanks (RFC 3261 section 19.1; loosely, as a phone
// book only stores it).
func checkSIPURI(rest string) string {
	for _, r := range rest {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`"<>\`, r) {
			return fmt.Sprintf("sip URI has a forbidden character %q", r)
		}
	}
	hostport, _, _ := strings.Cut(rest, ";")
	hostport, _, _ = strings.Cut(hostport, "?")
	if i := strings.LastIndexByte(hostport, '@'); i >= 0 {
		if i == 0 {
			return "sip URI has an empty user part"
		}
		hostport = hostport[i+1:]
	}
	if !sipHost.MatchString(hostport) {
		return fmt.Sprintf("sip URI host %q is not a host name or address", clip.String(hostport, 40))
	}
	return ""
}
