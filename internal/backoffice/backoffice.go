// Package backoffice is the provider's back office: creating customers,
// their numbers, standard SIP devices, contacts and registered locations,
// interpreters and staff, with the same validation the APIs apply.
// `z5d admin` and `z5d demo` call it.
package backoffice

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/z5vrs/z5/internal/addressbook"
	"github.com/z5vrs/z5/internal/password"
	"github.com/z5vrs/z5/internal/store"
)

// Store is what the back office writes to and checks against.
type Store interface {
	CreateCustomer(ctx context.Context, c store.Customer) (store.Customer, error)
	CustomerByUsername(ctx context.Context, username string) (store.Customer, error)
	AddNumber(ctx context.Context, n store.Number) error
	Number(ctx context.Context, number string) (store.Number, error)
	CreateDevice(ctx context.Context, d store.Device) (store.Device, error)
	CreateContact(ctx context.Context, c store.Contact, maxContacts int) (store.Contact, error)
	DeleteCustomer(ctx context.Context, customerID int64) error
	SetLocation(ctx context.Context, loc store.Location) error
	Location(ctx context.Context, customerID int64) (store.Location, error)
}

var (
	usernameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{1,63}$`)
	sipUserRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// ErrInvalid marks input that fails validation.
var ErrInvalid = errors.New("invalid")

// AddCustomer creates a customer who logs in to ZDial with username and
// password (stored as argon2id only).
func AddCustomer(ctx context.Context, st Store, username, displayName, pw string) (store.Customer, error) {
	return addAccount(ctx, st, store.Customer{Username: username, DisplayName: displayName, Role: store.RoleCustomer}, pw)
}

// addAccount validates and creates an account of any role.
func addAccount(ctx context.Context, st Store, c store.Customer, pw string) (store.Customer, error) {
	c.Username = strings.ToLower(strings.TrimSpace(c.Username))
	if !usernameRE.MatchString(c.Username) {
		return store.Customer{}, fmt.Errorf("%w: username %q: use 2-64 of a-z 0-9 . _ @ -", ErrInvalid, c.Username)
	}
	hash, err := password.Hash(pw)
	if err != nil {
		return store.Customer{}, fmt.Errorf("%w: password: %v", ErrInvalid, err)
	}
	if c.DisplayName == "" {
		c.DisplayName = c.Username
	}
	c.PasswordHash, c.CreatedAt = hash, time.Now()
	got, err := st.CreateCustomer(ctx, c)
	if err != nil {
		return got, fmt.Errorf("create %s %q: %w", c.EffectiveRole(), c.Username, err)
	}
	return got, nil
}

// NormalizeNumber accepts 10-digit NANP numbers written with punctuation or
// a leading +1 / 1, and returns the 10 digits.
func NormalizeNumber(s string) (string, error) {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')' || r == '+':
		default:
			return "", fmt.Errorf("%w: number %q: unexpected %q", ErrInvalid, s, r)
		}
	}
	d := b.String()
	if len(d) == 11 && d[0] == '1' {
		d = d[1:]
	}
	if !store.NumberPattern.MatchString(d) {
		return "", fmt.Errorf("%w: number %q: want a 10-digit North American number (NXX-NXX-XXXX)", ErrInvalid, s)
	}
	return d, nil
}

// AddNumber gives a customer (by username) a phone number.
func AddNumber(ctx context.Context, st Store, username, number, label string) (store.Number, error) {
	c, err := st.CustomerByUsername(ctx, strings.ToLower(username))
	if err != nil {
		return store.Number{}, fmt.Errorf("customer %q: %w", username, err)
	}
	if r := c.EffectiveRole(); r != store.RoleCustomer {
		// An interpreter's one address is its station number, given with
		// the account; staff have none.
		return store.Number{}, fmt.Errorf("%w: %s is %s %s: only customers hold phone numbers", ErrInvalid, c.Username, article(r), r)
	}
	d, err := NormalizeNumber(number)
	if err != nil {
		return store.Number{}, err
	}
	n := store.Number{Number: d, CustomerID: c.ID, Label: label, CreatedAt: time.Now()}
	if err := st.AddNumber(ctx, n); err != nil {
		return n, fmt.Errorf("add number %s: %w", d, err)
	}
	return n, nil
}

// AddSIPDevice creates credentials for a standard SIP endpoint of number
// (a third-party videophone): it registers with digest auth and no Z5
// license. sipUser defaults to the number itself.
func AddSIPDevice(ctx context.Context, st Store, realm, number, sipUser, pw, name string) (store.Device, error) {
	d, err := NormalizeNumber(number)
	if err != nil {
		return store.Device{}, err
	}
	if _, err := st.Number(ctx, d); err != nil {
		return store.Device{}, fmt.Errorf("number %s: %w", d, err)
	}
	if sipUser == "" {
		sipUser = d
	}
	if !sipUserRE.MatchString(sipUser) {
		return store.Device{}, fmt.Errorf("%w: SIP username %q", ErrInvalid, sipUser)
	}
	if len(pw) < 8 {
		return store.Device{}, fmt.Errorf("%w: SIP password must have at least 8 characters", ErrInvalid)
	}
	dev, err := st.CreateDevice(ctx, store.Device{
		Number: d, Kind: store.DeviceSIP, Name: name, SIPUser: sipUser,
		Cred: store.NewCredentials(sipUser, realm, pw), CreatedAt: time.Now(),
	})
	if err != nil {
		return dev, fmt.Errorf("create device %s: %w", sipUser, err)
	}
	return dev, nil
}

// AddContact adds an entry to number's address book.
func AddContact(ctx context.Context, st Store, owner, name, contactNumber string, maxContacts int) (store.Contact, error) {
	o, err := NormalizeNumber(owner)
	if err != nil {
		return store.Contact{}, err
	}
	if _, err := st.Number(ctx, o); err != nil {
		return store.Contact{}, fmt.Errorf("number %s: %w", o, err)
	}
	cn := contactNumber
	if !strings.HasPrefix(cn, "sip:") {
		if cn, err = NormalizeNumber(contactNumber); err != nil {
			return store.Contact{}, err
		}
	}
	c := store.Contact{Owner: o, Name: name, Number: cn}
	if err := addressbook.Validate(c); err != nil {
		return store.Contact{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return st.CreateContact(ctx, c, maxContacts)
}
