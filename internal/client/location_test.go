package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/location"
)

func TestLocation(t *testing.T) {
	f := newFakeProvider(t, startDNS(t))
	ctx := context.Background()
	c, err := Open(Options{Home: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Location(ctx); err == nil || !strings.Contains(err.Error(), "z5 login") {
		t.Errorf("Location before login: %v", err)
	}
	if err := c.Login(ctx, LoginRequest{Profile: f.profile, Username: "alice", Password: fakePassword, Number: "2025550102"}); err != nil {
		t.Fatal(err)
	}

	// None yet: ErrNoLocation, with the command that sets one.
	_, err = c.Location(ctx)
	var se *StepError
	if !errors.Is(err, ErrNoLocation) || !errors.As(err, &se) || !strings.Contains(se.Hint, "z5 location set") {
		t.Errorf("Location with none: %v", err)
	}

	// Invalid input never leaves the client.
	sent := func() []string {
		f.mu.Lock()
		defer f.mu.Unlock()
		return append([]string(nil), f.requests...)
	}
	before := len(sent())
	_, err = c.SetLocation(ctx, location.Address{Street: "1 Main St", City: "Austin", State: "XX", Zip: "78701"})
	var fe location.Errors
	if !errors.As(err, &fe) || len(fe) != 1 || fe[0].Field != "state" {
		t.Errorf("SetLocation with a bad state: %v", err)
	}
	if reqs := sent(); len(reqs) != before {
		t.Errorf("an invalid location was sent: %v", reqs[before:])
	}

	got, err := c.SetLocation(ctx, location.Address{Street: " 1  Main St", City: "Austin", State: "tx", Zip: "78701"})
	want := Location{Address: location.Address{Street: "1 Main St", City: "Austin", State: "TX", Zip: "78701", Country: "US"},
		UpdatedAt: time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)}
	if err != nil || got != want {
		t.Errorf("SetLocation = %+v, %v; want %+v", got, err, want)
	}
	if reqs := sent(); !strings.Contains(reqs[len(reqs)-1], `"street":"1 Main St"`) || !strings.Contains(reqs[len(reqs)-1], `"state":"TX"`) {
		t.Errorf("PUT body: %s", reqs[len(reqs)-1])
	}
	if got, err := c.Location(ctx); err != nil || got != want {
		t.Errorf("Location = %+v, %v; want %+v", got, err, want)
	}
}
