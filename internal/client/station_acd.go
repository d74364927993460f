package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// PathACDState is the MCS API resource of the signed-in interpreter's state.
const PathACDState = "/api/v1/acd/state"

// The interpreter states the MCS keeps (the station asks for the first two).
const (
	StateNotReady = "not_ready"
	StateReady    = "ready"
	StateOffered  = "offered"
	StateInCall   = "in_call"
	StateWrapUp   = "wrap_up"
)

// ACDState is the interpreter's state as the MCS holds it.
type ACDState struct {
	State      string    `json:"state"`
	Since      time.Time `json:"since,omitzero"`
	CAID       string    `json:"ca_id,omitempty"`
	QueueDepth int       `json:"queue_depth"`
}

// ACD is the MCS's interpreter-state API, an interface so the station's
// logic runs against a fake in tests.
type ACD interface {
	State(ctx context.Context) (ACDState, error)
	SetState(ctx context.Context, state string) (ACDState, error)
}

// ACD is this client's interpreter-state API on the MCS (the session of an
// interpreter account).
func (c *Client) ACD() ACD { return clientACD{c} }

type clientACD struct{ c *Client }

func (a clientACD) State(ctx context.Context) (ACDState, error) {
	var st ACDState
	_, err := a.c.callMCS(ctx, http.MethodGet, PathACDState, nil, &st, nil)
	return st, acdErr(err)
}

func (a clientACD) SetState(ctx context.Context, state string) (ACDState, error) {
	var raw []byte
	_, err := a.c.callMCS(ctx, http.MethodPut, PathACDState, map[string]string{"state": state}, &raw, nil)
	if err != nil {
		return ACDState{}, acdErr(err)
	}
	st := ACDState{State: state}
	// The answer may be the new state or empty: either is success.
	if len(raw) > 0 {
		var got ACDState
		if json.Unmarshal(raw, &got) == nil && got.State != "" {
			st = got
		}
	}
	return st, nil
}

// acdErr says what to do about a refused state request.
func acdErr(err error) error {
	if err == nil {
		return nil
	}
	var ae *APIError
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusForbidden:
		return stepErr(StepMCS, fmt.Errorf("interpreter state: %w", err),
			"this account is not an interpreter: log in with the interpreter's credentials (z5 login --username NAME)")
	case errors.As(err, &ae) && ae.Status == http.StatusUnauthorized:
		return stepErr(StepMCS, fmt.Errorf("interpreter state: %w", err), "the session has ended: run z5 login again")
	}
	return stepErr(StepMCS, fmt.Errorf("interpreter state: %w", err), "")
}
