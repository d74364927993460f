package addressbook

import (
	"regexp"
	"time"
)

// Contact is one address-book entry of a number. Every field here survives
// a vCard export/import round trip. The store keeps contacts as this type
// and the client syncs them, so neither links the other.
type Contact struct {
	Owner        string // the number whose book this is
	ID           string // stable, URL-safe
	UID          string // vCard UID
	Name         string // FN
	GivenName    string
	FamilyName   string
	Number       string // the contact's videophone number (10 digits or SIP URI)
	Phones       []Phone
	Email        string
	Organization string
	Note         string
	Favorite     bool
	Version      int64 // ETag source; bumped by every update
	Rev          int64 // position in the book's change log
	UpdatedAt    time.Time
}

// Phone is an additional number of a contact.
type Phone struct {
	Type   string // "video", "voice", "text", "cell", "home", "work"
	Number string
}

// NumberPattern is a 10-digit NANP number: NXX-NXX-XXXX.
var NumberPattern = regexp.MustCompile(`^[2-9][0-9]{2}[2-9][0-9]{6}$`)
