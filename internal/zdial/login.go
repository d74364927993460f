package zdial

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/z5vrs/z5/internal/password"
	"github.com/z5vrs/z5/internal/store"
)

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type loginResponse struct {
	Token     string       `json:"token"`
	ExpiresAt string       `json:"expires_at"`
	Customer  customerJSON `json:"customer"`
	Numbers   []numberJSON `json:"numbers"`
}

type customerJSON struct {
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
}

type numberJSON struct {
	Number string `json:"number"`
	Label  string `json:"label"`
}

// handleLogin: POST /api/v1/login.
//
// Order matters: the per-address bucket is charged before anything costs
// CPU; a locked account is refused before its password is hashed; an
// unknown username walks the same steps (dummy hash, phantom lockout) as a
// known one, so answers and timing do not reveal which accounts exist.
func (s *Service) handleLogin(w http.ResponseWriter, r *http.Request) error {
	now := s.now()
	ip := clientIP(r)
	if wait, ok := s.ipLimit.allow(ip, now); !ok {
		s.metrics.logins.WithLabelValues(loginThrottled).Inc()
		// Debug only: a flood must not flood the logs too; the metric counts it.
		s.log.Debug("zdial login throttled", "remote_addr", ip)
		return errThrottled(wait)
	}
	var req loginRequest
	if err := readJSON(w, r, &req, false); err != nil {
		return err
	}
	switch {
	case req.Username == "" || req.Password == "":
		return badRequest("missing_field", `both "username" and "password" are required`)
	case len(req.Username) > maxUsername:
		return badRequest("invalid_field", `"username" is longer than %d bytes`, maxUsername)
	case len(req.Password) > password.MaxLen:
		return badRequest("invalid_field", `"password" is longer than %d bytes`, password.MaxLen)
	}
	ctx := r.Context()
	log := s.log.With("remote_addr", ip, "username", truncate(req.Username, 64))

	c, err := s.store.CustomerByUsername(ctx, req.Username)
	if errors.Is(err, store.ErrNotFound) {
		return s.loginUnknown(ctx, log, req, now)
	}
	if err != nil {
		return fmt.Errorf("look up customer: %w", err)
	}
	if c.LockedUntil.After(now) {
		s.metrics.logins.WithLabelValues(loginLocked).Inc()
		log.Info("zdial login refused: account locked", "customer_id", c.ID, "locked_until", c.LockedUntil)
		return errLocked(c.LockedUntil.Sub(now))
	}
	ok, err := s.verify(ctx, c.PasswordHash, req.Password)
	if errors.Is(err, password.ErrMalformed) {
		// A broken or unset hash must not open the account, nor answer
		// faster than a wrong password would.
		log.Error("zdial stored password hash unusable", "customer_id", c.ID, "err", err)
		if _, err := s.verify(ctx, s.dummyHash, req.Password); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if !ok {
		c2, err := s.store.RecordLoginFailure(ctx, c.ID, now, s.cfg.MaxFailures, s.cfg.Lockout)
		if err != nil {
			return fmt.Errorf("record login failure of customer %d: %w", c.ID, err)
		}
		s.metrics.logins.WithLabelValues(loginInvalid).Inc()
		log.Info("zdial login failed", "customer_id", c.ID, "failures", c2.Failures,
			"locked", c2.LockedUntil.After(now))
		return errBadCredentials
	}

	if c.Failures > 0 || !c.LockedUntil.IsZero() {
		if err := s.store.ResetLoginFailures(ctx, c.ID); err != nil {
			return fmt.Errorf("reset login failures of customer %d: %w", c.ID, err)
		}
	}
	if password.NeedsRehash(c.PasswordHash) {
		s.rehash(ctx, log, c.ID, req.Password)
	}
	token := store.NewToken()
	sess := store.Session{
		TokenHash:  store.TokenHash(token),
		Kind:       store.SessionZDial,
		CustomerID: c.ID,
		CreatedAt:  now,
		ExpiresAt:  now.Add(s.cfg.SessionTTL),
	}
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return fmt.Errorf("create session for customer %d: %w", c.ID, err)
	}
	nums, err := s.numbers(ctx, c.ID)
	if err != nil {
		return err
	}
	s.metrics.logins.WithLabelValues(loginOK).Inc()
	log.Info("zdial login", "customer_id", c.ID, "numbers", len(nums))
	writeJSON(w, http.StatusOK, loginResponse{
		Token:     token,
		ExpiresAt: timeJSON(sess.ExpiresAt),
		Customer:  customerJSON{Username: c.Username, DisplayName: c.DisplayName},
		Numbers:   nums,
	})
	return nil
}

// loginUnknown answers a login for a username that does not exist exactly
// as for one that does with a wrong password.
func (s *Service) loginUnknown(ctx context.Context, log *slog.Logger, req loginRequest, now time.Time) error {
	if d := s.phantoms.lockedFor(req.Username, now); d > 0 {
		s.metrics.logins.WithLabelValues(loginLocked).Inc()
		log.Info("zdial login refused: unknown username locked")
		return errLocked(d)
	}
	if _, err := s.verify(ctx, s.dummyHash, req.Password); err != nil {
		return err
	}
	s.phantoms.fail(req.Username, now)
	s.metrics.logins.WithLabelValues(loginInvalid).Inc()
	log.Info("zdial login failed: unknown username")
	return errBadCredentials
}

// verify runs password.Verify in one of the bounded argon2 slots.
func (s *Service) verify(ctx context.Context, encoded, pw string) (bool, error) {
	if err := s.acquireHashSlot(ctx); err != nil {
		return false, err
	}
	defer func() { <-s.hashSem }()
	return password.Verify(encoded, pw)
}

func (s *Service) acquireHashSlot(ctx context.Context) error {
	t := time.NewTimer(hashWait)
	defer t.Stop()
	select {
	case s.hashSem <- struct{}{}:
		return nil
	case <-t.C:
		return errBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

// rehash upgrades a hash made with older parameters after a successful
// login, the only moment the plain password is at hand. Failing it only
// postpones the upgrade, so it is logged, not returned.
func (s *Service) rehash(ctx context.Context, log *slog.Logger, customerID int64, pw string) {
	if err := s.acquireHashSlot(ctx); err != nil {
		return
	}
	h, err := password.Hash(pw)
	<-s.hashSem
	if err != nil {
		// A password set before today's length rules; keep the old hash.
		log.Warn("zdial password rehash skipped", "customer_id", customerID, "err", err)
		return
	}
	if err := s.store.SetPasswordHash(ctx, customerID, h); err != nil {
		log.Warn("zdial password rehash not stored", "customer_id", customerID, "err", err)
	}
}

// numbers lists a customer's numbers for a response (never null).
func (s *Service) numbers(ctx context.Context, customerID int64) ([]numberJSON, error) {
	ns, err := s.store.NumbersOf(ctx, customerID)
	if err != nil {
		return nil, fmt.Errorf("numbers of customer %d: %w", customerID, err)
	}
	out := make([]numberJSON, 0, len(ns))
	for _, n := range ns {
		out = append(out, numberJSON{Number: n.Number, Label: n.Label})
	}
	return out, nil
}

// timeJSON is the one timestamp format of the API: RFC 3339 in UTC.
func timeJSON(t time.Time) string { return t.UTC().Format(time.RFC3339) }
