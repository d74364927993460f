package opview

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/devstack"
	"github.com/z5vrs/z5/internal/relay"
	"github.com/z5vrs/z5/internal/sipserver"
)

var t0 = time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)

// fakeNode is what a node's SIP server would show.
type fakeNode struct {
	regs  []sipserver.Registration
	calls []sipserver.ActiveCall
}

func (f fakeNode) Registrations() []sipserver.Registration { return f.regs }
func (f fakeNode) ActiveCalls() []sipserver.ActiveCall     { return f.calls }

var node1 = fakeNode{
	regs: []sipserver.Registration{{Number: "2025550102", DeviceID: 3, Kind: "z5", Transport: "TLS",
		Source: "198.18.0.7:40112", Since: t0, Expires: t0.Add(10 * time.Minute)}},
	calls: []sipserver.ActiveCall{{CallID: "c1", From: "2025550102", To: "3035550199", Node: "n1",
		StartedAt: t0.Add(time.Minute), AnsweredAt: t0.Add(61 * time.Second),
		Streams: []relay.StreamStats{{Leg: "caller", Media: "video", Packets: 1200, Bytes: 900000, Lost: 2, JitterMS: 1.25, Encrypted: true}}},
		{CallID: "c2", From: "3035550199", To: "2025550101", Node: "n1", StartedAt: t0.Add(2 * time.Minute)}},
}

// serve runs the view of src on a loopback listener until the test ends
// and returns its address.
func serve(t *testing.T, src Source) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	Handle(mux, "n1", src)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return l.Addr().String()
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestGatherGoesOnWithoutSilentNodes: the rows of the node that answers,
// and the others named with why: one refuses, one accepts and never
// answers (given up after AnswerWithin), one is not an MCS node.
func TestGatherGoesOnWithoutSilentNodes(t *testing.T) {
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	plain := http.NewServeMux() // an operations listener without the view
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	psrv := &http.Server{Handler: plain, ReadHeaderTimeout: time.Second}
	go psrv.Serve(l)
	defer psrv.Close()

	targets := []Target{{"n1", serve(t, node1)}, {"down", closedAddr(t)}, {"mute", mute.Addr().String()}, {"dns-only", l.Addr().String()}}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	regs, silent := Gather[Registration](context.Background(), hc, targets, RegistrationsPath)
	if len(regs) != 1 || regs[0].Number != "2025550102" || regs[0].Node != "n1" || regs[0].Source != "198.18.0.7:40112" {
		t.Fatalf("registrations %+v", regs)
	}
	why := map[string]string{}
	for _, u := range silent {
		why[u.Node] = u.Reason
	}
	for node, want := range map[string]string{"down": "connection refused", "mute": "no answer within 2s", "dns-only": "404"} {
		if !strings.Contains(why[node], want) {
			t.Errorf("%s: reason %q, want %q", node, why[node], want)
		}
	}
	if len(silent) != 3 || why["n1"] != "" {
		t.Errorf("unanswered %+v", silent)
	}
	calls, silent := Gather[Call](context.Background(), hc, targets[:1], CallsPath)
	if len(silent) != 0 || len(calls) != 2 || calls[0].Streams[0].Packets != 1200 || calls[1].AnsweredAt != nil {
		t.Fatalf("calls %+v, unanswered %+v", calls, silent)
	}
}

// TestViewJSON: snake_case keys, absent times omitted, nothing secret.
func TestViewJSON(t *testing.T) {
	b, err := json.Marshal(map[string]any{
		"registrations": Registrations("n1", node1.regs),
		"calls":         Calls("n1", node1.calls),
	})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, w := range []string{`"device_id":3`, `"device_kind":"z5"`, `"source":"198.18.0.7:40112"`, `"since":"2026-12-07T04:00:00Z"`,
		`"expires":"2026-12-07T04:10:00Z"`, `"call_id":"c1"`, `"jitter_ms":1.25`, `"encrypted":true`, `"answered_at":"2026-12-07T04:01:01Z"`} {
		if !strings.Contains(s, w) {
			t.Errorf("JSON lacks %s:\n%s", w, s)
		}
	}
	var calls []map[string]any
	json.Unmarshal(mustJSON(t, Calls("n1", node1.calls)), &calls)
	if _, ok := calls[1]["answered_at"]; ok {
		t.Errorf("a ringing call has an answered_at: %v", calls[1])
	}
	for _, bad := range []string{"Number", "password", "nonce", "contact", "license", "token", "key"} {
		if strings.Contains(s, `"`+bad) {
			t.Errorf("JSON has %q:\n%s", bad, s)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTables: aligned columns, times as "since 3m12s".
func TestTables(t *testing.T) {
	now := t0.Add(3*time.Minute + 12*time.Second)
	var b bytes.Buffer
	if err := WriteRegistrations(&b, now, Registrations("n1", node1.regs)); err != nil {
		t.Fatal(err)
	}
	want := "NUMBER      DEVICE  NODE  TRANSPORT  SOURCE            REGISTERED   EXPIRES\n" +
		"2025550102  3 (z5)  n1    TLS        198.18.0.7:40112  since 3m12s  in 6m48s\n"
	if b.String() != want {
		t.Errorf("registrations:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := WriteCalls(&b, now, Calls("n1", node1.calls)); err != nil {
		t.Fatal(err)
	}
	want = "2025550102 -> 3035550199  on n1: answered since 2m11s, started since 2m12s  (call-id c1)\n" +
		"  FROM    MEDIA  PACKETS  BYTES   LOST  JITTER  ENCRYPTED\n" +
		"  caller  video  1200     900000  2     1.2 ms  yes\n" +
		"\n" +
		"3035550199 -> 2025550101  on n1: ringing, started since 1m12s  (call-id c2)\n" +
		"  no media yet\n"
	if b.String() != want {
		t.Errorf("calls:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	WriteRegistrations(&b, now, nil)
	WriteCalls(&b, now, nil)
	WriteUnanswered(&b, "calls", []Unanswered{{"n2", "127.0.0.2:9090", "connection refused (z5d not running there?)"}})
	if want := "no registrations\nno active calls\nnote: node n2 (127.0.0.2:9090) did not answer: connection refused (z5d not running there?); its calls are not shown\n"; b.String() != want {
		t.Errorf("empty:\n%q\nwant:\n%q", b.String(), want)
	}
}

// TestTargets: the MCS nodes only, at their bind address (their address
// when they bind every interface) and ports.metrics.
func TestTargets(t *testing.T) {
	cfg, err := config.Parse("z5.toml", []byte(devstack.Deployment("t", t.TempDir(), false, "",
		devstack.Site{Name: "a", Nodes: []devstack.Node{
			{Name: "dns1", Roles: []string{"dns", "zdial"}, Address: "198.18.0.1"},
			{Name: "mcs1", Roles: []string{"mcs"}, Address: "198.18.0.2", Hosts: []string{"mcs1.mcs.z5.test"}},
		}},
		devstack.Site{Name: "b", Nodes: []devstack.Node{{Name: "mcs2", Roles: []string{"mcs"}, Address: "198.18.1.2", Hosts: []string{"mcs2.mcs.z5.test"}}}})))
	if err != nil {
		t.Fatal(err)
	}
	got := Targets(cfg)
	if len(got) != 2 || got[0] != (Target{"mcs1", "198.18.0.2:9090"}) || got[1] != (Target{"mcs2", "198.18.1.2:9090"}) {
		t.Fatalf("targets %+v", got)
	}
}
