package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/z5vrs/z5/internal/location"
)

// Location is the account's registered location, the civic address sent
// to the PSAP with a 911 call.
type Location struct {
	location.Address
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// ErrNoLocation: the account has no registered location yet, so its
// numbers may call only 911.
var ErrNoLocation = errors.New("no registered location")

const pathLocation = "/api/v1/location"

// Location reads the registered location from the MCS (ErrNoLocation when
// none is set).
func (c *Client) Location(ctx context.Context) (Location, error) {
	if c.state.MCSToken == "" {
		return Location{}, stepErr(StepMCS, ErrNotLoggedIn, "log in first: z5 login")
	}
	var out Location
	if _, err := c.callMCS(ctx, http.MethodGet, pathLocation, nil, &out, nil); err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound && ae.Code == "no_location" {
			return Location{}, stepErr(StepMCS, ErrNoLocation,
				"set it with: z5 location set --street \"...\" --city \"...\" --state ST --zip 12345")
		}
		return Location{}, stepErr(StepMCS, fmt.Errorf("registered location: %w", err), c.mcsHint(err))
	}
	return out, nil
}

// SetLocation validates a (the server applies the same rule) and makes it
// the registered location; it returns the location as stored. Invalid
// input is location.Errors, naming every bad field, before anything is
// sent.
func (c *Client) SetLocation(ctx context.Context, a location.Address) (Location, error) {
	if c.state.MCSToken == "" {
		return Location{}, stepErr(StepMCS, ErrNotLoggedIn, "log in first: z5 login")
	}
	v, err := location.Validate(a)
	if err != nil {
		return Location{}, err
	}
	var out Location
	if _, err := c.callMCS(ctx, http.MethodPut, pathLocation, v, &out, nil); err != nil {
		return Location{}, stepErr(StepMCS, fmt.Errorf("set registered location: %w", err), c.mcsHint(err))
	}
	return out, nil
}
