package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/client"
	"github.com/z5vrs/z5/internal/pstnpeer"
	"github.com/z5vrs/z5/internal/testenv"
)

// Relay calls end to end: a deaf caller's `z5 call` to a hearing number is
// queued, offered to `z5 interpret --auto-answer` (the interpreter's
// station), which calls the hearing party through the MCS and the voice
// trunk; the "telephone network" is SIPp or the pstnpeer package at the
// trunk address. Every address is on loopback, and the MCS sends only to
// addresses of the config (the trunk) and of our own processes.

const (
	hearingNumber = "2125550100"
	terpPass      = "terp-secret-1"
	carolPass     = "carol-secret-3"
	carolNumber   = "4045550123"
	davePass      = "dave-secret-44"
	daveNumber    = "5055550144" // a customer with no registered location
	located1      = "1 Test Plaza, Springfield, IL 62701"
)

// relayNetnsEnv marks the test binary re-run inside the namespace.
const relayNetnsEnv = "Z5_RELAY_NETNS"

// TestRelayCalls runs the relay call tests. The MCS sends SIP and media to
// addresses that messages name (the hearing party's SDP, Contact), so as
// root they run in a network namespace of their own that has only
// loopback (`unshare --net`, lo up): nothing they send can leave it. Without
// root they run on the host's loopback, where every peer is one of ours.
func TestRelayCalls(t *testing.T) {
	if relayInNetns(t, "^TestRelayCalls$") {
		return
	}
	for _, tc := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"outbound", testRelayOutbound},
		{"inbound", testRelayInbound},
		{"emergency", testRelayEmergency},
		{"queue", testRelayQueue},
		{"hearing busy", testRelayHearingBusy},
		{"no interpreter", testRelayNoInterpreter},
		{"trunk down", testRelayTrunkDown},
		{"two sites", testRelayTwoSites},
	} {
		t.Run(tc.name, tc.run)
	}
}

// relayInNetns runs the tests matching run again in a loopback-only
// network namespace when it can (as root, with unshare and ip) and says
// whether it did; if not, the caller goes on on the host's loopback.
func relayInNetns(t *testing.T, run string) bool {
	t.Helper()
	if os.Getenv(relayNetnsEnv) == "1" {
		return false
	}
	if why := testenv.NetnsMissing(); why != "" {
		t.Logf("%s: on the host's loopback", why)
		return false
	}
	testenv.ReexecInNetns(t, run, relayNetnsEnv, loopbackOnly, 10*time.Minute)
	return true
}

// relayStack is a one-node stack with a voice trunk and a PSAP route, each
// at its own loopback address (the tests put a peer there).
type relayStack struct {
	*stack
	trunk, psap netip.AddrPort
}

// startRelayStack starts a provisioned stack (alice, bob) whose [acd]
// table holds acd.
func startRelayStack(t *testing.T, acd string) *relayStack {
	t.Helper()
	r := &relayStack{stack: &stack{ip: loopbackIP(t), dir: t.TempDir()}}
	r.trunk = freeTCP(t, loopbackIP(t))
	r.psap = freeTCP(t, loopbackIP(t))
	r.cfg = stackConfig(t, r.dir, r.ip, relayTOML(acd, r.trunk, r.psap))
	r.start(t)
	r.provision(t)
	return r
}

// relayTOML is the [acd] and [trunk] config of a relay test.
func relayTOML(acd string, trunk, psap netip.AddrPort) string {
	return fmt.Sprintf(`
[acd]
%s

[trunk]
address = "sip:%s;transport=tcp"
allow = ["%s/32"]

[[trunk.route]]
match = "911"
target = "sip:911@%s;transport=tcp"
`, acd, trunk, trunk.Addr(), psap)
}

// interpreter creates an interpreter account with caID and logs its
// station in; it returns the station's home.
func (s *stack) interpreter(t *testing.T, name, caID string) string {
	t.Helper()
	s.admin(t, terpPass+"\n", "interpreter", "add", name, "--ca-id", caID, "--password-stdin")
	return s.login(t, name, terpPass, "")
}

// locatedCustomer adds a customer with one number and a registered location.
func (s *stack) locatedCustomer(t *testing.T, name, pass, number string) {
	t.Helper()
	s.admin(t, pass+"\n", "customer", "add", name, "--password-stdin")
	s.admin(t, "", "customer", "location", name, "--street", "1 Test Plaza", "--city", "Springfield", "--state", "IL", "--zip", "62701")
	s.admin(t, "", "number", "add", name, number)
}

// startStation runs `z5 interpret --auto-answer --json` until it is ready.
func startStation(t *testing.T, home string, args ...string) *proc {
	t.Helper()
	p := startZ5(t, home, append([]string{"--json", "interpret", "--auto-answer"}, args...)...)
	waitEvent(t, p, "ready", 20*time.Second, func(ev client.StationEvent) bool {
		return ev.Event == client.EvState && ev.State == client.StateReady
	})
	return p
}

// stationEvents are the JSON lines a station printed so far.
func stationEvents(out string) []client.StationEvent {
	var evs []client.StationEvent
	for _, line := range strings.Split(out, "\n") {
		var ev client.StationEvent
		if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &ev) == nil {
			evs = append(evs, ev)
		}
	}
	return evs
}

// waitEvent waits for the station's first event that match accepts.
func waitEvent(t *testing.T, p *proc, what string, timeout time.Duration, match func(client.StationEvent) bool) client.StationEvent {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, ev := range stationEvents(p.Output()) {
			if match(ev) {
				return ev
			}
		}
		select {
		case <-p.done:
			t.Fatalf("station exited before %s:\n%s", what, p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("station: no %s within %s:\n%s", what, timeout, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// legEnded finds the station's leg_ended event of leg for relay call id.
func legEnded(evs []client.StationEvent, id, leg string) (client.StationEvent, bool) {
	for _, ev := range evs {
		if ev.Event == client.EvLegEnded && ev.RelayCall == id && ev.Leg == leg {
			return ev, true
		}
	}
	return client.StationEvent{}, false
}

// streamsRx maps a leg's stream kinds to packets received and sent.
func streamsRx(ev client.StationEvent) (rx, tx map[string]uint64) {
	rx, tx = map[string]uint64{}, map[string]uint64{}
	for _, s := range ev.Streams {
		rx[s.Kind], tx[s.Kind] = s.PacketsReceived, s.PacketsSent
	}
	return rx, tx
}

// relayRecord is the part of `z5d admin calls --json` the relay tests read.
type relayRecord struct {
	CallID            string     `json:"call_id"`
	From              string     `json:"from"`
	To                string     `json:"to"`
	EndReason         string     `json:"end_reason"`
	Status            int        `json:"status"`
	EndedAt           *time.Time `json:"ended_at"`
	Direction         string     `json:"direction"`
	CAID              string     `json:"ca_id"`
	Dialed            string     `json:"dialed"`
	UserNumber        string     `json:"user_number"`
	UserIP            string     `json:"user_ip"`
	QueuedAt          *time.Time `json:"queued_at"`
	OfferedAt         *time.Time `json:"offered_at"`
	SessionStart      *time.Time `json:"session_start"`
	SessionEnd        *time.Time `json:"session_end"`
	ConversationStart *time.Time `json:"conversation_start"`
	ConversationEnd   *time.Time `json:"conversation_end"`
	Streams           []struct {
		Leg       string `json:"leg"`
		Media     string `json:"media"`
		Packets   uint64 `json:"packets"`
		Dropped   uint64 `json:"dropped_from_strangers"`
		Encrypted bool   `json:"encrypted"`
	} `json:"streams"`
}

// waitRecord waits for the call record of number that done accepts.
func (s *stack) waitRecord(t *testing.T, number string, what string, done func(relayRecord) bool) relayRecord {
	t.Helper()
	var recs []relayRecord
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		recs = recs[:0]
		if err := json.Unmarshal([]byte(s.admin(t, "", "--json", "calls", "--number", number)), &recs); err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if done(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no call record of %s with %s: %+v", number, what, recs)
		}
	}
}

// startTrunkPeer runs the telephone-network peer at addr until the test ends.
func startTrunkPeer(t *testing.T, addr netip.AddrPort, status func(string) int) *pstnpeer.Peer {
	t.Helper()
	p, err := pstnpeer.New(pstnpeer.Config{Addr: addr.String(), Status: status})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("telephone network peer: %v", err)
		}
	})
	return p
}

// exitCode waits for p and returns its exit status.
func exitCode(t *testing.T, p *proc, timeout time.Duration) int {
	t.Helper()
	waitExit(t, p, timeout)
	return p.cmd.ProcessState.ExitCode()
}

// hearingScenario is the hearing party as SIPp plays it: answer, play a
// tone until the MCS hangs up.
const hearingScenario = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="hearing party">
  <recv request="INVITE"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]hearing[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:[service]@[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]hearing[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:[service]@[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 2 2 IN IP[local_ip_type] [media_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv request="ACK"/>
  <nop>
    <action>
      <exec rtp_stream="@TONE@,-1,0"/>
    </action>
  </nop>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
`

// startSIPpHearing runs SIPp as the hearing party at addr for one call;
// the returned file is SIPp's message log.
func startSIPpHearing(t *testing.T, addr netip.AddrPort) (*proc, string) {
	t.Helper()
	needTool(t, "sipp")
	dir := t.TempDir()
	tone := make([]byte, 8000)
	for i := range tone {
		// A 500 Hz square wave in μ-law: audible, and anything but silence.
		tone[i] = 0x9f
		if (i/8)%2 == 1 {
			tone[i] = 0x1f
		}
	}
	toneFile := filepath.Join(dir, "tone.ulaw")
	scen := filepath.Join(dir, "hearing.xml")
	if err := os.WriteFile(toneFile, tone, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(scen, []byte(strings.ReplaceAll(hearingScenario, "@TONE@", toneFile)), 0o644); err != nil {
		t.Fatal(err)
	}
	msgs := filepath.Join(dir, "messages.log")
	media := freeUDPOn(t, addr.Addr().String())
	p := startTool(t, "sipp", "-sf", scen, "-t", "t1", "-i", addr.Addr().String(), "-p", fmt.Sprint(addr.Port()),
		"-mi", addr.Addr().String(), "-mp", fmt.Sprint(media), "-m", "1", "-timeout", "90s", "-timeout_error", "-nostdin",
		"-trace_msg", "-message_file", msgs, "-trace_err", "-error_file", filepath.Join(dir, "errors.log"))
	p.cmd.Dir = dir
	// SIPp listens within milliseconds; a connection to find out would be
	// a call attempt of its own.
	for deadline := time.Now().Add(5 * time.Second); !listening(addr); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("SIPp does not listen on %s:\n%s", addr, p.Output())
		}
	}
	return p, msgs
}

// listening reports whether a TCP socket listens on addr (from
// /proc/net/tcp, without connecting).
func listening(addr netip.AddrPort) bool {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false
	}
	ip := addr.Addr().As4()
	want := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], addr.Port())
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 3 && f[1] == want && f[3] == "0A" { // 0A: LISTEN
			return true
		}
	}
	return false
}

func freeUDPOn(t *testing.T, ip string) int {
	t.Helper()
	c, err := net.ListenPacket("udp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// sippINVITE is the first INVITE in SIPp's message log.
func sippINVITE(t *testing.T, msgs string) string {
	t.Helper()
	b, err := os.ReadFile(msgs)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "INVITE sip:")
	if i < 0 {
		t.Fatalf("SIPp received no INVITE:\n%s", s)
	}
	s = s[i:]
	if j := strings.Index(s, "\n---"); j > 0 {
		s = s[:j]
	}
	return s
}

// testRelayOutbound is the outbound relay call: alice (deaf, video) calls
// a hearing number; the call is queued and offered to the interpreter's
// station, which answers with video and calls the hearing party (SIPp at
// the trunk address) audio only, with alice's number as the calling
// number. Video flows both ways between alice and the interpreter, audio
// both ways between the interpreter and the hearing party, all through
// the relay; when alice hangs up, the station ends the hearing leg and is
// ready again after wrap-up; one call record holds the CA ID and the
// conversation times.
func testRelayOutbound(t *testing.T) {
	s := startRelayStack(t, `wrap_up = "1s"`)
	hearing, msgs := startSIPpHearing(t, s.trunk)
	terp := s.interpreter(t, "terp", "1001")
	rec := t.TempDir()
	// The station sends a clip of its own: video and audio to alice, the
	// audio alone to the hearing party.
	clip := "../internal/media/testdata/clip"
	station := startStation(t, terp, "--record", rec, "--send", clip+".h264,"+clip+".wav")

	alice := s.login(t, "alice", alicePass, aliceWork)
	recA := t.TempDir()
	out := mustZ5(t, alice, "", "call", hearingNumber, "--duration", "4s", "--record", recA, "--json")
	sum := parseSummary(t, out)
	t.Logf("alice's call: setup %.0f ms (queue and answer), %.1f s, relay %s, ended %q", sum.SetupMs, sum.DurationS, sum.Relay, sum.EndReason)
	if sum.Relay != s.ip || sum.EndReason != "duration reached" {
		t.Errorf("alice's call: %+v (want relay %s)", sum, s.ip)
	}
	aliceRx := map[string]uint64{}
	for _, st := range sum.Streams {
		aliceRx[st.Kind] = st.PacketsReceived
	}
	if aliceRx["video"] < 50 || aliceRx["audio"] < 50 {
		t.Errorf("alice received %v from the interpreter: want video and audio", aliceRx)
	}
	if code := exitCode(t, hearing, 20*time.Second); code != 0 {
		t.Errorf("SIPp hearing party exited %d (no BYE from the MCS?)", code)
	}
	ended := waitEvent(t, station, "call_ended", 15*time.Second, func(ev client.StationEvent) bool { return ev.Event == client.EvCallEnded })
	evs := stationEvents(station.Output())
	var offered, answered, connected client.StationEvent
	readyAfter := false
	for _, ev := range evs {
		switch {
		case ev.Event == client.EvOffered:
			offered = ev
		case ev.Event == client.EvAnswered:
			answered = ev
		case ev.Event == client.EvConnected:
			connected = ev
		case ev.Event == client.EvState && ev.State == client.StateReady && !ev.Time.Before(ended.Time):
			readyAfter = true
		}
	}
	if offered.Direction != "outbound" || offered.Caller != aliceWork || offered.Dialed != hearingNumber || offered.User != aliceWork {
		t.Errorf("offer: %+v", offered)
	}
	if answered.Leg != client.LegUser || !answered.Video || answered.Relay != s.ip {
		t.Errorf("answered: %+v (want the user's video leg through relay %s)", answered, s.ip)
	}
	if connected.Leg != client.LegHearing || connected.Video || connected.Relay != s.ip || connected.Number != hearingNumber {
		t.Errorf("hearing leg: %+v (want audio only through relay %s)", connected, s.ip)
	}
	if !readyAfter {
		// The MCS makes the station ready after wrap-up (1 s here).
		waitEvent(t, station, "ready after wrap-up", 10*time.Second, func(ev client.StationEvent) bool {
			return ev.Event == client.EvState && ev.State == client.StateReady && !ev.Time.Before(ended.Time)
		})
	}
	user, ok1 := legEnded(evs, offered.RelayCall, client.LegUser)
	hear, ok2 := legEnded(evs, offered.RelayCall, client.LegHearing)
	if !ok1 || !ok2 {
		t.Fatalf("legs ended: user %v, hearing %v:\n%s", ok1, ok2, station.Output())
	}
	urx, utx := streamsRx(user)
	hrx, htx := streamsRx(hear)
	t.Logf("interpreter: user leg rx %v tx %v; hearing leg rx %v tx %v", urx, utx, hrx, htx)
	if urx["video"] < 50 || urx["audio"] < 50 || utx["video"] < 50 {
		t.Errorf("user leg: rx %v tx %v, want video and audio both ways", urx, utx)
	}
	if hrx["audio"] < 50 || htx["audio"] < 50 || len(hrx) != 1 {
		t.Errorf("hearing leg: rx %v tx %v, want audio only, both ways", hrx, htx)
	}

	// What the hearing party got: audio only, alice's number calling,
	// media at the relay.
	inv := sippINVITE(t, msgs)
	for _, want := range []string{"sip:" + aliceWork + "@", "m=audio ", "c=IN IP4 " + s.ip} {
		if !strings.Contains(inv, want) {
			t.Errorf("hearing party's INVITE lacks %q:\n%s", want, inv)
		}
	}
	if strings.Contains(inv, "m=video") || strings.Contains(inv, "m=text") {
		t.Errorf("hearing party's INVITE is not audio only:\n%s", inv)
	}
	var from string
	for _, line := range strings.Split(inv, "\n") {
		if l := strings.ToLower(line); strings.HasPrefix(l, "from:") || strings.HasPrefix(l, "f:") {
			from = line
		}
	}
	if !strings.Contains(from, "sip:"+aliceWork+"@") {
		t.Errorf("calling number: From %q, want alice's %s", from, aliceWork)
	}

	// Recordings: the interpreter's per leg, alice's of the interpreter.
	if _, err := exec.LookPath("ffprobe"); err == nil {
		u := probeMKV(t, filepath.Join(rec, "call1", "user", "user.mkv"))
		h := probeMKV(t, filepath.Join(rec, "call1", "hearing", "hearing.mkv"))
		a := probeMKV(t, filepath.Join(recA, "call.mkv"))
		t.Logf("recordings: interpreter's user leg %v %v, hearing leg %v %v; alice's %v %v", u.codecs, u.frames, h.codecs, h.frames, a.codecs, a.frames)
		if u.codecs["video"] != "h264" || u.frames["video"] < 50 || u.frames["audio"] < 50 {
			t.Errorf("user leg recording: %v %v", u.codecs, u.frames)
		}
		if h.frames["audio"] < 50 || h.codecs["video"] != "" {
			t.Errorf("hearing leg recording: %v %v (want audio only)", h.codecs, h.frames)
		}
		if a.codecs["video"] != "h264" || a.frames["video"] < 50 {
			t.Errorf("alice's recording: %v %v", a.codecs, a.frames)
		}
	}

	// One record, with the CA ID and the conversation times.
	r := s.waitRecord(t, aliceWork, "conversation end", func(r relayRecord) bool {
		return r.Direction == "outbound" && r.ConversationEnd != nil && r.SessionEnd != nil
	})
	t.Logf("record: %s ca %s dialed %s user %s ip %s queued %v session %v..%v conversation %v..%v, streams %+v", r.CallID, r.CAID, r.Dialed,
		r.UserNumber, r.UserIP, r.QueuedAt, r.SessionStart, r.SessionEnd, r.ConversationStart, r.ConversationEnd, r.Streams)
	if r.CAID != "1001" || r.Dialed != hearingNumber || r.UserNumber != aliceWork || r.QueuedAt == nil || r.SessionStart == nil ||
		r.ConversationStart == nil || !r.ConversationStart.After(*r.SessionStart) || r.CallID != offered.RelayCall {
		t.Errorf("record: %+v", r)
	}
	legs := map[string]uint64{}
	for _, st := range r.Streams {
		legs[st.Leg+" "+st.Media] += st.Packets
		if st.Dropped != 0 {
			t.Errorf("relay dropped %d packets from strangers on %s %s", st.Dropped, st.Leg, st.Media)
		}
		// The deaf user's leg runs SRTP end to end (both ends signal over
		// TLS); the voice leg is plain RTP, as the telephone network is.
		if st.Packets > 0 && (st.Leg == "caller" || st.Leg == "callee") != st.Encrypted {
			t.Errorf("%s %s: encrypted %v", st.Leg, st.Media, st.Encrypted)
		}
	}
	if legs["hearing audio"] == 0 || legs["caller video"] == 0 {
		t.Errorf("relay counted %v: want the caller's video and the hearing party's audio", legs)
	}
	var n int
	var recs []relayRecord
	json.Unmarshal([]byte(s.admin(t, "", "--json", "calls", "--number", aliceWork)), &recs)
	for _, x := range recs {
		if x.CallID == r.CallID || x.Direction != "" || x.To == hearingNumber {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d records for one relay call: %+v", n, recs)
	}

	// Ctrl-C: not ready, unregistered, exit 0.
	station.stop(syscall.SIGINT)
	if code := station.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(station.Output(), `"event":"signed_out"`) {
		t.Errorf("station exit %d:\n%s", code, tailOf(station.Output()))
	}
}
