package mcsapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/z5vrs/z5/internal/acd"
	"github.com/z5vrs/z5/internal/store"
)

// The interpreter's state in the interpreter center (docs/api-mcs.md):
// an interpreter station (or the web phone in interpreter mode) reads it
// and signs in and out of the queue with the MCS token of its station
// address. Only interpreters' sessions may: any other is 403.

// PathACDState is the signed-in interpreter's state.
const PathACDState = "/api/v1/acd/state"

// acdStore is the part of the store the state API needs; the provider's
// store has it (the queue's home), a store without it serves no state.
type acdStore interface {
	Agent(ctx context.Context, caID string) (acd.Agent, error)
	SetAgentState(ctx context.Context, caID, state, callID string, now time.Time) (acd.Agent, error)
	Queue(ctx context.Context) ([]acd.Entry, error)
}

type acdStateJSON struct {
	State      string    `json:"state"`
	Since      time.Time `json:"since,omitzero"`
	CAID       string    `json:"ca_id"`
	QueueDepth int       `json:"queue_depth"`
}

// interpreter returns the CA ID of the session's account, or 403.
func (s *Service) interpreter(r *http.Request, sess store.Session) (string, acdStore, error) {
	as, ok := s.store.(acdStore)
	if !ok {
		return "", nil, &apiError{status: http.StatusNotFound, code: "not_found", msg: "this MCS runs no interpreter center"}
	}
	c, err := s.store.Customer(r.Context(), sess.CustomerID)
	if err != nil {
		return "", nil, err
	}
	caID, station := strings.CutPrefix(sess.Number, "ca-")
	if c.EffectiveRole() != store.RoleInterpreter || !station || !store.StationPattern.MatchString(sess.Number) {
		return "", nil, &apiError{status: http.StatusForbidden, code: "not_interpreter",
			msg: "only an interpreter's station session has an interpreter state; log in with the interpreter's credentials"}
	}
	return caID, as, nil
}

func (s *Service) handleGetACDState(w http.ResponseWriter, r *http.Request, sess store.Session) error {
	caID, as, err := s.interpreter(r, sess)
	if err != nil {
		return err
	}
	a, err := as.Agent(r.Context(), caID)
	if errors.Is(err, store.ErrNotFound) {
		a = acd.Agent{CAID: caID, State: acd.NotReady} // never signed in
	} else if err != nil {
		return err
	}
	return s.writeACDState(w, r, as, a)
}

func (s *Service) handlePutACDState(w http.ResponseWriter, r *http.Request, sess store.Session) error {
	caID, as, err := s.interpreter(r, sess)
	if err != nil {
		return err
	}
	var in struct {
		State string `json:"state"`
	}
	if err := s.readJSON(w, r, &in); err != nil {
		return err
	}
	ev := map[string]string{acd.Ready: acd.EvReady, acd.NotReady: acd.EvNotReady}[in.State]
	if ev == "" {
		return &apiError{status: http.StatusUnprocessableEntity, code: "invalid_state",
			msg: `state must be "ready" or "not_ready"`, fields: []fieldJSON{{Field: "state", Message: `want "ready" or "not_ready"`}}}
	}
	cur, err := as.Agent(r.Context(), caID)
	if errors.Is(err, store.ErrNotFound) {
		cur = acd.Agent{CAID: caID, State: acd.NotReady}
	} else if err != nil {
		return err
	}
	next, _, err := acd.Next(cur.State, ev)
	if err != nil {
		return &apiError{status: http.StatusConflict, code: "state_conflict",
			msg: "the interpreter is " + cur.State + " and cannot become " + in.State + " now"}
	}
	a := cur
	switch {
	case next == cur.State && next == acd.Ready:
		// Ready again while ready: keep the idle time.
	case next != cur.State:
		// Not ready while offered: the offer rings on until it is
		// answered or times out; the MCS holding it cancels it then.
		callID := ""
		if next == acd.InCall {
			callID = cur.CallID
		}
		if a, err = as.SetAgentState(r.Context(), caID, next, callID, s.now()); err != nil {
			return err
		}
		s.log.Info("interpreter state", "ca_id", caID, "state", next)
		s.agentChanged()
	}
	return s.writeACDState(w, r, as, a)
}

func (s *Service) writeACDState(w http.ResponseWriter, r *http.Request, as acdStore, a acd.Agent) error {
	q, err := as.Queue(r.Context())
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, r, http.StatusOK, acdStateJSON{State: a.State, Since: a.Since, CAID: a.CAID, QueueDepth: len(q)})
}
