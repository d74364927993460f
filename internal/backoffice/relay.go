package backoffice

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/z5vrs/z5/internal/location"
	"github.com/z5vrs/z5/internal/store"
)

// AddInterpreter creates an interpreter (a communications assistant) with
// its CA ID and its station number (store.StationNumber), which its
// station logs in, selects and registers like a phone number. If the
// station number cannot be added the account is removed again.
func AddInterpreter(ctx context.Context, st Store, username, displayName, caID, pw string) (store.Customer, error) {
	caID = strings.TrimSpace(caID)
	if !store.CAIDPattern.MatchString(caID) {
		return store.Customer{}, fmt.Errorf("%w: CA ID %q: use 1-16 letters and digits", ErrInvalid, caID)
	}
	c, err := addAccount(ctx, st, store.Customer{Username: username, DisplayName: displayName, Role: store.RoleInterpreter, CAID: caID}, pw)
	if err != nil {
		return c, err
	}
	n := store.Number{Number: store.StationNumber(caID), CustomerID: c.ID, Label: "station"}
	if err := st.AddNumber(ctx, n); err != nil {
		err = fmt.Errorf("add station number %s: %w", n.Number, err)
		if derr := st.DeleteCustomer(ctx, c.ID); derr != nil {
			err = errors.Join(err, fmt.Errorf("remove interpreter %q again: %w", c.Username, derr))
		}
		return store.Customer{}, err
	}
	return c, nil
}

// AddStaff creates a staff account: it logs in to ZDial (the operator
// view) and holds no numbers.
func AddStaff(ctx context.Context, st Store, username, displayName, pw string) (store.Customer, error) {
	return addAccount(ctx, st, store.Customer{Username: username, DisplayName: displayName, Role: store.RoleStaff}, pw)
}

// RemoveInterpreter removes an interpreter account with its station
// number, devices and sessions; its call records stay. Only interpreters
// are removed this way.
func RemoveInterpreter(ctx context.Context, st Store, username string) (store.Customer, error) {
	c, err := st.CustomerByUsername(ctx, strings.ToLower(strings.TrimSpace(username)))
	if err != nil {
		return c, fmt.Errorf("interpreter %q: %w", username, err)
	}
	if c.Role != store.RoleInterpreter {
		return c, fmt.Errorf("%w: %s is %s %s, not an interpreter", ErrInvalid, c.Username, article(c.EffectiveRole()), c.EffectiveRole())
	}
	if err := st.DeleteCustomer(ctx, c.ID); err != nil {
		return c, fmt.Errorf("remove interpreter %q: %w", c.Username, err)
	}
	return c, nil
}

// SetLocation validates a and makes it the registered location of the
// customer username; by says who set it (the audit trail keeps it).
// Invalid input is ErrInvalid wrapping location.Errors.
func SetLocation(ctx context.Context, st Store, username string, a location.Address, by string) (store.Location, error) {
	c, err := st.CustomerByUsername(ctx, strings.ToLower(strings.TrimSpace(username)))
	if err != nil {
		return store.Location{}, fmt.Errorf("customer %q: %w", username, err)
	}
	if c.EffectiveRole() != store.RoleCustomer {
		return store.Location{}, fmt.Errorf("%w: %s is %s %s: only customers have a registered location", ErrInvalid, c.Username, article(c.EffectiveRole()), c.EffectiveRole())
	}
	return SetLocationOf(ctx, st, c.ID, a, by)
}

// SetLocationOf is SetLocation by customer ID; it returns the location as
// stored.
func SetLocationOf(ctx context.Context, st Store, customerID int64, a location.Address, by string) (store.Location, error) {
	v, err := location.Validate(a)
	if err != nil {
		return store.Location{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := st.SetLocation(ctx, Stored(v, customerID, by)); err != nil {
		return store.Location{}, fmt.Errorf("set location: %w", err)
	}
	l, err := st.Location(ctx, customerID)
	if err != nil {
		return store.Location{}, fmt.Errorf("read back location: %w", err)
	}
	return l, nil
}

// Address is the address of a stored location.
func Address(l store.Location) location.Address {
	return location.Address{Street: l.Street, City: l.City, State: l.State, Zip: l.Zip, Country: l.Country}
}

// Stored is a (validated) as the stored location of customerID, set by who.
func Stored(a location.Address, customerID int64, by string) store.Location {
	return store.Location{CustomerID: customerID, Street: a.Street, City: a.City, State: a.State, Zip: a.Zip, Country: a.Country, UpdatedBy: by}
}

// article is "a" or "an" before a role name.
func article(role string) string {
	if strings.HasPrefix(role, "i") {
		return "an"
	}
	return "a"
}
