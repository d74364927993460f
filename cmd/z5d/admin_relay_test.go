package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/provider"
	"github.com/z5vrs/z5/internal/soa"
	"github.com/z5vrs/z5/internal/soa/soatest"
	"github.com/z5vrs/z5/internal/store"
)

// withStore opens the dev store of dir for a check behind the commands.
func withStore(t *testing.T, dir string, fn func(st store.Store)) {
	t.Helper()
	st, err := provider.OpenStore(t.Context(), config.Dev(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fn(st)
}

func mustZ5d(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, stderr, err := runZ5d(t, stdin, args...)
	if err != nil {
		t.Fatalf("z5d %q: %v\n%s", args, err, stderr)
	}
	return out
}

func TestAdminInterpreters(t *testing.T) {
	dir := devData(t)
	out := mustZ5d(t, "ian-secret-1\n", "admin", "--data", dir, "interpreter", "add", "ian", "--ca-id", "1001", "--display", "Ian", "--password-stdin")
	if want := "interpreter ian created: CA ID 1001, station ca-1001\n"; out != want {
		t.Errorf("interpreter add: %q, want %q", out, want)
	}
	mustZ5d(t, "ivy-secret-1\n", "admin", "--data", dir, "--json", "interpreter", "add", "ivy", "--ca-id", "A7", "--password-stdin")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"interpreter", "add", "ida", "--ca-id", "1001", "--password-stdin"}, "CA ID 1001 or account ida already exists"},
		{[]string{"interpreter", "add", "ian", "--ca-id", "1002", "--password-stdin"}, "account ian already exists"},
		{[]string{"interpreter", "add", "ida", "--ca-id", "10-01", "--password-stdin"}, `CA ID "10-01": use 1-16 letters and digits`},
		{[]string{"interpreter", "rm", "nobody"}, "interpreter nobody does not exist"},
		{[]string{"number", "add", "ian", "2025550100"}, "invalid: ian is an interpreter: only customers hold phone numbers"},
	} {
		_, _, err := runZ5d(t, "ida-secret-1\n", append([]string{"admin", "--data", dir}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("z5d admin %q: %v, want %q", tc.args, err, tc.want)
		}
	}
	if _, _, err := runZ5d(t, "", "admin", "--data", dir, "interpreter", "add", "ida", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "--ca-id is required") {
		t.Errorf("interpreter add without --ca-id: %v", err)
	}

	var list []map[string]any
	if err := json.Unmarshal([]byte(mustZ5d(t, "", "admin", "--data", dir, "interpreter", "list", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0]["username"] != "ian" || list[0]["ca_id"] != "1001" || list[0]["station"] != "ca-1001" ||
		list[0]["display_name"] != "Ian" || list[1]["ca_id"] != "A7" {
		t.Errorf("interpreter list --json: %v", list)
	}
	if out := mustZ5d(t, "", "admin", "--data", dir, "interpreter", "list"); !strings.Contains(out, "ian") || !strings.Contains(out, "ca-1001") {
		t.Errorf("interpreter list: %q", out)
	}
	// Interpreters are not customers.
	if out := mustZ5d(t, "", "admin", "--data", dir, "customer", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("customer list shows interpreters: %s", out)
	}
	withStore(t, dir, func(st store.Store) {
		c, err := st.CustomerByUsername(t.Context(), "ian")
		if err != nil || c.Role != store.RoleInterpreter || c.CAID != "1001" {
			t.Fatalf("ian: %+v, %v", c, err)
		}
		if n, err := st.Number(t.Context(), "ca-1001"); err != nil || n.CustomerID != c.ID {
			t.Errorf("station number: %+v, %v", n, err)
		}
	})

	if out := mustZ5d(t, "", "admin", "--data", dir, "interpreter", "rm", "ian"); out != "interpreter ian (CA ID 1001) removed\n" {
		t.Errorf("interpreter rm: %q", out)
	}
	withStore(t, dir, func(st store.Store) {
		if _, err := st.Number(t.Context(), "ca-1001"); err == nil {
			t.Error("station number outlived its interpreter")
		}
	})
	// The CA ID is free again.
	mustZ5d(t, "ian-secret-2\n", "admin", "--data", dir, "interpreter", "add", "ian2", "--ca-id", "1001", "--password-stdin")
}

func TestAdminStaff(t *testing.T) {
	dir := devData(t)
	if out := mustZ5d(t, "sam-secret-1\n", "admin", "--data", dir, "staff", "add", "sam", "--password-stdin"); out != "staff sam created\n" {
		t.Errorf("staff add: %q", out)
	}
	if _, _, err := runZ5d(t, "x-secret-11\n", "admin", "--data", dir, "staff", "add", "sam", "--password-stdin"); err == nil || err.Error() != "account sam already exists" {
		t.Errorf("second staff add: %v", err)
	}
	if _, _, err := runZ5d(t, "", "admin", "--data", dir, "number", "add", "sam", "2025550100"); err == nil || !strings.Contains(err.Error(), "only customers hold phone numbers") {
		t.Errorf("number add to staff: %v", err)
	}
	if _, _, err := runZ5d(t, "", "admin", "--data", dir, "interpreter", "rm", "sam"); err == nil || !strings.Contains(err.Error(), "sam is a staff, not an interpreter") {
		t.Errorf("interpreter rm of staff: %v", err)
	}
	if out := mustZ5d(t, "", "admin", "--data", dir, "staff", "list"); out != "sam\tsam\n" {
		t.Errorf("staff list: %q", out)
	}
	withStore(t, dir, func(st store.Store) {
		if c, err := st.CustomerByUsername(t.Context(), "sam"); err != nil || c.Role != store.RoleStaff {
			t.Errorf("sam: %+v, %v", c, err)
		}
	})
}

func TestAdminCustomerLocation(t *testing.T) {
	dir := devData(t)
	out := mustZ5d(t, "alice-secret-1\n", "admin", "--data", dir, "customer", "add", "alice", "--password-stdin",
		"--street", "350  Fifth Avenue", "--city", "New York", "--state", "ny", "--zip", "10118")
	if want := "customer alice created, registered location 350 Fifth Avenue, New York, NY 10118\n"; out != want {
		t.Errorf("customer add with a location: %q, want %q", out, want)
	}
	// A bad address is refused before the customer is created.
	_, _, err := runZ5d(t, "bob-secret-11\n", "admin", "--data", dir, "customer", "add", "bob", "--password-stdin",
		"--street", "1 Main St", "--city", "Austin", "--state", "TX", "--zip", "7870")
	if want := `invalid registered location: --zip: "7870" is not a ZIP code (5 digits, or 5+4 as 12345-6789)`; err == nil || err.Error() != want {
		t.Errorf("customer add with a bad zip: %v, want %q", err, want)
	}
	_, _, err = runZ5d(t, "bob-secret-11\n", "admin", "--data", dir, "customer", "add", "bob", "--password-stdin", "--zip", "78701")
	if err == nil || !strings.Contains(err.Error(), "--street: required; --city: required; --state:") {
		t.Errorf("customer add with only --zip: %v", err)
	}
	mustZ5d(t, "bob-secret-11\n", "admin", "--data", dir, "customer", "add", "bob", "--password-stdin")
	if _, _, err := runZ5d(t, "", "admin", "--data", dir, "customer", "location", "bob"); err == nil ||
		err.Error() != "customer bob has no registered location: set one with --street, --city, --state and --zip" {
		t.Errorf("location of bob (none): %v", err)
	}
	if _, _, err := runZ5d(t, "", "admin", "--data", dir, "customer", "location", "bob", "--zip", "78701"); err == nil || !strings.Contains(err.Error(), "--street: required") {
		t.Errorf("first location with only --zip: %v", err)
	}
	if _, _, err := runZ5d(t, "", "admin", "--data", dir, "customer", "location", "nobody"); err == nil || err.Error() != "customer nobody does not exist" {
		t.Errorf("location of nobody: %v", err)
	}

	// Change one field; show as text and JSON.
	out = mustZ5d(t, "", "admin", "--data", dir, "customer", "location", "alice", "--zip", "10118-0110")
	if !strings.HasPrefix(out, "alice: 350 Fifth Avenue, New York, NY 10118-0110, US (set ") || !strings.HasSuffix(out, " by admin)\n") {
		t.Errorf("location change: %q", out)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(mustZ5d(t, "", "admin", "--data", dir, "customer", "location", "alice", "--json")), &v); err != nil {
		t.Fatal(err)
	}
	delete(v, "updated_at")
	want := map[string]any{"username": "alice", "street": "350 Fifth Avenue", "city": "New York", "state": "NY", "zip": "10118-0110",
		"country": "US", "updated_by": "admin"}
	if d := cmp.Diff(want, v); d != "" {
		t.Errorf("location --json (-want +got):\n%s", d)
	}
	if _, _, err := runZ5d(t, "", "admin", "--data", dir, "customer", "location", "alice", "--state", "ZZ"); err == nil || !strings.Contains(err.Error(), "--state:") {
		t.Errorf("location with a bad state: %v", err)
	}
	withStore(t, dir, func(st store.Store) {
		c, _ := st.CustomerByUsername(t.Context(), "alice")
		h, err := st.LocationHistory(t.Context(), c.ID)
		if err != nil || len(h) != 2 || h[1].Old.Zip != "10118" || h[1].New.Zip != "10118-0110" || h[1].By != "admin" {
			t.Errorf("audit trail: %+v, %v", h, err)
		}
	})
}

// TestAdminCallsRelayFields: calls --json shows a relay record's fields in
// snake_case, and a point-to-point record without them.
func TestAdminCallsRelayFields(t *testing.T) {
	dir := devData(t)
	q := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	withStore(t, dir, func(st store.Store) {
		for _, c := range []store.Call{
			{CallID: "relay-1", From: "2025550101", To: "2125550100", StartedAt: q, AnsweredAt: q.Add(20 * time.Second),
				EndedAt: q.Add(5 * time.Minute), EndReason: "bye", Status: 200,
				Direction: store.CallOutbound, CAID: "1001", Dialed: "2125550100", UserNumber: "2025550101", UserIP: "192.0.2.7",
				QueuedAt: q, OfferedAt: q.Add(15 * time.Second), SessionStart: q.Add(20 * time.Second), SessionEnd: q.Add(5 * time.Minute),
				ConversationStart: q.Add(30 * time.Second), ConversationEnd: q.Add(299 * time.Second),
				MediaStats: []store.StreamStats{{Leg: "hearing", Media: "audio", Packets: 5}}},
			{CallID: "p2p-1", From: "2025550101", To: "3035550199", StartedAt: q.Add(-time.Hour)},
		} {
			if err := st.CreateCall(t.Context(), c); err != nil {
				t.Fatal(err)
			}
		}
	})
	var got []map[string]any
	if err := json.Unmarshal([]byte(mustZ5d(t, "", "admin", "--data", dir, "calls", "--json")), &got); err != nil || len(got) != 2 {
		t.Fatalf("calls --json: %v %v", got, err)
	}
	ts := func(d time.Duration) string { return q.Add(d).Format(time.RFC3339) }
	for k, want := range map[string]any{
		"direction": "outbound", "ca_id": "1001", "dialed": "2125550100", "user_number": "2025550101", "user_ip": "192.0.2.7",
		"queued_at": ts(0), "offered_at": ts(15 * time.Second), "session_start": ts(20 * time.Second), "session_end": ts(5 * time.Minute),
		"conversation_start": ts(30 * time.Second), "conversation_end": ts(299 * time.Second), "queue_wait_seconds": 20.0,
	} {
		if got[0][k] != want {
			t.Errorf("relay record %s = %v, want %v", k, got[0][k], want)
		}
	}
	table := mustZ5d(t, "", "admin", "--data", dir, "calls")
	if !strings.Contains(table, "relay-1  outbound CA 1001 wait 20s\n") || !strings.Contains(table, "p2p-1    -\n") {
		t.Errorf("calls table lacks the relay column:\n%s", table)
	}
	for _, k := range []string{"direction", "ca_id", "queued_at", "session_start", "conversation_start", "user_ip", "queue_wait_seconds"} {
		if _, ok := got[1][k]; ok {
			t.Errorf("point-to-point record has %s: %v", k, got[1])
		}
	}
}

// TestAdminSpeedOfAnswer runs the report command on the generated month
// (soatest) stored in a dev database: the figures are the hand-computed
// ones, as JSON and as text.
func TestAdminSpeedOfAnswer(t *testing.T) {
	dir := devData(t)
	withStore(t, dir, func(st store.Store) {
		for _, c := range soatest.Calls() {
			if err := st.CreateCall(t.Context(), c); err != nil {
				t.Fatal(err)
			}
		}
	})
	var got soa.Report
	if err := json.Unmarshal([]byte(mustZ5d(t, "", "admin", "--data", dir, "report", "speed-of-answer", "--month", soatest.Month, "--json")), &got); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(soatest.Want, got); d != "" {
		t.Errorf("report --json (-want +got):\n%s", d)
	}
	out := mustZ5d(t, "", "admin", "--data", dir, "report", "speed-of-answer", "--month", soatest.Month)
	for _, want := range []string{"offered                100", "76.00% of offered (standard: 80%): no", "mean wait              64.53 s",
		"p95 wait               125.00 s", "abandoned in queue     10", "emergency 4, inbound 48, outbound 48"} {
		if !strings.Contains(out, want) {
			t.Errorf("report text lacks %q:\n%s", want, out)
		}
	}
	// December holds only the call queued at its first instant.
	var dec soa.Report
	if err := json.Unmarshal([]byte(mustZ5d(t, "", "admin", "--data", dir, "report", "speed-of-answer", "--month", "2026-12", "--json")), &dec); err != nil ||
		dec.Offered != 1 || dec.Answered != 1 {
		t.Errorf("December: %+v %v", dec, err)
	}
	if _, _, err := runZ5d(t, "", "admin", "--data", dir, "report", "speed-of-answer", "--month", "2026-13"); err == nil || !strings.Contains(err.Error(), "want YYYY-MM") {
		t.Errorf("bad month: %v", err)
	}
}
