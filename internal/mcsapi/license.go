package mcsapi

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/z5vrs/z5/internal/license"
	"github.com/z5vrs/z5/internal/store"
)

// notBeforeSkew backdates a license so a client whose clock runs a little
// behind accepts it at once.
const notBeforeSkew = time.Minute

type licenseJSON struct {
	License   string    `json:"license"`
	ID        string    `json:"id"`
	Number    string    `json:"number"`
	DeviceID  int64     `json:"device_id"`
	Features  []string  `json:"features"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
}

// handleLicense signs a license for the session's number and device and
// records it. The request has no body.
func (s *Service) handleLicense(w http.ResponseWriter, r *http.Request, sess store.Session) error {
	ctx := r.Context()
	// The token names a number and device; both must still be the
	// customer's, or an old token would license a number since taken away.
	num, err := s.store.Number(ctx, sess.Number)
	if errors.Is(err, store.ErrNotFound) || (err == nil && num.CustomerID != sess.CustomerID) {
		return &apiError{status: http.StatusForbidden, code: "number_gone",
			msg: fmt.Sprintf("number %s no longer belongs to this account; log in again (z5 login)", sess.Number)}
	}
	if err != nil {
		return fmt.Errorf("license: number %s: %w", sess.Number, err)
	}
	dev, err := s.store.Device(ctx, sess.DeviceID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && dev.Number != sess.Number) {
		return &apiError{status: http.StatusForbidden, code: "device_gone",
			msg: fmt.Sprintf("device %d is no longer registered for %s; log in again (z5 login)", sess.DeviceID, sess.Number)}
	}
	if err != nil {
		return fmt.Errorf("license: device %d: %w", sess.DeviceID, err)
	}

	now := s.now().UTC().Truncate(time.Second)
	id := make([]byte, 12)
	rand.Read(id)
	claims := license.Claims{
		ID:        base64.RawURLEncoding.EncodeToString(id),
		Issuer:    s.cfg.Issuer,
		Number:    sess.Number,
		DeviceID:  sess.DeviceID,
		SIPUser:   dev.SIPUser,
		Features:  slices.Clone(s.cfg.Features),
		NotBefore: now.Add(-notBeforeSkew).Unix(),
		NotAfter:  now.Add(s.cfg.LicenseTTL).Unix(),
	}
	if claims.Features == nil {
		claims.Features = []string{}
	}
	tok, err := license.Sign(s.key, claims)
	if err != nil {
		return fmt.Errorf("license: sign: %w", err)
	}
	out := licenseJSON{
		License:   tok,
		ID:        claims.ID,
		Number:    claims.Number,
		DeviceID:  claims.DeviceID,
		Features:  claims.Features,
		NotBefore: time.Unix(claims.NotBefore, 0).UTC(),
		NotAfter:  time.Unix(claims.NotAfter, 0).UTC(),
	}
	// Recorded before it is handed out: every license in use is in the
	// audit trail.
	if err := s.store.RecordLicense(ctx, store.License{
		ID: claims.ID, Number: claims.Number, DeviceID: claims.DeviceID, Features: claims.Features,
		NotBefore: out.NotBefore, NotAfter: out.NotAfter, IssuedAt: now,
	}); err != nil {
		return fmt.Errorf("license: record %s: %w", claims.ID, err)
	}
	s.metrics.licenses.Inc()
	s.log.Info("license issued", "license_id", claims.ID, "number", claims.Number, "device_id", claims.DeviceID,
		"not_after", out.NotAfter)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	return writeJSON(w, r, http.StatusOK, out)
}
