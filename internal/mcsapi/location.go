package mcsapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/z5vrs/z5/internal/location"
	"github.com/z5vrs/z5/internal/store"
)

// PathLocation is the customer's registered location (civic address),
// sent to the PSAP with a 911 call and required before other calls.
const PathLocation = "/api/v1/location"

// locationStore is the part of the store the location API needs; the
// provider's store has it, a store without it serves no location.
type locationStore interface {
	Location(ctx context.Context, customerID int64) (store.Location, error)
	SetLocation(ctx context.Context, loc store.Location) error
}

type locationJSON struct {
	Street    string    `json:"street"`
	City      string    `json:"city"`
	State     string    `json:"state"`
	Zip       string    `json:"zip"`
	Country   string    `json:"country"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// locationOwner returns the session's customer and the store's location
// part, or the error to answer: only customers have a registered location.
func (s *Service) locationOwner(r *http.Request, sess store.Session) (store.Customer, locationStore, error) {
	ls, ok := s.store.(locationStore)
	if !ok {
		return store.Customer{}, nil, &apiError{status: http.StatusNotFound, code: "not_found", msg: "this MCS keeps no registered locations"}
	}
	c, err := s.store.Customer(r.Context(), sess.CustomerID)
	if err != nil {
		return c, nil, err
	}
	if c.EffectiveRole() != store.RoleCustomer {
		return c, nil, &apiError{status: http.StatusForbidden, code: "not_customer",
			msg: "only a customer's account has a registered location; this account's role is " + c.EffectiveRole()}
	}
	return c, ls, nil
}

func (s *Service) handleGetLocation(w http.ResponseWriter, r *http.Request, sess store.Session) error {
	c, ls, err := s.locationOwner(r, sess)
	if err != nil {
		return err
	}
	l, err := ls.Location(r.Context(), c.ID)
	if errors.Is(err, store.ErrNotFound) {
		return &apiError{status: http.StatusNotFound, code: "no_location",
			msg: "no registered location yet; set it (z5 location set --street ... --city ... --state ... --zip ...) before calling anyone but 911"}
	}
	if err != nil {
		return err
	}
	return writeJSON(w, r, http.StatusOK, toLocationJSON(l))
}

// handlePutLocation replaces the registered location with the address in
// the body, validated (422 names every bad field) and audited.
func (s *Service) handlePutLocation(w http.ResponseWriter, r *http.Request, sess store.Session) error {
	c, ls, err := s.locationOwner(r, sess)
	if err != nil {
		return err
	}
	var body struct {
		Street  string `json:"street"`
		City    string `json:"city"`
		State   string `json:"state"`
		Zip     string `json:"zip"`
		Country string `json:"country"`
	}
	if err := s.readJSON(w, r, &body); err != nil {
		return err
	}
	a, err := location.Validate(location.Address(body))
	if err != nil {
		return unprocessable[location.Errors](err, "invalid_location", func(f location.FieldError) fieldJSON { return fieldJSON(f) })
	}
	if err := ls.SetLocation(r.Context(), store.Location{CustomerID: c.ID, Street: a.Street, City: a.City, State: a.State,
		Zip: a.Zip, Country: a.Country, UpdatedBy: c.Username}); err != nil {
		return err
	}
	l, err := ls.Location(r.Context(), c.ID)
	if err != nil {
		return err
	}
	// The address itself is personal data: the audit trail has it, the
	// log does not.
	s.log.Info("registered location set", "customer_id", c.ID)
	return writeJSON(w, r, http.StatusOK, toLocationJSON(l))
}

func toLocationJSON(l store.Location) locationJSON {
	return locationJSON{Street: l.Street, City: l.City, State: l.State, Zip: l.Zip, Country: l.Country, UpdatedAt: l.UpdatedAt}
}
