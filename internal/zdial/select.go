package zdial

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/wire/zdialwire"
)

type selectRequest struct {
	Number     string `json:"number"`
	DeviceName string `json:"device_name"`
	InstanceID string `json:"instance_id"`
}

type selectResponse struct {
	Number            string             `json:"number"`
	DeviceID          int64              `json:"device_id"`
	SIP               zdialwire.SIPCreds `json:"sip"`
	MCSToken          string             `json:"mcs_token"`
	MCSTokenExpiresAt string             `json:"mcs_token_expires_at"`
}

const defaultDeviceName = "Z5"

// handleSelect: POST /api/v1/select. The customer picks one of their
// numbers for this installation; the answer carries fresh SIP credentials
// (only their HA1 digests are stored) and an MCS API token tied to the
// login session, so logging out ends both.
func (s *Service) handleSelect(w http.ResponseWriter, r *http.Request) error {
	sess, err := s.authenticate(r)
	if err != nil {
		return err
	}
	var req selectRequest
	if err := readJSON(w, r, &req, false); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	ctx := r.Context()
	now := s.now()
	log := s.log.With("remote_addr", clientIP(r), "customer_id", sess.CustomerID, "number", req.Number)

	// Checked against the customer's own list, so "not yours" and "does
	// not exist" are one answer: nobody learns which numbers are taken.
	nums, err := s.store.NumbersOf(ctx, sess.CustomerID)
	if err != nil {
		return fmt.Errorf("numbers of customer %d: %w", sess.CustomerID, err)
	}
	if !slices.ContainsFunc(nums, func(n store.Number) bool { return n.Number == req.Number }) {
		log.Info("zdial selection refused: number not in profile")
		return &apiError{status: http.StatusForbidden, code: "number_not_yours",
			msg: fmt.Sprintf("number %s is not in your profile; choose one of the numbers returned at login", req.Number)}
	}

	sipPassword := newSIPPassword()
	dev, created, err := s.deviceFor(ctx, req, sipPassword)
	if err != nil {
		return err
	}

	token := store.NewToken()
	mcs := store.Session{
		TokenHash:  store.TokenHash(token),
		Kind:       store.SessionMCS,
		CustomerID: sess.CustomerID,
		Number:     req.Number,
		DeviceID:   dev.ID,
		ParentHash: sess.TokenHash,
		CreatedAt:  now,
		ExpiresAt:  now.Add(s.cfg.MCSTokenTTL),
	}
	// An MCS token never outlives the login it came from.
	if mcs.ExpiresAt.After(sess.ExpiresAt) {
		mcs.ExpiresAt = sess.ExpiresAt
	}
	if err := s.store.CreateSession(ctx, mcs); err != nil {
		return fmt.Errorf("create MCS session for device %d: %w", dev.ID, err)
	}
	result := selectReused
	if created {
		result = selectNewDevice
	}
	s.metrics.selects.WithLabelValues(result).Inc()
	log.Info("zdial number selected", "device_id", dev.ID, "sip_user", dev.SIPUser, "new_device", created)
	writeJSON(w, r, http.StatusOK, selectResponse{
		Number:   req.Number,
		DeviceID: dev.ID,
		SIP: zdialwire.SIPCreds{
			Username:  dev.SIPUser,
			Password:  sipPassword,
			Realm:     s.cfg.Realm,
			Domain:    s.cfg.SIPDomain,
			Hosts:     s.cfg.MCSHosts,
			LB:        s.cfg.LBMCS,
			Port:      s.cfg.SIPPort,
			Transport: "tcp",
		},
		MCSToken:          token,
		MCSTokenExpiresAt: timeJSON(mcs.ExpiresAt),
	})
	return nil
}

func (req *selectRequest) validate() error {
	if req.Number == "" || req.InstanceID == "" {
		return badRequest("missing_field", `"number" and "instance_id" are required`)
	}
	// An interpreter's station number (ca-<CA ID>) is selected like a
	// phone number; only interpreters hold one, and the number must be
	// the caller's own below.
	if !store.NumberPattern.MatchString(req.Number) && !store.StationPattern.MatchString(req.Number) {
		return badRequest("invalid_field", `"number" must be 10 digits (or an interpreter's station, ca-<CA ID>) exactly as listed at login, e.g. "5551234567"`)
	}
	if len(req.InstanceID) > maxInstanceID || strings.IndexFunc(req.InstanceID, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return badRequest("invalid_field", `"instance_id" must be 1-%d printable ASCII characters without spaces, e.g. "<urn:uuid:...>"`, maxInstanceID)
	}
	req.DeviceName = strings.TrimSpace(req.DeviceName)
	if utf8.RuneCountInString(req.DeviceName) > maxDeviceName || strings.IndexFunc(req.DeviceName, unicode.IsControl) >= 0 {
		return badRequest("invalid_field", `"device_name" must be at most %d characters without control characters`, maxDeviceName)
	}
	if req.DeviceName == "" {
		req.DeviceName = defaultDeviceName
	}
	return nil
}

// deviceFor finds the Z5 device of (number, instance_id) or creates it,
// and gives it credentials for sipPassword. Re-selecting from the same
// installation thus keeps its device ID and SIP username while rotating
// the password.
func (s *Service) deviceFor(ctx context.Context, req selectRequest, sipPassword string) (store.Device, bool, error) {
	select {
	case s.devMu <- struct{}{}:
	case <-ctx.Done():
		return store.Device{}, false, ctx.Err()
	}
	defer func() { <-s.devMu }()

	devs, err := s.store.DevicesOf(ctx, req.Number)
	if err != nil {
		return store.Device{}, false, fmt.Errorf("devices of %s: %w", req.Number, err)
	}
	z5 := 0
	for _, d := range devs {
		if d.Kind != store.DeviceZ5 {
			continue
		}
		z5++
		if d.InstanceID == req.InstanceID {
			d.Cred = store.NewCredentials(d.SIPUser, s.cfg.Realm, sipPassword)
			if err := s.store.UpdateDeviceCredentials(ctx, d.ID, d.Cred); err != nil {
				return store.Device{}, false, fmt.Errorf("update credentials of device %d: %w", d.ID, err)
			}
			return d, false, nil
		}
	}
	if z5 >= maxDevices {
		return store.Device{}, false, &apiError{status: http.StatusConflict, code: "device_limit",
			msg: fmt.Sprintf("number %s already has %d Z5 devices; ask support to remove old ones, then try again", req.Number, maxDevices)}
	}
	// The SIP username names the number for operators and a random suffix
	// for uniqueness; a collision (2^-32 per pair) just draws again.
	for range 4 {
		user := req.Number + "-" + randomHex(4)
		d, err := s.store.CreateDevice(ctx, store.Device{
			Number:     req.Number,
			Kind:       store.DeviceZ5,
			Name:       req.DeviceName,
			SIPUser:    user,
			Cred:       store.NewCredentials(user, s.cfg.Realm, sipPassword),
			InstanceID: req.InstanceID,
		})
		if errors.Is(err, store.ErrExists) {
			continue
		}
		if err != nil {
			return store.Device{}, false, fmt.Errorf("create device for %s: %w", req.Number, err)
		}
		return d, true, nil
	}
	return store.Device{}, false, fmt.Errorf("create device for %s: no free SIP username after 4 draws", req.Number)
}

// newSIPPassword is 144 random bits: the digest password is typed by no
// one, so it can be long; base64url keeps it free of characters that need
// quoting anywhere.
func newSIPPassword() string {
	b := make([]byte, 18)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
