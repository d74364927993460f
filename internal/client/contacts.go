package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/z5vrs/z5/internal/addressbook"
)

// apiContact is the MCS API's JSON form of a contact.
type apiContact struct {
	ID           string              `json:"id,omitempty"`
	UID          string              `json:"uid,omitempty"`
	Name         string              `json:"name"`
	GivenName    string              `json:"given_name,omitempty"`
	FamilyName   string              `json:"family_name,omitempty"`
	Number       string              `json:"number"`
	Phones       []addressbook.Phone `json:"phones,omitempty"`
	Email        string              `json:"email,omitempty"`
	Organization string              `json:"organization,omitempty"`
	Note         string              `json:"note,omitempty"`
	Favorite     bool                `json:"favorite,omitempty"`
	Version      int64               `json:"version,omitempty"`
	UpdatedAt    time.Time           `json:"updated_at,omitzero"`
}

func (a apiContact) contact(owner string) addressbook.Contact {
	return addressbook.Contact{Owner: owner, ID: a.ID, UID: a.UID, Name: a.Name, GivenName: a.GivenName, FamilyName: a.FamilyName,
		Number: a.Number, Phones: a.Phones, Email: a.Email, Organization: a.Organization, Note: a.Note,
		Favorite: a.Favorite, Version: a.Version, UpdatedAt: a.UpdatedAt}
}

// SyncContacts runs the second half of step 3: downloads the address book
// when it changed (If-None-Match) and caches it. It returns the contacts.
func (c *Client) SyncContacts(ctx context.Context) ([]addressbook.Contact, error) {
	if c.state.MCSToken == "" {
		return nil, stepErr(StepMCS, ErrNotLoggedIn, "log in first: z5 login")
	}
	start := time.Now()
	var resp struct {
		Contacts []apiContact `json:"contacts"`
		Rev      int64        `json:"rev"`
	}
	hdr := map[string]string{}
	if c.state.ContactsTag != "" {
		hdr["If-None-Match"] = c.state.ContactsTag
	}
	rh, err := c.callMCS(ctx, http.MethodGet, "/api/v1/contacts", nil, &resp, hdr)
	if err != nil {
		return nil, stepErr(StepMCS, fmt.Errorf("address book: %w", err), c.mcsHint(err))
	}
	if resp.Contacts == nil && c.state.ContactsTag != "" && rh.Get("ETag") == c.state.ContactsTag {
		c.event(StepMCS, start, "address book unchanged: %d contact(s)", len(c.state.Contacts))
		return c.state.Contacts, nil // 304
	}
	cs := make([]addressbook.Contact, 0, len(resp.Contacts))
	for _, a := range resp.Contacts {
		cs = append(cs, a.contact(c.state.Number))
	}
	c.state.Contacts, c.state.ContactsRev, c.state.ContactsTag = cs, resp.Rev, rh.Get("ETag")
	if err := c.save(); err != nil {
		return nil, err
	}
	c.event(StepMCS, start, "address book downloaded: %d contact(s)", len(cs))
	return cs, nil
}

// Contacts returns the cached address book.
func (c *Client) Contacts() []addressbook.Contact { return c.state.Contacts }

// AddContact creates a contact on the MCS and refreshes the cache.
func (c *Client) AddContact(ctx context.Context, name, number string) (addressbook.Contact, error) {
	var out apiContact
	if _, err := c.callMCS(ctx, http.MethodPost, "/api/v1/contacts", apiContact{Name: name, Number: number}, &out, nil); err != nil {
		return addressbook.Contact{}, fmt.Errorf("add contact: %w", err)
	}
	_, err := c.SyncContacts(ctx)
	return out.contact(c.state.Number), err
}

// RemoveContact deletes a contact by id or name, guarded by the version we
// last saw: a contact changed elsewhere since is reported, never silently
// deleted.
func (c *Client) RemoveContact(ctx context.Context, idOrName string) error {
	ct, err := c.FindContact(idOrName)
	if err != nil {
		return err
	}
	hdr := map[string]string{"If-Match": strconv.Quote(strconv.FormatInt(ct.Version, 10))}
	_, err = c.callMCS(ctx, http.MethodDelete, "/api/v1/contacts/"+url.PathEscape(ct.ID), nil, nil, hdr)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusPreconditionFailed {
		c.SyncContacts(ctx)
		return fmt.Errorf("%w: contact %q was modified on another device; review it (z5 contacts list) and retry", ErrConflict, ct.Name)
	}
	if err != nil {
		return fmt.Errorf("remove contact: %w", err)
	}
	_, err = c.SyncContacts(ctx)
	return err
}

// FindContact matches an id, an exact name (case-insensitive), or a number.
func (c *Client) FindContact(q string) (addressbook.Contact, error) {
	var matches []addressbook.Contact
	for _, ct := range c.state.Contacts {
		if ct.ID == q || strings.EqualFold(ct.Name, q) || ct.Number == q {
			matches = append(matches, ct)
		}
	}
	switch len(matches) {
	case 0:
		return addressbook.Contact{}, fmt.Errorf("no contact %q in the address book (z5 contacts list)", q)
	case 1:
		return matches[0], nil
	}
	return addressbook.Contact{}, fmt.Errorf("%d contacts match %q: use the id", len(matches), q)
}

// ImportVCard uploads vCards (merged by UID on the MCS).
func (c *Client) ImportVCard(ctx context.Context, data []byte) (created, updated int, err error) {
	var out struct {
		Created int `json:"created"`
		Updated int `json:"updated"`
	}
	if _, err := c.callMCS(ctx, http.MethodPost, "/api/v1/contacts.vcf", rawBody{data, "text/vcard"}, &out, nil); err != nil {
		return 0, 0, fmt.Errorf("import: %w", err)
	}
	_, err = c.SyncContacts(ctx)
	return out.Created, out.Updated, err
}

// ExportVCard downloads the address book as vCard 4.0.
func (c *Client) ExportVCard(ctx context.Context) ([]byte, error) {
	var data []byte
	if _, err := c.callMCS(ctx, http.MethodGet, "/api/v1/contacts.vcf", nil, &data, map[string]string{"Accept": "text/vcard"}); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return data, nil
}
