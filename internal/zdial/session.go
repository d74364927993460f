package zdial

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/z5vrs/z5/internal/store"
)

type sessionResponse struct {
	Role      string       `json:"role"`
	CAID      string       `json:"ca_id,omitempty"`
	Customer  customerJSON `json:"customer"`
	Numbers   []numberJSON `json:"numbers"`
	ExpiresAt string       `json:"expires_at"`
}

// handleSession: GET /api/v1/session, who is logged in with this token.
// A client resuming with a saved token uses it to learn whether the token
// still works and which numbers it may choose.
func (s *Service) handleSession(w http.ResponseWriter, r *http.Request) error {
	sess, err := s.authenticate(r)
	if err != nil {
		return err
	}
	c, err := s.store.Customer(r.Context(), sess.CustomerID)
	if errors.Is(err, store.ErrNotFound) {
		return unauthorized("invalid_token", "invalid_token", "the account of this session no longer exists")
	}
	if err != nil {
		return fmt.Errorf("customer %d of a valid session: %w", sess.CustomerID, err)
	}
	nums, err := s.numbers(r.Context(), c.ID)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, sessionResponse{
		Role:      c.EffectiveRole(),
		CAID:      c.CAID,
		Customer:  customerJSON{Username: c.Username, DisplayName: c.DisplayName},
		Numbers:   nums,
		ExpiresAt: timeJSON(sess.ExpiresAt),
	})
	return nil
}

// handleLogout: POST /api/v1/logout. Revoking the login session revokes
// every MCS token made from it (the store cascades by ParentHash), so a
// logged-out installation loses MCS API access too. The body, if any, must
// be an empty JSON object.
func (s *Service) handleLogout(w http.ResponseWriter, r *http.Request) error {
	sess, err := s.authenticate(r)
	if err != nil {
		return err
	}
	if err := readJSON(w, r, &struct{}{}, true); err != nil {
		return err
	}
	if err := s.store.RevokeSession(r.Context(), sess.TokenHash, s.now()); err != nil {
		return fmt.Errorf("revoke session of customer %d: %w", sess.CustomerID, err)
	}
	s.log.Info("zdial logout", "remote_addr", clientIP(r), "customer_id", sess.CustomerID)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
