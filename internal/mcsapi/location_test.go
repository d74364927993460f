package mcsapi

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/testenv/teststore"
)

func TestLocation(t *testing.T) {
	e := newEnv(t)
	get := func(token string) (int, locationJSON, errorJSON) {
		t.Helper()
		r := e.do("GET", PathLocation, token, "")
		var l locationJSON
		if r.StatusCode == 200 {
			if err := json.Unmarshal(r.body, &l); err != nil {
				t.Fatal(err)
			}
		}
		return r.StatusCode, l, r.err()
	}

	// Provisioned with the test location.
	st, l, _ := get(e.alice)
	if st != 200 || l.Street != teststore.Location.Street || l.State != "IL" || l.Country != "US" || l.UpdatedAt.IsZero() {
		t.Errorf("GET provisioned location: %d %+v", st, l)
	}

	before := time.Now().Add(-time.Second)
	r := e.do("PUT", PathLocation, e.alice, `{"street":" 350  Fifth Avenue","city":"New York","state":"ny","zip":"10118-0110"}`)
	var put locationJSON
	if err := json.Unmarshal(r.body, &put); r.StatusCode != 200 || err != nil {
		t.Fatalf("PUT: %d %s", r.StatusCode, r.body)
	}
	if put.UpdatedAt.Before(before) {
		t.Errorf("updated_at %v, want now", put.UpdatedAt)
	}
	want := locationJSON{Street: "350 Fifth Avenue", City: "New York", State: "NY", Zip: "10118-0110", Country: "US", UpdatedAt: put.UpdatedAt}
	if d := cmp.Diff(want, put); d != "" {
		t.Errorf("PUT answer (-want +got):\n%s", d)
	}
	if _, got, _ := get(e.alice); !got.UpdatedAt.Equal(put.UpdatedAt) || got.Street != want.Street {
		t.Errorf("GET after PUT: %+v, want %+v", got, want)
	}
	// The change is audited under the customer's username.
	h, err := e.st.LocationHistory(t.Context(), e.aliceCustomer)
	if err != nil || len(h) != 2 || h[1].By != "alice" || h[1].Old.Street != teststore.Location.Street || h[1].New.Zip != "10118-0110" {
		t.Errorf("audit trail: %+v, %v", h, err)
	}
	if strings.Contains(e.logs.String(), "Fifth Avenue") {
		t.Errorf("the address reached the log:\n%s", e.logs)
	}

	// Every bad field is named; nothing is stored.
	r = e.do("PUT", PathLocation, e.alice, `{"street":"","city":"Austin","state":"XX","zip":"7870","country":"CA"}`)
	var fields []string
	for _, f := range r.err().Fields {
		fields = append(fields, f.Field)
	}
	if r.StatusCode != 422 || r.err().Code != "invalid_location" || strings.Join(fields, ",") != "street,state,zip,country" {
		t.Errorf("PUT invalid: %d %s", r.StatusCode, r.body)
	}
	if _, got, _ := get(e.alice); got.Street != want.Street {
		t.Errorf("a refused PUT changed the location: %+v", got)
	}
	for _, tc := range []struct{ body, code string }{
		{`{"street":"1 Main St","city":"Austin","state":"TX","zip":"78701","updated_at":"2026-01-01T00:00:00Z"}`, "invalid_json"},
		{`[]`, "invalid_json"},
	} {
		if r := e.do("PUT", PathLocation, e.alice, tc.body); r.StatusCode != 400 {
			t.Errorf("PUT %s: %d %s, want 400", tc.body, r.StatusCode, r.body)
		}
	}
	if r := e.do("GET", PathLocation, "", ""); r.StatusCode != 401 {
		t.Errorf("GET without a token: %d", r.StatusCode)
	}
	if r := e.do("DELETE", PathLocation, e.alice, ""); r.StatusCode != 405 {
		t.Errorf("DELETE: %d", r.StatusCode)
	}

	// A customer without a location: 404 that says what to do.
	c, err := e.st.CreateCustomer(t.Context(), store.Customer{Username: "nora"})
	if err != nil {
		t.Fatal(err)
	}
	nora := teststore.NewSession(t, e.st, store.Session{Kind: store.SessionMCS, CustomerID: c.ID, Number: "4155550100", ExpiresAt: time.Now().Add(time.Hour)})
	if st, _, ej := get(nora); st != 404 || ej.Code != "no_location" || !strings.Contains(ej.Message, "z5 location set") {
		t.Errorf("GET with none: %d %+v", st, ej)
	}
	// An interpreter has none to set.
	ip, err := e.st.CreateCustomer(t.Context(), store.Customer{Username: "ian", Role: store.RoleInterpreter, CAID: "1001"})
	if err != nil {
		t.Fatal(err)
	}
	ian := teststore.NewSession(t, e.st, store.Session{Kind: store.SessionMCS, CustomerID: ip.ID, Number: "ca-1001", ExpiresAt: time.Now().Add(time.Hour)})
	if r := e.do("PUT", PathLocation, ian, `{"street":"1 Main St","city":"Austin","state":"TX","zip":"78701"}`); r.StatusCode != 403 || r.err().Code != "not_customer" {
		t.Errorf("interpreter PUT: %d %s", r.StatusCode, r.body)
	}
}
