package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/z5vrs/z5/internal/addressbook"
	"github.com/z5vrs/z5/internal/profile"
	"github.com/z5vrs/z5/internal/wire/zdialwire"
)

// State is what a client keeps under its home dir between runs. It holds
// tokens and the device's SIP credential, never the user's password, and is
// written with mode 0600.
type State struct {
	Profile *profile.Profile `json:"profile,omitempty"`

	Username   string `json:"username,omitempty"`
	InstanceID string `json:"instance_id"` // urn:uuid of this installation

	ZDialToken   string    `json:"zdial_token,omitempty"`
	ZDialExpires time.Time `json:"zdial_expires,omitzero"`
	Numbers      []Number  `json:"numbers,omitempty"`

	Number     string    `json:"number,omitempty"`
	DeviceID   int64     `json:"device_id,omitempty"`
	SIP        SIPCreds  `json:"sip,omitzero"`
	MCSToken   string    `json:"mcs_token,omitempty"`
	MCSExpires time.Time `json:"mcs_expires,omitzero"`

	License        string    `json:"license,omitempty"`
	LicenseExpires time.Time `json:"license_expires,omitzero"`

	Contacts    []addressbook.Contact `json:"contacts,omitempty"`
	ContactsRev int64                 `json:"contacts_rev,omitempty"`
	ContactsTag string                `json:"contacts_etag,omitempty"`
}

// Number is one of the customer's phone numbers.
type Number struct {
	Number string `json:"number"`
	Label  string `json:"label"`
}

// SIPCreds are what ZDial hands out on number selection, kept as received.
type SIPCreds = zdialwire.SIPCreds

const stateFile = "state.json"

func loadState(home string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(home, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return &State{InstanceID: newInstanceID()}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read client state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("client state %s is corrupt (%v): remove it and log in again", filepath.Join(home, stateFile), err)
	}
	if s.InstanceID == "" {
		s.InstanceID = newInstanceID()
	}
	return &s, nil
}

func (s *State) save(home string) error {
	if err := os.MkdirAll(home, 0o700); err != nil {
		return fmt.Errorf("client home: %w", err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(home, stateFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write client state: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write client state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write client state: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(home, stateFile))
}

func newInstanceID() string { return "urn:uuid:" + uuid.NewString() }
