package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/z5vrs/z5/internal/addressbook"
	"github.com/z5vrs/z5/internal/media"
	"github.com/z5vrs/z5/internal/profile"
)

func TestStateSaveLoad(t *testing.T) {
	home := filepath.Join(t.TempDir(), "z5") // does not exist yet
	want := &State{
		InstanceID: "urn:uuid:4a1c1c8e-0000-4000-8000-000000000001",
		Username:   "alice",
		ZDialToken: "zd-token", ZDialExpires: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
		Numbers:  []Number{{"2025550101", "home"}, {"2025550102", "work"}},
		Number:   "2025550102",
		DeviceID: 7,
		SIP:      SIPCreds{Username: "2025550102-ab", Password: "device-credential", Realm: "mcs.z5.test", Hosts: []string{"mcs1.mcs.z5.test"}, Port: 5060},
		MCSToken: "mcs-token",
		License:  "lic.sig", LicenseExpires: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		Contacts: []addressbook.Contact{{ID: "c1", Name: "Bob", Number: "3035550199", Version: 2}},
	}
	if err := want.save(home); err != nil {
		t.Fatal(err)
	}
	for path, mode := range map[string]os.FileMode{home: 0o700 | os.ModeDir, filepath.Join(home, stateFile): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), mode)
		}
	}
	if _, err := os.Stat(filepath.Join(home, stateFile+".tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp file left behind: %v", err)
	}
	got, err := loadState(home)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("state after a round trip (-want +got):\n%s", d)
	}

	// A state file someone made world-readable is replaced by a private one.
	if err := os.Chmod(filepath.Join(home, stateFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := got.save(home); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(home, stateFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("re-saved state mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestLoadStateMissingOrCorrupt(t *testing.T) {
	home := t.TempDir()
	st, err := loadState(home)
	if err != nil || !strings.HasPrefix(st.InstanceID, "urn:uuid:") || st.MCSToken != "" {
		t.Fatalf("fresh state: %+v %v", st, err)
	}
	other, _ := loadState(t.TempDir())
	if other.InstanceID == st.InstanceID {
		t.Error("two installations share an instance id")
	}
	path := filepath.Join(home, stateFile)
	if err := os.WriteFile(path, []byte(`{"username": "alice",`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = loadState(home)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "log in again") {
		t.Errorf("corrupt state: %v (want the path and what to do)", err)
	}
	if _, err := Open(Options{}); err == nil {
		t.Error("Open without a home dir succeeded")
	}
}

func TestStepErrorFormat(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{stepErr(StepZDial, ErrBadCredentials, "check the username and password"),
			"step 2 (ZDial login): wrong username or password\n  what to do: check the username and password"},
		{stepErr(StepMCS, fmt.Errorf("%w: license expired", ErrNoLicense), ""),
			"step 3 (MCS license and address book): no valid license: license expired"},
		{stepErr(StepSIP, &CallError{Target: "3035550199", Status: 480, Reason: "Temporarily Unavailable", Err: ErrUnavailable}, "try later"),
			"step 4 (SIP signalling): call to 3035550199: not available (480 Temporarily Unavailable)\n  what to do: try later"},
		{stepErr(StepMedia, &CallError{Target: "Bob", Err: errors.New("ACK: timeout")}, ""),
			"step 5 (RTP media): call to Bob failed: ACK: timeout"},
		// An error that already names its step keeps it (and its hint).
		{stepErr(StepSIP, stepErr(StepMCS, ErrNoLicense, "run z5 login again"), "other hint"),
			"step 3 (MCS license and address book): no valid license\n  what to do: run z5 login again"},
		{stepErr(StepSIP, fmt.Errorf("wrapped: %w", stepErr(StepDNS, errors.New("no answer"), "")), "h"),
			"wrapped: step 1 (DNS resolution): no answer"},
	} {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
		}
	}
	err := stepErr(StepZDial, fmt.Errorf("%w: 2 failures", ErrLocked), "wait")
	var se *StepError
	if !errors.Is(err, ErrLocked) || !errors.As(err, &se) || se.Step != StepZDial {
		t.Errorf("errors.Is/As through StepError: %v", err)
	}
	ce := &CallError{Target: "x", Status: 486, Err: ErrBusy}
	if !errors.Is(stepErr(StepSIP, ce, callHint(ce)), ErrBusy) || callHint(ce) == "" {
		t.Error("busy call error does not unwrap to ErrBusy or has no hint")
	}
	if h := callHint(&CallError{Status: 480, Err: ErrUnavailable}); !strings.Contains(h, "not signed in") {
		t.Errorf("480 hint %q", h)
	}
	if h := callHint(&CallError{Status: 404, Err: ErrUnavailable}); !strings.Contains(h, "check the number") {
		t.Errorf("404 hint %q", h)
	}
	if h := callHint(&CallError{Status: 500, Err: errors.New("rejected")}); h != "" {
		t.Errorf("500 hint %q, want none", h)
	}
}

func TestHints(t *testing.T) {
	for _, tt := range []struct {
		nameservers []string
		want        string
	}{
		{[]string{"208.94.16.61:53", "208.95.32.61:53"}, "allow outbound UDP and TCP port 53 to the provider's nameservers [208.94.16.61:53 208.95.32.61:53]"},
		{[]string{"127.0.0.1:5353"}, "allow outbound UDP and TCP port 5353 to the provider's nameservers [127.0.0.1:5353]"},
		{[]string{"192.0.2.1:53", "[2001:db8::1]:5353"}, "allow outbound UDP and TCP port 53, 5353 to the provider's nameservers [192.0.2.1:53 [2001:db8::1]:5353]"},
	} {
		if got := dnsHint(&profile.Profile{Nameservers: tt.nameservers}); got != tt.want {
			t.Errorf("dnsHint(%v) =\n%s\nwant\n%s", tt.nameservers, got, tt.want)
		}
	}
	c := &Client{state: &State{Profile: &profile.Profile{Ports: profile.Ports{MCSHTTPS: 443}, Names: profile.Names{MCS: []string{"mcs1.mcs.z5.test", "mcs2.mcs.z5.test"}}}}}
	for _, tt := range []struct {
		err  error
		want string
	}{
		{&APIError{Status: http.StatusUnauthorized}, "log in again (z5 login)"},
		{&APIError{Status: http.StatusForbidden}, "log in again (z5 login)"},
		{fmt.Errorf("mcs1: %w", &APIError{Status: http.StatusInternalServerError}), ""},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, "allow outbound TCP port 443 to the MCS servers ([mcs1.mcs.z5.test mcs2.mcs.z5.test])"},
	} {
		if got := c.mcsHint(tt.err); got != tt.want && !(tt.want != "" && strings.Contains(got, tt.want)) {
			t.Errorf("mcsHint(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
	if got := (&APIError{Status: 429, Message: "too many attempts", RetryAfter: 30 * time.Second}).Error(); got != "too many attempts (retry after 30s) (HTTP 429)" {
		t.Errorf("APIError: %q", got)
	}
	if got := (&APIError{Status: 404}).Error(); got != "Not Found (HTTP 404)" {
		t.Errorf("APIError: %q", got)
	}
}

func TestFindContact(t *testing.T) {
	c := &Client{state: &State{Contacts: []addressbook.Contact{
		{ID: "c1", Name: "Bob", Number: "3035550199"},
		{ID: "c2", Name: "Carol Jones", Number: "4045550123"},
		{ID: "c3", Name: "Dan", Number: "5055550100"},
		{ID: "c4", Name: "dan", Number: "6065550100"},
		{ID: "c5", Name: "Interpreter", Number: "sip:vri@relay.example"},
	}}}
	for _, tt := range []struct {
		q, wantID, wantErr string
	}{
		{"Bob", "c1", ""},
		{"bob", "c1", ""},        // names match without case
		{"BOB", "c1", ""},        //
		{"c2", "c2", ""},         // by id
		{"4045550123", "c2", ""}, // by number
		{"Carol Jones", "c2", ""},
		{"Carol", "", `no contact "Carol"`}, // no prefix matching: a call must not guess
		{"Dan", "", `2 contacts match "Dan": use the id`},
		{"c3", "c3", ""},
		{"sip:vri@relay.example", "c5", ""},
		{"", "", `no contact ""`},
		{"7075550100", "", "no contact"},
	} {
		ct, err := c.FindContact(tt.q)
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("FindContact(%q) = %+v, %v; want error %q", tt.q, ct, err, tt.wantErr)
			}
		case err != nil || ct.ID != tt.wantID:
			t.Errorf("FindContact(%q) = %+v, %v; want %s", tt.q, ct, err, tt.wantID)
		}
	}
}

func TestDialable(t *testing.T) {
	for target, want := range map[string]bool{
		"3035550199": true, "+13035550199": true, "911": true,
		"sip:vri@relay.example": true, "sips:vri@relay.example": true,
		"Bob": false, "": false, "+": false, "303-555-0199": false, "303 555 0199": false, "3035550199x": false,
	} {
		if got := dialable(target); got != want {
			t.Errorf("dialable(%q) = %v, want %v", target, got, want)
		}
	}
}

func TestRelayAddr(t *testing.T) {
	for _, tt := range []struct {
		name, sdp string
		want      string // "" = not found
	}{
		{"session level", "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 127.0.0.7\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0\r\n", "127.0.0.7"},
		{"media level", "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0\r\nc=IN IP4 198.18.1.21\r\n", "198.18.1.21"},
		{"first c= wins", "v=0\nc=IN IP4 198.18.1.21\nm=video 20002 RTP/AVP 96\nc=IN IP4 198.18.2.21\n", "198.18.1.21"},
		{"IPv6", "v=0\r\nc=IN IP6 2001:db8::21\r\n", "2001:db8::21"},
		{"padded", "v=0\r\nc=IN IP4  127.0.0.1 \r\n", "127.0.0.1"},
		{"no c=", "v=0\r\nm=audio 20000 RTP/AVP 0\r\n", ""},
		{"hostname", "v=0\r\nc=IN IP4 mcs1.mcs.z5.test\r\n", ""},
		{"empty", "", ""},
		{"o= is not c=", "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\n", ""},
	} {
		a, ok := RelayAddr([]byte(tt.sdp))
		got := ""
		if ok {
			got = a.String()
		}
		if got != tt.want {
			t.Errorf("%s: RelayAddr = %q (ok %v), want %q", tt.name, got, ok, tt.want)
		}
	}
}

func TestOpenSource(t *testing.T) {
	clips := filepath.Join("..", "media", "testdata")
	dir := t.TempDir()
	link := func(name, src string) string {
		b, err := os.ReadFile(filepath.Join(clips, src))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tt := range []struct {
		path, kind, wantErr string
	}{
		{filepath.Join(clips, "clip.h264"), media.KindVideo, ""},
		{link("CLIP.H264", "clip.h264"), media.KindVideo, ""},
		{link("clip.264", "clip.h264"), media.KindVideo, ""},
		{filepath.Join(clips, "clip.wav"), media.KindAudio, ""},
		{link("CLIP.WAV", "clip.wav"), media.KindAudio, ""},
		{filepath.Join(dir, "clip.mp4"), "", "want an H.264 Annex B file (.h264) or μ-law audio (.wav, .ulaw)"},
		{filepath.Join(dir, "clip"), "", "want an H.264"},
		{filepath.Join(dir, "missing.h264"), media.KindVideo, "missing.h264"},
		{link("not-really.wav", "clip.h264"), media.KindAudio, "not-really.wav"},
	} {
		src, kind, err := OpenSource(tt.path)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("OpenSource(%s) = %v, %v; want error %q", tt.path, kind, err, tt.wantErr)
			}
			continue
		}
		if err != nil || kind != tt.kind || src == nil {
			t.Errorf("OpenSource(%s) = %v, %q, %v; want a %s source", tt.path, src, kind, err, tt.kind)
		}
	}
}

func TestCallsWithoutLogin(t *testing.T) {
	c, err := Open(Options{Home: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, err := range map[string]error{
		"Resolve":        func() error { _, err := c.Resolve(ctx); return err }(),
		"FetchLicense":   c.FetchLicense(ctx),
		"SyncContacts":   func() error { _, err := c.SyncContacts(ctx); return err }(),
		"Connect":        func() error { _, err := c.Connect(ctx, PhoneOptions{}); return err }(),
		"Login(no prof)": c.Login(ctx, LoginRequest{Username: "a", Password: "b"}),
	} {
		var se *StepError
		if !errors.As(err, &se) || se.Hint == "" || !strings.Contains(se.Hint, "z5 login") {
			t.Errorf("%s before login: %v (want a step error saying to log in)", name, err)
		}
	}
	// Logging out of nothing is fine and keeps the installation's id.
	id := c.State().InstanceID
	if err := c.Logout(ctx); err != nil || c.State().InstanceID != id {
		t.Errorf("Logout before login: %v, instance id %q -> %q", err, id, c.State().InstanceID)
	}
}
