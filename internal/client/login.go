package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/z5vrs/z5/internal/license"
	"github.com/z5vrs/z5/internal/profile"
)

// ChooseNumber asks the user which number to use when the account has
// several and none was given.
type ChooseNumber func(numbers []Number) (string, error)

// LoginRequest is step 2's input.
type LoginRequest struct {
	Profile  *profile.Profile // nil: keep the one from a previous login
	Username string
	Password string
	Number   string       // optional: which number to use
	Choose   ChooseNumber // optional: interactive choice
}

// Login runs steps 1-3: resolve, log in to ZDial and select a number, then
// fetch the license and the address book from the MCS.
func (c *Client) Login(ctx context.Context, req LoginRequest) error {
	if req.Profile != nil {
		if err := c.SetProfile(req.Profile); err != nil {
			return stepErr(StepDNS, err, "check the provider profile file")
		}
	}
	if _, err := c.Resolve(ctx); err != nil {
		return err
	}
	if err := c.loginZDial(ctx, req); err != nil {
		return err
	}
	if err := c.FetchLicense(ctx); err != nil {
		return err
	}
	if _, err := c.SyncContacts(ctx); err != nil {
		return err
	}
	return nil
}

func (c *Client) loginZDial(ctx context.Context, req LoginRequest) error {
	start := time.Now()
	hint := fmt.Sprintf("allow outbound TCP port %d to the ZDial servers (%s)", c.state.Profile.Ports.ZDialHTTPS, c.state.Profile.Names.ZDial)
	var resp struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
		Customer  struct {
			Username    string `json:"username"`
			DisplayName string `json:"display_name"`
		} `json:"customer"`
		Numbers []Number `json:"numbers"`
	}
	_, err := c.call(ctx, http.MethodPost, c.zdialURL("/api/v1/login"), "",
		map[string]string{"username": req.Username, "password": req.Password}, &resp, nil)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) {
			switch ae.Status {
			case http.StatusUnauthorized:
				return stepErr(StepZDial, ErrBadCredentials, "check the username and password")
			case http.StatusTooManyRequests:
				return stepErr(StepZDial, fmt.Errorf("%w: %v", ErrLocked, ae), "wait and try again")
			}
			return stepErr(StepZDial, ae, "")
		}
		return stepErr(StepZDial, err, hint)
	}
	c.state.Username = req.Username
	c.state.ZDialToken, c.state.ZDialExpires = resp.Token, resp.ExpiresAt
	c.state.Numbers = resp.Numbers
	if err := c.save(); err != nil {
		return err
	}
	c.event(StepZDial, start, "logged in to ZDial as %s (%d number(s))", req.Username, len(resp.Numbers))

	number := req.Number
	if number != "" {
		if !slices.ContainsFunc(resp.Numbers, func(n Number) bool { return n.Number == number }) {
			return stepErr(StepZDial, fmt.Errorf("number %s is not on this account (it has %s)", number, numberList(resp.Numbers)), "pass one of the account's numbers with --number")
		}
	} else {
		switch len(resp.Numbers) {
		case 0:
			return stepErr(StepZDial, errors.New("this account has no phone number"), "ask the provider to assign one")
		case 1:
			number = resp.Numbers[0].Number
		default:
			if req.Choose == nil {
				return stepErr(StepZDial, fmt.Errorf("%w: %s", ErrNumberRequired, numberList(resp.Numbers)), "choose one with --number")
			}
			if number, err = req.Choose(resp.Numbers); err != nil {
				return stepErr(StepZDial, err, "choose one with --number")
			}
		}
	}
	return c.selectNumber(ctx, number)
}

func numberList(ns []Number) string {
	s := ""
	for i, n := range ns {
		if i > 0 {
			s += ", "
		}
		s += n.Number
		if n.Label != "" {
			s += " (" + n.Label + ")"
		}
	}
	return s
}

func (c *Client) selectNumber(ctx context.Context, number string) error {
	start := time.Now()
	host, _ := os.Hostname()
	var resp struct {
		Number            string    `json:"number"`
		DeviceID          int64     `json:"device_id"`
		SIP               SIPCreds  `json:"sip"`
		MCSToken          string    `json:"mcs_token"`
		MCSTokenExpiresAt time.Time `json:"mcs_token_expires_at"`
	}
	_, err := c.call(ctx, http.MethodPost, c.zdialURL("/api/v1/select"), c.state.ZDialToken,
		map[string]string{"number": number, "device_name": "z5@" + host, "instance_id": c.state.InstanceID}, &resp, nil)
	if err != nil {
		return stepErr(StepZDial, fmt.Errorf("select number %s: %w", number, err), "")
	}
	c.state.Number, c.state.DeviceID, c.state.SIP = resp.Number, resp.DeviceID, resp.SIP
	c.state.MCSToken, c.state.MCSExpires = resp.MCSToken, resp.MCSTokenExpiresAt
	c.state.License, c.state.Contacts, c.state.ContactsRev, c.state.ContactsTag = "", nil, 0, ""
	if err := c.save(); err != nil {
		return err
	}
	c.event(StepZDial, start, "selected number %s (this installation is its device %d)", resp.Number, resp.DeviceID)
	return nil
}

// FetchLicense runs the first half of step 3: a license for the SIP stack,
// verified with the profile's key before it is kept.
func (c *Client) FetchLicense(ctx context.Context) error {
	if c.state.MCSToken == "" {
		return stepErr(StepMCS, ErrNotLoggedIn, "log in first: z5 login")
	}
	start := time.Now()
	var resp struct {
		License string `json:"license"`
	}
	if _, err := c.callMCS(ctx, http.MethodPost, "/api/v1/license", nil, &resp, nil); err != nil {
		return stepErr(StepMCS, fmt.Errorf("license: %w", err), c.mcsHint(err))
	}
	claims, err := c.verifyLicense(resp.License)
	if err != nil {
		return stepErr(StepMCS, err, "the provider's license does not verify with its profile: get a fresh provider profile")
	}
	c.state.License, c.state.LicenseExpires = resp.License, claims.Expires()
	if err := c.save(); err != nil {
		return err
	}
	c.event(StepMCS, start, "license %s for %s valid until %s (features %v)", claims.ID, claims.Number, claims.Expires().Format(time.RFC3339), claims.Features)
	return nil
}

func (c *Client) verifyLicense(tok string) (license.Claims, error) {
	c.mu.Lock()
	keys := c.licKeys
	c.mu.Unlock()
	claims, err := license.Verify(tok, time.Now(), keys...)
	if err != nil {
		return claims, fmt.Errorf("%w: %w", ErrNoLicense, err)
	}
	if claims.Number != c.state.Number || claims.DeviceID != c.state.DeviceID {
		return claims, fmt.Errorf("%w: issued for %s device %d, not %s device %d", ErrNoLicense, claims.Number, claims.DeviceID, c.state.Number, c.state.DeviceID)
	}
	return claims, nil
}

// ValidLicense returns the stored license if it still verifies, renewing it
// when it expires within renewBefore.
func (c *Client) ValidLicense(ctx context.Context, renewBefore time.Duration) (string, license.Claims, error) {
	claims, err := c.verifyLicense(c.state.License)
	if err == nil && time.Until(claims.Expires()) > renewBefore {
		return c.state.License, claims, nil
	}
	if ferr := c.FetchLicense(ctx); ferr != nil {
		if err != nil {
			// One error, one hint: the renewal's (it says what to do).
			se := &StepError{Step: StepMCS, Err: fmt.Errorf("%w; renewing it failed: %v", err, ferr)}
			var fse *StepError
			if errors.As(ferr, &fse) {
				se.Err, se.Hint = fmt.Errorf("%w; renewing it failed: %v", err, fse.Err), fse.Hint
			}
			return "", claims, se
		}
		return c.state.License, claims, nil // still valid, renewal can wait
	}
	claims, err = c.verifyLicense(c.state.License)
	return c.state.License, claims, err
}

// mcsHint says what to do after an MCS API call failed with err: an
// answer from the MCS is not a firewall problem, a rejected token needs a
// new login, and only an unreachable MCS needs the HTTPS rule.
func (c *Client) mcsHint(err error) string {
	var ae *APIError
	if errors.As(err, &ae) {
		if ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden {
			return "the session expired or was revoked: log in again (z5 login)"
		}
		return ""
	}
	p := c.state.Profile
	return fmt.Sprintf("allow outbound TCP port %d to the MCS servers (%v)", p.Ports.MCSHTTPS, p.Names.MCS)
}

// Logout revokes the ZDial session and its MCS token and forgets them.
func (c *Client) Logout(ctx context.Context) error {
	var err error
	if c.state.ZDialToken != "" && c.state.Profile != nil {
		_, err = c.call(ctx, http.MethodPost, c.zdialURL("/api/v1/logout"), c.state.ZDialToken, nil, nil, nil)
	}
	keepProfile, keepInstance := c.state.Profile, c.state.InstanceID
	*c.state = State{Profile: keepProfile, InstanceID: keepInstance}
	if serr := c.save(); serr != nil {
		return serr
	}
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
			return nil // already expired or revoked
		}
		return fmt.Errorf("logout: tokens forgotten locally, but the server was not told: %w", err)
	}
	return nil
}
