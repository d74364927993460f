package zdial

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/z5vrs/z5/internal/password"
	"github.com/z5vrs/z5/internal/store"
)

// account creates an account of role (an interpreter with CA ID caID and
// its station number).
func (e *env) account(username, pw, role, caID string) store.Customer {
	e.t.Helper()
	h, err := password.HashWith(cheapHash, pw)
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := e.st.CreateCustomer(context.Background(), store.Customer{Username: username, DisplayName: "Name of " + username,
		PasswordHash: h, Role: role, CAID: caID})
	if err != nil {
		e.t.Fatal(err)
	}
	if role == store.RoleInterpreter {
		if err := e.st.AddNumber(context.Background(), store.Number{Number: store.StationNumber(caID), CustomerID: c.ID, Label: "station"}); err != nil {
			e.t.Fatal(err)
		}
	}
	e.secret(pw)
	return c
}

// TestRoles: login and session say the account's role; an interpreter
// selects its station number like a phone number; staff log in with no
// number to select.
func TestRoles(t *testing.T) {
	e := newEnv(t, nil)
	e.account("ian", "ian-secret-1", store.RoleInterpreter, "1001")
	e.account("sam", "sam-secret-1", store.RoleStaff, "")
	e.account("olga", "olga-secret-1", store.RoleInterpreter, "1002")

	lr := e.mustLogin("ian", "ian-secret-1")
	want := loginResponse{Role: "interpreter", CAID: "1001", Customer: customerJSON{Username: "ian", DisplayName: "Name of ian"},
		Numbers: []numberJSON{{"ca-1001", "station"}}}
	got := lr
	got.Token, got.ExpiresAt = "", ""
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("interpreter login (-want +got):\n%s", d)
	}
	var sr sessionResponse
	decode(t, e.do(nil, "GET", "/api/v1/session", lr.Token, "").body, &sr)
	if sr.Role != "interpreter" || sr.CAID != "1001" {
		t.Errorf("interpreter session: %+v", sr)
	}
	sel := e.mustSelect(lr.Token, "ca-1001", "<urn:uuid:00000000-0000-4000-8000-000000000009>")
	if sel.Number != "ca-1001" || !strings.HasPrefix(sel.SIP.Username, "ca-1001-") || sel.MCSToken == "" {
		t.Errorf("station select: %+v", sel)
	}
	// Another interpreter's station is not yours; a malformed one is not
	// a number at all.
	wantError(t, e.selectNumber(lr.Token, "ca-1002", "i1"), 403, "number_not_yours")
	wantError(t, e.selectNumber(lr.Token, "ca-", "i1"), 400, "invalid_field")
	wantError(t, e.selectNumber(lr.Token, "ca-10 01", "i1"), 400, "invalid_field")

	staff := e.mustLogin("sam", "sam-secret-1")
	if staff.Role != "staff" || staff.CAID != "" || staff.Numbers == nil || len(staff.Numbers) != 0 {
		t.Errorf("staff login: %+v", staff)
	}
	wantError(t, e.selectNumber(staff.Token, "ca-1001", "i1"), 403, "number_not_yours")
}
