package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestAccountsAndLocation drives the relay accounts and the registered
// location through the real binaries: an interpreter logs in with z5 and
// gets its station number (ZDial select, license, address book); staff log
// in to ZDial but have no number for z5; a customer reads and changes the
// registered location with z5 location, and the provider sees the change
// (who made it) with z5d admin.
func TestAccountsAndLocation(t *testing.T) {
	s := startStack(t)
	s.provision(t)

	s.admin(t, "ian-secret-1\n", "interpreter", "add", "ian", "--ca-id", "1001", "--password-stdin")
	ian := s.login(t, "ian", "ian-secret-1", "")
	var st struct {
		Number string `json:"number"`
	}
	if err := json.Unmarshal([]byte(mustZ5(t, ian, "", "status", "--json")), &st); err != nil || st.Number != "ca-1001" {
		t.Errorf("interpreter logged in with number %q (%v), want its station ca-1001", st.Number, err)
	}
	s.admin(t, "sam-secret-1\n", "staff", "add", "sam", "--password-stdin")
	out, err := z5(t, t.TempDir(), "sam-secret-1\n", "login", "--profile", s.profilePath(), "--username", "sam", "--password-stdin")
	if err == nil || !strings.Contains(out, "no phone number") {
		t.Errorf("staff z5 login: %v\n%s", err, out)
	}

	alice := s.login(t, "alice", alicePass, aliceWork)
	var loc map[string]any
	if err := json.Unmarshal([]byte(mustZ5(t, alice, "", "location", "show", "--json")), &loc); err != nil ||
		loc["street"] != "1 Test Plaza" || loc["state"] != "IL" || loc["zip"] != "62701" || loc["country"] != "US" {
		t.Errorf("z5 location show --json: %v %v", loc, err)
	}
	out = mustZ5(t, alice, "", "location", "set", "--street", "2 Test Plaza, Apt 4", "--zip", "62702-1234")
	if !strings.Contains(out, "registered location: 2 Test Plaza, Apt 4, Springfield, IL 62702-1234, US") {
		t.Errorf("z5 location set: %s", out)
	}
	if out, err := z5(t, alice, "", "location", "set", "--state", "ZZ"); err == nil || !strings.Contains(out, "--state:") {
		t.Errorf("z5 location set --state ZZ: %v\n%s", err, out)
	}
	var admin map[string]any
	if err := json.Unmarshal([]byte(s.admin(t, "", "--json", "customer", "location", "alice")), &admin); err != nil ||
		admin["street"] != "2 Test Plaza, Apt 4" || admin["zip"] != "62702-1234" || admin["updated_by"] != "alice" {
		t.Errorf("admin customer location after z5 location set: %v %v", admin, err)
	}
}
