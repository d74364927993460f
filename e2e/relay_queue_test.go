package e2e

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/client"
	"github.com/z5vrs/z5/internal/devstack"
	"github.com/z5vrs/z5/internal/media"
	"github.com/z5vrs/z5/internal/pgtest"
	"github.com/z5vrs/z5/internal/profile"
	"github.com/z5vrs/z5/internal/pstnpeer"
)

// testRelayInbound: a hearing caller on the telephone network dials bob's
// number; the trunk's INVITE is queued and offered to the interpreter
// (audio only), whose station calls bob: bob's `z5 listen` gets a video
// call from the hearing caller's number. When the hearing caller hangs
// up, the station ends bob's leg. The record says "inbound".
func testRelayInbound(t *testing.T) {
	s := startRelayStack(t, `wrap_up = "1s"`)
	peer := startTrunkPeer(t, s.trunk, nil)
	station := startStation(t, s.interpreter(t, "terp", "1001"))
	bob := s.login(t, "bob", bobPass, "")
	lis := startZ5(t, bob, "--json", "listen", "--auto-answer", "--max-calls", "1")
	waitRegistered(t, s.stack, 2)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := peer.Dial(ctx, netip4(s.ip, 5060), "mcs.z5.test", hearingNumber, bobNumber, nil)
	if err != nil {
		t.Fatalf("the hearing caller's call: %v\n%s", err, station.Output())
	}
	connected := waitEvent(t, station, "bob's leg connected", 15*time.Second, func(ev client.StationEvent) bool {
		return ev.Event == client.EvConnected && ev.Leg == client.LegUser
	})
	// Media for a while, then the hearing caller hangs up.
	time.Sleep(3 * time.Second)
	if err := d.Hangup(ctx); err != nil {
		t.Error(err)
	}
	waitExit(t, lis, 15*time.Second)
	sum := lastListenSummary(t, lis.Output())
	sent, recv, kinds := audioOf(sum.Streams)
	var videoRx uint64
	for _, st := range sum.Streams {
		if st.Kind == "video" {
			videoRx = st.PacketsReceived
		}
	}
	t.Logf("bob: call from %s via relay %s, %v, audio sent %d received %d, video received %d, ended %q", sum.Target, sum.Relay, kinds, sent, recv, videoRx, sum.EndReason)
	if sum.Target != hearingNumber || sum.Relay != s.ip || videoRx < 50 || recv < 50 || sum.EndReason != "remote hangup" {
		t.Errorf("bob's call: %+v (want a video call from %s through relay %s, ended by the station)", sum, hearingNumber, s.ip)
	}
	evs := stationEvents(station.Output())
	var offered, answered client.StationEvent
	for _, ev := range evs {
		switch ev.Event {
		case client.EvOffered:
			offered = ev
		case client.EvAnswered:
			answered = ev
		}
	}
	if offered.Direction != "inbound" || offered.Caller != hearingNumber || offered.User != bobNumber {
		t.Errorf("offer: %+v", offered)
	}
	if answered.Leg != client.LegHearing || answered.Video || !connected.Video || connected.Number != bobNumber {
		t.Errorf("answered %+v, connected %+v: want the hearing caller audio only, bob with video", answered, connected)
	}
	hear, ok := legEnded(evs, offered.RelayCall, client.LegHearing)
	if rx, _ := streamsRx(hear); !ok || rx["audio"] < 50 {
		t.Errorf("interpreter heard %v of the hearing caller", rx)
	}
	if c := peer.Calls(); len(c) != 1 || rxOf(c[0].Stats) < 50 {
		t.Errorf("the hearing caller heard nothing from the interpreter: %+v", c)
	}
	r := s.waitRecord(t, bobNumber, "an inbound record", func(r relayRecord) bool {
		return r.Direction == "inbound" && r.ConversationEnd != nil
	})
	t.Logf("record: %s %s ca %s user %s dialed %s session %v..%v conversation %v..%v", r.CallID, r.Direction, r.CAID, r.UserNumber,
		r.Dialed, r.SessionStart, r.SessionEnd, r.ConversationStart, r.ConversationEnd)
	if r.CAID != "1001" || r.UserNumber != bobNumber || r.CallID != offered.RelayCall {
		t.Errorf("record: %+v", r)
	}
}

// netip4 is ip:port.
func netip4(ip string, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(ip), port)
}

func rxOf(st []media.StreamStats) uint64 {
	var n uint64
	for _, s := range st {
		n += s.PacketsReceived
	}
	return n
}

// testRelayEmergency: alice's 911 call is offered with her registered
// location and callback number; its voice leg goes to the PSAP route with
// a Geolocation header naming a PIDF-LO part of a multipart body, whose
// civic address follows the RFC 5139 schema and is alice's. dave, with no
// registered location, may not call a hearing number (403, and the words
// say how to fix it) but still reaches 911.
func testRelayEmergency(t *testing.T) {
	s := startRelayStack(t, `wrap_up = "1s"`)
	startTrunkPeer(t, s.trunk, nil)
	psap := startTrunkPeer(t, s.psap, nil)
	station := startStation(t, s.interpreter(t, "terp", "1001"))
	s.admin(t, davePass+"\n", "customer", "add", "dave", "--password-stdin")
	s.admin(t, "", "number", "add", "dave", daveNumber)

	dave := s.login(t, "dave", davePass, "")
	out, err := z5(t, dave, "", "call", hearingNumber, "--duration", "1s")
	if err == nil || !strings.Contains(out, "403") || !strings.Contains(strings.ToLower(out), "location") || !strings.Contains(out, "z5 location set") {
		t.Errorf("dave (no location) calling %s: %v\n%s", hearingNumber, err, out)
	}

	alice := s.login(t, "alice", alicePass, aliceWork)
	sum := parseSummary(t, mustZ5(t, alice, "", "call", "911", "--duration", "3s", "--json"))
	if sum.EndReason != "duration reached" {
		t.Errorf("alice's 911 call: %+v", sum)
	}
	offered := waitEvent(t, station, "the 911 offer", 5*time.Second, func(ev client.StationEvent) bool { return ev.Event == client.EvOffered })
	if offered.Direction != "emergency" || offered.Location != located1 || offered.Callback != aliceWork || offered.Dialed != "911" {
		t.Errorf("911 offer: %+v (want location %q, callback %s)", offered, located1, aliceWork)
	}
	if !strings.Contains(offered.Text(), located1) {
		t.Errorf("the station's words do not show the location: %q", offered.Text())
	}
	calls := psap.Calls()
	if len(calls) != 1 {
		t.Fatalf("PSAP calls: %+v", calls)
	}
	c := calls[0]
	t.Logf("PSAP INVITE: to %s from %s, PAI %q, Geolocation %q, Geolocation-Routing %q, %s", c.To, c.From, c.PAI, c.Geolocation, c.GeolocationRouting, c.ContentType)
	if c.To != "911" || c.From != aliceWork || c.Video || rxOf(c.Stats) == 0 {
		t.Errorf("PSAP call: to %q from %q video %v, %d audio packets", c.To, c.From, c.Video, rxOf(c.Stats))
	}
	if !strings.EqualFold(strings.TrimSpace(c.GeolocationRouting), "no") {
		t.Errorf("Geolocation-Routing %q, want no", c.GeolocationRouting)
	}
	cid := regexp.MustCompile(`^<cid:([^>]+)>$`).FindStringSubmatch(strings.TrimSpace(c.Geolocation))
	if cid == nil {
		t.Fatalf("Geolocation %q: want <cid:...>", c.Geolocation)
	}
	parts, err := pstnpeer.Parts(c.ContentType, c.Body)
	if err != nil || !strings.HasPrefix(c.ContentType, "multipart/mixed") {
		t.Fatalf("body %s: %v", c.ContentType, err)
	}
	var pidf []byte
	for _, p := range parts {
		if p.ContentType == "application/pidf+xml" && p.ContentID == cid[1] {
			pidf = p.Body
		}
	}
	if pidf == nil {
		t.Fatalf("no application/pidf+xml part with Content-ID %s in %+v", cid[1], parts)
	}
	civic, err := validatePIDFLO(pidf)
	if err != nil {
		t.Errorf("PIDF-LO does not validate: %v\n%s", err, pidf)
	}
	want := map[string]string{"country": "US", "A1": "IL", "A3": "Springfield", "HNO": "1", "RD": "Test Plaza", "PC": "62701"}
	for k, v := range want {
		if civic[k] != v {
			t.Errorf("civic address %s = %q, want %q (all: %v)", k, civic[k], v, civic)
		}
	}
	waitEvent(t, station, "ready after the 911 call", 15*time.Second, func(ev client.StationEvent) bool {
		return ev.Event == client.EvState && ev.State == client.StateReady && ev.Time.After(offered.Time)
	})

	// dave, with no location, still reaches 911 (and the PSAP).
	sum = parseSummary(t, mustZ5(t, dave, "", "call", "911", "--duration", "2s", "--json"))
	if sum.EndReason != "duration reached" {
		t.Errorf("dave's 911 call: %+v", sum)
	}
	r := s.waitRecord(t, daveNumber, "an emergency record", func(r relayRecord) bool { return r.Direction == "emergency" && r.EndedAt != nil })
	if r.CAID != "1001" || r.Dialed != "911" {
		t.Errorf("dave's 911 record: %+v", r)
	}
}

// civicOrder is RFC 5139's civicAddress sequence: every element optional,
// each at most once, in this order (then elements of other namespaces).
var civicOrder = []string{"country", "A1", "A2", "A3", "A4", "A5", "A6", "PRM", "PRD", "RD", "STS", "POD", "POM",
	"RDSEC", "RDBR", "RDSUBBR", "HNO", "HNS", "LMK", "LOC", "FLR", "NAM", "PC", "BLD", "UNIT", "ROOM", "SEAT",
	"PLC", "PCN", "POBOX", "ADDCODE"}

const (
	nsPIDF  = "urn:ietf:params:xml:ns:pidf"
	nsGP    = "urn:ietf:params:xml:ns:pidf:geopriv10"
	nsCivic = "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr"
)

// validatePIDFLO checks a PIDF-LO as RFC 4119, 5139 and 5491 define it: a
// presence document with an entity, a tuple or device holding a geopriv
// with location-info and usage-rules, and a civicAddress whose children
// are RFC 5139 elements (each once, in the schema's order, text only,
// country a two-letter code). It returns the civic address.
func validatePIDFLO(doc []byte) (map[string]string, error) {
	dec := xml.NewDecoder(strings.NewReader(string(doc)))
	var stack []xml.Name
	civic := map[string]string{}
	var inCivic, sawGeopriv, sawLocInfo, sawUsage, sawCivic bool
	var bad error // the first schema error inside civicAddress
	last := -1
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not well-formed XML: %w", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if len(stack) == 0 {
				if el.Name.Space != nsPIDF || el.Name.Local != "presence" {
					return nil, fmt.Errorf("root is {%s}%s, want {%s}presence", el.Name.Space, el.Name.Local, nsPIDF)
				}
				if !slices.ContainsFunc(el.Attr, func(a xml.Attr) bool { return a.Name.Local == "entity" && a.Value != "" }) {
					return nil, errors.New("presence has no entity")
				}
			}
			switch {
			case inCivic:
				if el.Name.Space != nsCivic {
					break // the schema's xs:any namespace="##other"
				}
				// Read on after a schema error: the caller sees every value.
				i := slices.Index(civicOrder, el.Name.Local)
				switch {
				case i < 0 && bad == nil:
					bad = fmt.Errorf("civicAddress: %s is not an RFC 5139 element", el.Name.Local)
				case i >= 0 && i <= last && bad == nil:
					bad = fmt.Errorf("civicAddress: %s after %s breaks the schema's sequence", el.Name.Local, civicOrder[last])
				}
				last = max(last, i)
				text.Reset()
			case el.Name.Space == nsGP && el.Name.Local == "geopriv":
				sawGeopriv = true
			case el.Name.Space == nsGP && el.Name.Local == "location-info":
				sawLocInfo = sawGeopriv
			case el.Name.Space == nsGP && el.Name.Local == "usage-rules":
				sawUsage = sawGeopriv
			case el.Name.Space == nsCivic && el.Name.Local == "civicAddress":
				if len(stack) == 0 || stack[len(stack)-1].Local != "location-info" {
					return nil, errors.New("civicAddress outside geopriv location-info")
				}
				inCivic, sawCivic = true, true
			}
			stack = append(stack, el.Name)
		case xml.CharData:
			text.Write(el)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
			if inCivic && el.Name.Space == nsCivic && el.Name.Local != "civicAddress" && len(stack) > 0 && stack[len(stack)-1].Local == "civicAddress" {
				civic[el.Name.Local] = strings.TrimSpace(text.String())
			}
			if el.Name.Local == "civicAddress" {
				inCivic = false
			}
		}
	}
	switch {
	case !sawGeopriv || !sawLocInfo || !sawUsage:
		return nil, fmt.Errorf("geopriv %v, location-info %v, usage-rules %v: want all three", sawGeopriv, sawLocInfo, sawUsage)
	case !sawCivic:
		return nil, errors.New("no civicAddress")
	case bad != nil:
		return civic, bad
	case !regexp.MustCompile(`^[A-Z]{2}$`).MatchString(civic["country"]):
		return civic, fmt.Errorf("country %q: want an ISO 3166 two-letter code", civic["country"])
	}
	return civic, nil
}

func TestValidatePIDFLO(t *testing.T) {
	doc := func(civic string) []byte {
		return []byte(`<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10"
  xmlns:ca="urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
  entity="sip:2025550102@mcs.z5.test">
 <dm:device id="d1"><gp:geopriv><gp:location-info><ca:civicAddress xml:lang="en">` + civic + `</ca:civicAddress></gp:location-info>
  <gp:usage-rules/></gp:geopriv><dm:deviceID>mac:1</dm:deviceID></dm:device>
</presence>`)
	}
	for _, tt := range []struct {
		name, civic, err string
	}{
		{"RFC 5139 order", "<ca:country>US</ca:country><ca:A1>IL</ca:A1><ca:A3>Springfield</ca:A3><ca:RD>Test Plaza</ca:RD><ca:HNO>1</ca:HNO><ca:PC>62701</ca:PC>", ""},
		{"HNO before RD", "<ca:country>US</ca:country><ca:A1>IL</ca:A1><ca:HNO>1</ca:HNO><ca:RD>Test Plaza</ca:RD>", "RD after HNO"},
		{"unknown element", "<ca:country>US</ca:country><ca:STREET>x</ca:STREET>", "STREET is not"},
		{"twice", "<ca:country>US</ca:country><ca:A1>IL</ca:A1><ca:A1>IL</ca:A1>", "A1 after A1"},
		{"bad country", "<ca:country>USA</ca:country>", "country"},
		{"other namespace allowed", `<ca:country>US</ca:country><x:ext xmlns:x="urn:example">1</x:ext>`, ""},
	} {
		_, err := validatePIDFLO(doc(tt.civic))
		if (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.err)
		}
	}
	if _, err := validatePIDFLO([]byte(`<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="x"/>`)); err == nil {
		t.Error("a presence document without geopriv validated")
	}
}

// queueLine is "182 Queued (position N)" as z5 call prints it.
var queueLine = regexp.MustCompile(`182 Queued \(position (\d+)\)`)

// positions are the queue positions a caller was told, in order.
func positions(out string) []string {
	var ps []string
	for _, m := range queueLine.FindAllStringSubmatch(out, -1) {
		if len(ps) == 0 || ps[len(ps)-1] != m[1] {
			ps = append(ps, m[1])
		}
	}
	return ps
}

// waitPosition waits until caller p was last told position want.
func waitPosition(t *testing.T, p *proc, name, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ps := positions(p.Output())
		if len(ps) > 0 && ps[len(ps)-1] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: told positions %v, want %s last:\n%s", name, ps, want, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testRelayQueue: the queue in order. Interpreter 1002 (a station that
// lets offers ring) is ready longest, so alice's first call is offered to
// it; after the ring timeout it is offered to interpreter 1001, which
// answers. With 1001 busy, three callers wait and are told positions 1, 2
// and 3; bob gives up (recorded as abandoned) and carol moves up; dave's
// 911 call (dave has no registered location) goes to the front. When 1001
// is free again it gets the 911 call first, then alice's second call.
func testRelayQueue(t *testing.T) {
	s := startRelayStack(t, "ring_timeout = \"2s\"\nwrap_up = \"1s\"")
	startTrunkPeer(t, s.trunk, nil)
	startTrunkPeer(t, s.psap, nil)
	s.locatedCustomer(t, "carol", carolPass, carolNumber)
	s.admin(t, davePass+"\n", "customer", "add", "dave", "--password-stdin")
	s.admin(t, "", "number", "add", "dave", daveNumber)

	// 1002 rings and never answers.
	slow := s.interpreter(t, "slow", "1002")
	slowEvents := ringingStation(t, slow)
	fast := startStation(t, s.interpreter(t, "terp", "1001"))

	home := s.login(t, "alice", alicePass, aliceHome)
	first := startZ5(t, home, "call", hearingNumber)
	missed := slowEvents.wait(t, "1002 let the first call ring out", func(ev client.StationEvent) bool { return ev.Event == client.EvMissed })
	got := waitEvent(t, fast, "1001 answered the first call", 20*time.Second, func(ev client.StationEvent) bool { return ev.Event == client.EvAnswered })
	if got.RelayCall != missed.RelayCall {
		t.Errorf("1001 answered %s, 1002 missed %s: want the same call re-offered", got.RelayCall, missed.RelayCall)
	}
	slowEvents.wait(t, "1002 not ready after the ring timeout", func(ev client.StationEvent) bool {
		return ev.Event == client.EvState && ev.State == client.StateNotReady
	})
	waitFor(t, first, "connected", 10*time.Second)

	// 1001 is busy: three callers wait.
	work := s.login(t, "alice", alicePass, aliceWork)
	bob := s.login(t, "bob", bobPass, "")
	carol := s.login(t, "carol", carolPass, "")
	c1 := startZ5(t, work, "call", hearingNumber)
	waitPosition(t, c1, "alice (work)", "1")
	c2 := startZ5(t, bob, "call", hearingNumber)
	waitPosition(t, c2, "bob", "2")
	c3 := startZ5(t, carol, "call", hearingNumber)
	waitPosition(t, c3, "carol", "3")
	if !strings.Contains(c1.Output(), "waiting for an interpreter, number 1 in the queue") {
		t.Errorf("alice's words for her place:\n%s", c1.Output())
	}
	// bob gives up; carol moves up.
	c2.stop(syscall.SIGTERM)
	waitPosition(t, c3, "carol", "2")
	// 911 first, though dave has no registered location.
	dave := s.login(t, "dave", davePass, "")
	c4 := startZ5(t, dave, "call", "911", "--duration", "2s")
	waitPosition(t, c4, "dave (911)", "1")
	waitPosition(t, c1, "alice (work)", "2")
	waitPosition(t, c3, "carol", "3")
	t.Logf("positions told: alice %v, bob %v, carol %v, dave %v", positions(c1.Output()), positions(c2.Output()), positions(c3.Output()), positions(c4.Output()))

	// The first call ends: after wrap-up 1001 takes the 911 call, then
	// alice's.
	first.stop(syscall.SIGINT)
	second := waitEvent(t, fast, "the 911 offer", 20*time.Second, func(ev client.StationEvent) bool {
		return ev.Event == client.EvOffered && ev.RelayCall != got.RelayCall
	})
	if second.Direction != "emergency" || second.Caller != daveNumber {
		t.Errorf("after the first call 1001 was offered %+v, want dave's 911", second)
	}
	third := waitEvent(t, fast, "alice's second call", 30*time.Second, func(ev client.StationEvent) bool {
		return ev.Event == client.EvOffered && ev.RelayCall != got.RelayCall && ev.RelayCall != second.RelayCall
	})
	if third.Caller != aliceWork {
		t.Errorf("third offer %+v, want alice's work number", third)
	}
	c1.stop(syscall.SIGINT)
	c3.stop(syscall.SIGINT)

	r := s.waitRecord(t, bobNumber, "abandoned", func(r relayRecord) bool { return r.EndReason == "abandoned" })
	if r.Direction != "outbound" || r.SessionStart != nil || r.CAID != "" {
		t.Errorf("bob's abandoned record: %+v", r)
	}
	r = s.waitRecord(t, aliceHome, "ended", func(r relayRecord) bool { return r.Direction == "outbound" && r.EndedAt != nil })
	if r.CAID != "1001" || r.OfferedAt == nil || r.SessionStart == nil || r.SessionStart.Sub(*r.QueuedAt) < 2*time.Second {
		t.Errorf("the first call's record: %+v (want answered by 1001 after a 2 s ring at 1002)", r)
	}
}

// stationLog is an in-process station's events.
type stationLog struct {
	mu  sync.Mutex
	evs []client.StationEvent
}

func (l *stationLog) add(ev client.StationEvent) {
	l.mu.Lock()
	l.evs = append(l.evs, ev)
	l.mu.Unlock()
}

func (l *stationLog) wait(t *testing.T, what string, match func(client.StationEvent) bool) client.StationEvent {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		l.mu.Lock()
		for _, ev := range l.evs {
			if match(ev) {
				l.mu.Unlock()
				return ev
			}
		}
		n := len(l.evs)
		l.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("station: no %s within 20s (%d events)", what, n)
		}
	}
}

// ringingStation runs a station of the logged-in home that lets every
// offer ring until the MCS cancels it (an interpreter away from the desk).
func ringingStation(t *testing.T, home string) *stationLog {
	t.Helper()
	c, err := client.Open(client.Options{Home: home})
	if err != nil {
		t.Fatal(err)
	}
	log := &stationLog{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.RunStation(ctx, client.StationOptions{OnEvent: log.add,
			Answer: func(ctx context.Context, _ client.RelayOffer, cancelled <-chan struct{}) bool {
				select {
				case <-cancelled:
				case <-ctx.Done():
				}
				return false
			}})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ringing station: %v", err)
		}
	})
	log.wait(t, "ready", func(ev client.StationEvent) bool { return ev.Event == client.EvState && ev.State == client.StateReady })
	return log
}

// testRelayTwoSites: two sites sharing one PostgreSQL: the interpreter's
// station is registered at site B, alice at site A; alice's relay call,
// queued at A, is offered to the station at B, which reaches the hearing
// party; one record holds the CA ID.
func testRelayTwoSites(t *testing.T) {
	dsn := pgtest.Start(t) // skips without the PostgreSQL server binaries
	dir := t.TempDir()
	ip := twoSites{aDNS: loopbackIP(t), aMCS: loopbackIP(t), bDNS: loopbackIP(t), bMCS: loopbackIP(t)}
	trunk, psap := freeTCP(t, loopbackIP(t)), freeTCP(t, loopbackIP(t))
	extra := fmt.Sprintf("\n[health]\nheartbeat = \"1s\"\ndead_after = \"3s\"\n\n[store]\ndriver = \"postgres\"\ndsn = %q\n", dsn) +
		relayTOML(`wrap_up = "1s"`, trunk, psap)
	cfg := writeConfig(t, dir, devstack.Deployment("Z5 e2e two sites", dir, false, extra, twoSiteNodes(ip)...))
	siteA := startSite(t, cfg, "a", ip.aDNS, ip.aMCS)
	startSite(t, cfg, "b", ip.bDNS, ip.bMCS)
	s := &stack{ip: ip.aDNS, dir: dir, cfg: cfg, proc: siteA}
	s.provision(t)
	if _, err := profile.Load(s.profilePath()); err != nil {
		t.Fatal(err)
	}
	peer := startTrunkPeer(t, trunk, nil)
	for _, ns := range []string{ip.aDNS, ip.bDNS} {
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if lb, err := lookupA(ns+":5353", "lb.mcs.z5.test"); err == nil && len(lb) == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("lb.mcs at %s never listed both sites", ns)
			}
		}
	}
	terp := s.interpreter(t, "terp", "1001")
	preferMCS(t, terp, "mcs2.mcs.z5.test")
	station := startStation(t, terp)
	reg := waitEvent(t, station, "registered", time.Second, func(ev client.StationEvent) bool { return ev.Event == client.EvRegistered })
	if !strings.Contains(reg.Detail, "mcs2.mcs.z5.test ("+ip.bMCS+":5060)") {
		t.Fatalf("station registered %s, want site B", reg.Detail)
	}
	alice := s.login(t, "alice", alicePass, aliceWork)
	preferMCS(t, alice, "mcs1.mcs.z5.test")
	sum := parseSummary(t, mustZ5(t, alice, "", "call", hearingNumber, "--duration", "3s", "--json"))
	t.Logf("alice's call via %s, relay %s, setup %.0f ms", sum.MCS, sum.Relay, sum.SetupMs)
	if !strings.Contains(sum.MCS, ip.aMCS) || sum.EndReason != "duration reached" {
		t.Errorf("alice's call: %+v (want it placed at site A)", sum)
	}
	var videoRx uint64
	for _, st := range sum.Streams {
		if st.Kind == "video" {
			videoRx = st.PacketsReceived
		}
	}
	if videoRx < 30 {
		t.Errorf("alice received %d video packets from the interpreter at site B", videoRx)
	}
	ended := waitEvent(t, station, "call ended", 15*time.Second, func(ev client.StationEvent) bool { return ev.Event == client.EvCallEnded })
	evs := stationEvents(station.Output())
	hear, ok := legEnded(evs, ended.RelayCall, client.LegHearing)
	if rx, _ := streamsRx(hear); !ok || rx["audio"] < 30 {
		t.Errorf("the interpreter at B heard %v of the hearing party", rx)
	}
	if c := peer.Calls(); len(c) != 1 || c[0].From != aliceWork {
		t.Errorf("hearing party's calls: %+v", c)
	}
	r := s.waitRecord(t, aliceWork, "a relay record", func(r relayRecord) bool { return r.Direction == "outbound" && r.ConversationEnd != nil })
	if r.CAID != "1001" || r.CallID != ended.RelayCall {
		t.Errorf("record: %+v", r)
	}
}

// testRelayHearingBusy: the hearing party's line is busy; the station
// says so (486, busy) and, answering automatically, ends alice's call,
// which is then recorded with no conversation.
func testRelayHearingBusy(t *testing.T) {
	const busyNumber = "2125550486"
	s := startRelayStack(t, `wrap_up = "1s"`)
	startTrunkPeer(t, s.trunk, func(n string) int {
		if n == busyNumber {
			return 486
		}
		return 0
	})
	station := startStation(t, s.interpreter(t, "terp", "1001"))
	alice := s.login(t, "alice", alicePass, aliceWork)
	out, err := z5(t, alice, "", "call", busyNumber, "--duration", "10s", "--json")
	sum := parseSummary(t, out)
	if err != nil && sum.EndReason == "" {
		t.Fatalf("alice's call: %v\n%s", err, out)
	}
	if sum.EndReason != "remote hangup" || sum.DurationS > 8 {
		t.Errorf("alice's call: %+v (want it ended by the station at once)", sum)
	}
	fail := waitEvent(t, station, "the busy line", 10*time.Second, func(ev client.StationEvent) bool { return ev.Event == client.EvLegFailed })
	if fail.Status != 486 || fail.Outcome != "busy" || fail.Leg != client.LegHearing || !strings.Contains(fail.Text(), "busy (486") {
		t.Errorf("leg_failed: %+v %q", fail, fail.Text())
	}
	r := s.waitRecord(t, aliceWork, "ended", func(r relayRecord) bool { return r.Direction == "outbound" && r.EndedAt != nil })
	if r.ConversationStart != nil || r.SessionStart == nil || r.CAID != "1001" {
		t.Errorf("record of a call whose hearing party was busy: %+v", r)
	}
}

// testRelayNoInterpreter: nobody is signed in; the caller waits with its
// position and after acd.max_wait (10 s here) gets 480 with words that say
// why, and the record says queue-timeout.
func testRelayNoInterpreter(t *testing.T) {
	s := startRelayStack(t, `max_wait = "10s"`)
	alice := s.login(t, "alice", alicePass, aliceWork)
	out, err := z5(t, alice, "", "call", hearingNumber)
	t.Logf("z5 call with nobody signed in:\n%s", out)
	if err == nil || !strings.Contains(out, "182 Queued (position 1)") || !strings.Contains(out, "480") ||
		!strings.Contains(out, "No Interpreter Available") || !strings.Contains(out, "what to do: no interpreter answered within 10s") {
		t.Errorf("z5 call: %v\n%s", err, out)
	}
	r := s.waitRecord(t, aliceWork, "queue-timeout", func(r relayRecord) bool { return r.EndReason == "queue-timeout" })
	if r.Status != 480 || r.SessionStart != nil {
		t.Errorf("record: %+v", r)
	}
}

// testRelayTrunkDown: nothing answers at the trunk's address; the station
// says the telephone network cannot be reached and ends the deaf caller's
// leg.
func testRelayTrunkDown(t *testing.T) {
	s := startRelayStack(t, `wrap_up = "1s"`)
	station := startStation(t, s.interpreter(t, "terp", "1001"))
	alice := s.login(t, "alice", alicePass, aliceWork)
	out, _ := z5(t, alice, "", "call", hearingNumber, "--duration", "10s", "--json")
	if sum := parseSummary(t, out); sum.EndReason != "remote hangup" || sum.DurationS > 8 {
		t.Errorf("alice's call: %+v (want it ended by the station)", sum)
	}
	fail := waitEvent(t, station, "the trunk failure", 10*time.Second, func(ev client.StationEvent) bool { return ev.Event == client.EvLegFailed })
	t.Logf("station: %s", fail.Text())
	if fail.Status != 503 || fail.Outcome != "network unavailable" || !strings.Contains(fail.Text(), "network unavailable (503") ||
		!strings.Contains(fail.Text(), "cannot be reached") {
		t.Errorf("leg_failed: %+v", fail)
	}
}
