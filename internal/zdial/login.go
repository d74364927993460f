package zdial

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/z5vrs/z5/internal/clip"
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
	Role      string       `json:"role"` // store.RoleCustomer, RoleInterpreter or RoleStaff
	CAID      string       `json:"ca_id,omitempty"`
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
// Order matters. The source's attempt bucket is charged before anything
// costs CPU, and a locked account, pair or source is refused before
// anything is counted. Then, once the attempt holds a hash slot and before
// its password is hashed, it is counted as a failure everywhere a failure
// counts: for the account (in the store, atomically), for the (source,
// username) pair and for the source. Only a correct password takes those
// back. Concurrent guesses thus cannot all pass a check while the first
// ones wait for a slot: each limit lets through exactly as many hashes as
// it allows failures. Counting after taking the slot keeps the failures in
// flight to the few being hashed, so an office's many logins at once do
// not count against each other. An unknown username walks the same steps
// (dummy hash, phantom lock) as a known one, so answers and timing do not
// reveal which accounts exist.
func (s *Service) handleLogin(w http.ResponseWriter, r *http.Request) error {
	now := s.now()
	ip := clientIP(r)
	src := sourceKey(ip)
	if wait, ok := s.attempts.take(src, now); !ok {
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
	log := s.log.With("remote_addr", ip, "username", clip.String(req.Username, 64))

	c, err := s.store.CustomerByUsername(ctx, req.Username)
	known := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("look up customer: %w", err)
	}
	pair := src.String() + " " + req.Username
	if err := s.precheck(log, src, pair, req.Username, c, known, now); err != nil {
		return err
	}

	if err := s.acquireHashSlot(ctx); err != nil {
		return err
	}
	now = s.now()
	res, err := s.reserveFailure(ctx, log, src, pair, req.Username, c, known, now)
	if err != nil {
		<-s.hashSem
		return err
	}
	encoded := s.dummyHash
	if known {
		encoded = c.PasswordHash
	}
	ok, err := password.Verify(encoded, req.Password)
	<-s.hashSem
	if errors.Is(err, password.ErrMalformed) {
		// A broken or unset hash must not open the account, nor answer
		// faster than a wrong password would.
		log.Error("zdial stored password hash unusable", "customer_id", c.ID, "error", err)
		if _, err := s.verify(ctx, s.dummyHash, req.Password); err != nil {
			return err
		}
		ok = false
	} else if err != nil {
		return err
	}
	if !ok || !known {
		s.metrics.logins.WithLabelValues(loginInvalid).Inc()
		log.Info("zdial login failed", "customer_id", c.ID, "known", known, "failures", res.accountFailures)
		return errBadCredentials
	}

	// Right password: the failures reserved for it are taken back.
	s.srcFails.giveBack(src, now)
	s.pairs.clear(pair)
	if err := s.store.ResetLoginFailures(ctx, c.ID); err != nil {
		return fmt.Errorf("reset login failures of customer %d: %w", c.ID, err)
	}
	if password.NeedsRehashWith(s.params, c.PasswordHash) {
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
	log.Info("zdial login", "customer_id", c.ID, "role", c.EffectiveRole(), "numbers", len(nums))
	writeJSON(w, r, http.StatusOK, loginResponse{
		Token:     token,
		ExpiresAt: timeJSON(sess.ExpiresAt),
		Role:      c.EffectiveRole(),
		CAID:      c.CAID,
		Customer:  customerJSON{Username: c.Username, DisplayName: c.DisplayName},
		Numbers:   nums,
	})
	return nil
}

// precheck refuses, without counting anything, an attempt at a locked
// account or pair or from a source out of failures: it would be refused
// after its wait for a hash slot anyway.
func (s *Service) precheck(log *slog.Logger, src netip.Prefix, pair, username string,
	c store.Customer, known bool, now time.Time) error {
	locked := s.phantoms.lockedFor(username, now)
	if known {
		locked = max(0, c.LockedUntil.Sub(now))
	}
	if locked > 0 {
		s.metrics.logins.WithLabelValues(loginLocked).Inc()
		log.Info("zdial login refused: account locked", "customer_id", c.ID)
		return errLocked(locked)
	}
	if wait, ok := s.srcFails.wouldTake(src, now); !ok {
		s.metrics.logins.WithLabelValues(loginThrottled).Inc()
		log.Info("zdial login refused: too many failures from this source")
		return errFailuresFromSource(wait)
	}
	if wait := s.pairs.lockedFor(pair, now); wait > 0 {
		s.metrics.logins.WithLabelValues(loginLocked).Inc()
		log.Info("zdial login refused: username locked for this source", "customer_id", c.ID)
		return errLocked(wait)
	}
	return nil
}

// reservation is what reserveFailure counted for one attempt.
type reservation struct {
	accountFailures int // the account's failures counting this attempt
}

// reserveFailure counts the attempt as a failure for its source, its
// (source, username) pair and its account before the password is checked,
// or refuses it when one of them has no failure left. A refused attempt
// checks no password, so what was counted for it is taken back.
func (s *Service) reserveFailure(ctx context.Context, log *slog.Logger, src netip.Prefix, pair, username string,
	c store.Customer, known bool, now time.Time) (reservation, error) {
	var res reservation
	if wait, ok := s.srcFails.take(src, now); !ok {
		s.metrics.logins.WithLabelValues(loginThrottled).Inc()
		log.Info("zdial login refused: too many failures from this source")
		return res, errFailuresFromSource(wait)
	}
	if wait := s.pairs.reserve(pair, now); wait > 0 {
		s.srcFails.giveBack(src, now)
		s.metrics.logins.WithLabelValues(loginLocked).Inc()
		log.Info("zdial login refused: username locked for this source", "customer_id", c.ID)
		return res, errLocked(wait)
	}
	var locked time.Duration
	if known {
		c2, err := s.store.RecordLoginFailure(ctx, c.ID, now, s.cfg.AccountMaxFailures, s.cfg.Lockout)
		if err != nil {
			s.srcFails.giveBack(src, now)
			s.pairs.undo(pair)
			return res, fmt.Errorf("record login failure of customer %d: %w", c.ID, err)
		}
		res.accountFailures = c2.Failures
		// The attempt that reaches the limit sets the lock and is still
		// checked; any beyond it were counted while locked.
		if c2.Failures > s.cfg.AccountMaxFailures {
			locked = max(time.Second, c2.LockedUntil.Sub(now))
		}
	} else {
		locked = s.phantoms.reserve(username, now)
	}
	if locked > 0 {
		s.srcFails.giveBack(src, now)
		s.pairs.undo(pair)
		s.metrics.logins.WithLabelValues(loginLocked).Inc()
		log.Info("zdial login refused: account locked", "customer_id", c.ID)
		return res, errLocked(locked)
	}
	return res, nil
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
	s.hashWaiting.Add(1)
	defer s.hashWaiting.Add(-1)
	t := time.NewTimer(s.hashWait)
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
	h, err := password.HashWith(s.params, pw)
	<-s.hashSem
	if err != nil {
		// A password set before today's length rules; keep the old hash.
		log.Warn("zdial password rehash skipped", "customer_id", customerID, "error", err)
		return
	}
	if err := s.store.SetPasswordHash(ctx, customerID, h); err != nil {
		log.Warn("zdial password rehash not stored", "customer_id", customerID, "error", err)
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
