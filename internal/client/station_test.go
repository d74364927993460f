package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/media"
	"github.com/z5vrs/z5/internal/testenv"
)

func TestParseRelayOffer(t *testing.T) {
	hdrs := func(kv ...string) func(string) string {
		return func(name string) string {
			for i := 0; i < len(kv); i += 2 {
				if strings.EqualFold(kv[i], name) {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, tt := range []struct {
		name      string
		headers   func(string) string
		fromUser  string
		fromName  string
		want      RelayOffer
		err       string
		number    string
		leg       string
		first     string
		secondErr string
	}{
		{
			name: "outbound",
			headers: hdrs("X-Z5-Relay-Call", "abc@mcs", "X-Z5-Direction", "outbound", "X-Z5-Dialed", "2125550100",
				"X-Z5-User", "2025550102", "X-Z5-Caller", "2025550102"),
			fromUser: "2025550102", fromName: "Alice",
			want: RelayOffer{RelayCall: "abc@mcs", Direction: "outbound", Caller: "2025550102", CallerName: "Alice",
				Dialed: "2125550100", User: "2025550102"},
			number: "2125550100", leg: LegHearing, first: LegUser,
		},
		{
			name: "inbound from the trunk",
			headers: hdrs("X-Z5-Relay-Call", "in-1", "X-Z5-Direction", "Inbound", "X-Z5-Dialed", "2025550102",
				"X-Z5-User", "2025550102", "X-Z5-Caller", "2125550100"),
			fromUser: "2125550100",
			want: RelayOffer{RelayCall: "in-1", Direction: "inbound", Caller: "2125550100", Dialed: "2025550102",
				User: "2025550102"},
			number: "2025550102", leg: LegUser, first: LegHearing,
		},
		{
			name: "911 with location and callback",
			headers: hdrs("X-Z5-Relay-Call", "e-1", "X-Z5-Direction", "emergency", "X-Z5-Dialed", "911",
				"X-Z5-User", "2025550102", "X-Z5-Location", "1 Main St, Springfield, IL 62701", "X-Z5-Callback", "2025550102"),
			fromUser: "2025550102", fromName: "2025550102",
			want: RelayOffer{RelayCall: "e-1", Direction: "emergency", Caller: "2025550102", Dialed: "911",
				User: "2025550102", Location: "1 Main St, Springfield, IL 62701", Callback: "2025550102"},
			number: "911", leg: LegHearing, first: LegUser,
		},
		{
			name: "relay access number: nothing dialled yet",
			headers: hdrs("X-Z5-Relay-Call", "r-1", "X-Z5-Direction", "outbound",
				"X-Z5-User", "2025550102"),
			fromUser: "2025550102",
			want:     RelayOffer{RelayCall: "r-1", Direction: "outbound", Caller: "2025550102", User: "2025550102"},
			leg:      LegHearing, first: LegUser, secondErr: "relay access number",
		},
		{name: "no relay call id", headers: hdrs("X-Z5-Direction", "outbound", "X-Z5-User", "1"), err: "X-Z5-Relay-Call"},
		{name: "unknown direction", headers: hdrs("X-Z5-Relay-Call", "x", "X-Z5-Direction", "sideways", "X-Z5-User", "1"), err: "sideways"},
		{name: "no user", headers: hdrs("X-Z5-Relay-Call", "x", "X-Z5-Direction", "inbound"), err: "X-Z5-User"},
	} {
		got, err := ParseRelayOffer(tt.headers, tt.fromUser, tt.fromName)
		if tt.err != "" {
			if !errors.Is(err, ErrNotRelayOffer) || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err %v, want ErrNotRelayOffer naming %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s:\n got %+v %v\nwant %+v", tt.name, got, err, tt.want)
			continue
		}
		number, leg, err := got.SecondLeg()
		if tt.secondErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.secondErr) {
				t.Errorf("%s: second leg err %v, want %q", tt.name, err, tt.secondErr)
			}
		} else if err != nil || number != tt.number || leg != tt.leg {
			t.Errorf("%s: second leg %q %q %v, want %q %q", tt.name, number, leg, err, tt.number, tt.leg)
		}
		if f := got.FirstLeg(); f != tt.first {
			t.Errorf("%s: first leg %q, want %q", tt.name, f, tt.first)
		}
	}
}

func TestSecondLegOutcome(t *testing.T) {
	for code, want := range map[int]string{486: "busy", 600: "busy", 480: "no answer", 408: "no answer", 487: "no answer",
		403: "rejected", 603: "rejected", 404: "rejected", 503: "network unavailable", 500: "network unavailable",
		0: "network unavailable", 420: "failed"} {
		if got := SecondLegOutcome(code); got != want {
			t.Errorf("SecondLegOutcome(%d) = %q, want %q", code, got, want)
		}
	}
}

// fakeACD is the interpreter-state API in memory: SetState records what
// the station asked, State answers what the test (or the last SetState) set.
type fakeACD struct {
	mu    sync.Mutex
	state string
	asked []string
}

func (f *fakeACD) State(context.Context) (ACDState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return ACDState{State: f.state}, nil
}

func (f *fakeACD) SetState(_ context.Context, s string) (ACDState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = s
	f.asked = append(f.asked, s)
	return ACDState{State: s}, nil
}

func (f *fakeACD) set(s string) {
	f.mu.Lock()
	f.state = s
	f.mu.Unlock()
}

func (f *fakeACD) history() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.asked...)
}

// relayMCS is an MCS as small as a station needs, on sipgo over loopback
// TCP: it takes the station's registration, offers it relay calls over
// that flow, and answers (or refuses) the second leg the station places.
// Media runs between the station and the test's own endpoints.
type relayMCS struct {
	t    *testing.T
	ua   *sipgo.UserAgent
	srv  *sipgo.Server
	cl   *sipgo.Client
	dcli *sipgo.DialogClientCache
	dsrv *sipgo.DialogServerCache
	ln   net.Listener

	// secondStatus answers the second leg: 0 answers with media.
	secondStatus int

	mu       sync.Mutex // guards the following
	contact  *sipmsg.ContactHeader
	second   *sipmsg.Request // the second leg's INVITE
	secondEP *endpoint
	secondD  *sipgo.DialogServerSession
	byes     []string // Call-IDs of BYEs received
}

func startRelayMCS(t *testing.T) *relayMCS {
	t.Helper()
	m := &relayMCS{t: t}
	var err error
	if m.ua, err = sipgo.NewUA(sipgo.WithUserAgentHostname("127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	m.srv, _ = sipgo.NewServer(m.ua)
	m.cl, _ = sipgo.NewClient(m.ua, sipgo.WithClientHostname("127.0.0.1"))
	if m.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	contact := sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", User: "mcs", Host: "127.0.0.1", Port: m.port(),
		UriParams: sipmsg.NewParams()}}
	contact.Address.UriParams.Add("transport", "tcp")
	m.dcli = sipgo.NewDialogClientCache(m.cl, contact)
	m.dsrv = sipgo.NewDialogServerCache(m.cl, contact)
	m.srv.OnRegister(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		res := sipmsg.NewResponseFromRequest(req, 200, "OK", nil)
		if ct := req.Contact(); ct != nil {
			res.AppendHeader(ct.Clone())
			if e := req.GetHeader("Expires"); e != nil && e.Value() != "0" {
				m.mu.Lock()
				m.contact = ct.Clone()
				m.mu.Unlock()
			}
		}
		if e := req.GetHeader("Expires"); e != nil {
			res.AppendHeader(sipmsg.NewHeader("Expires", e.Value()))
		}
		tx.Respond(res)
	})
	m.srv.OnOptions(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		tx.Respond(sipmsg.NewResponseFromRequest(req, 200, "OK", nil))
	})
	m.srv.OnInvite(m.onSecondLeg)
	m.srv.OnAck(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) { m.dsrv.ReadAck(req, tx) })
	m.srv.OnBye(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		m.mu.Lock()
		m.byes = append(m.byes, req.CallID().Value())
		m.mu.Unlock()
		if m.dsrv.ReadBye(req, tx) != nil && m.dcli.ReadBye(req, tx) != nil {
			tx.Respond(sipmsg.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		}
	})
	served := make(chan struct{})
	go func() {
		defer close(served)
		m.srv.ServeTCP(m.ln)
	}()
	t.Cleanup(func() {
		m.ln.Close()
		<-served
		m.mu.Lock()
		ep := m.secondEP
		m.mu.Unlock()
		if ep != nil {
			ep.stop()
		}
		m.ua.Close()
	})
	return m
}

func (m *relayMCS) port() int { return m.ln.Addr().(*net.TCPAddr).Port }

func (m *relayMCS) registered() *sipmsg.ContactHeader {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.contact
}

func (m *relayMCS) byeFor(callID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range m.byes {
		if b == callID {
			return true
		}
	}
	return false
}

// onSecondLeg answers the station's INVITE as the far end would.
func (m *relayMCS) onSecondLeg(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	dlg, err := m.dsrv.ReadInvite(req, tx)
	if err != nil {
		tx.Respond(sipmsg.NewResponseFromRequest(req, 400, "Bad Request", nil))
		return
	}
	m.mu.Lock()
	m.second = req
	m.mu.Unlock()
	dlg.Respond(180, "Ringing", nil)
	if m.secondStatus != 0 {
		dlg.Respond(m.secondStatus, "Busy Here", nil)
		return
	}
	ep := newEndpoint(m.t, strings.Contains(string(req.Body()), "m=video"))
	answer, neg, err := media.BuildAnswer(req.Body(), ep.ip, port(ep.audio), port(ep.video))
	if err != nil {
		m.t.Errorf("second leg's offer: %v", err)
		dlg.Respond(488, "Not Acceptable Here", nil)
		ep.stop()
		return
	}
	ep.start(m.t, neg)
	m.mu.Lock()
	m.secondEP, m.secondD = ep, dlg
	m.mu.Unlock()
	dlg.Respond(200, "OK", answer, sipmsg.NewHeader("Content-Type", "application/sdp"))
	<-dlg.Context().Done()
}

// offer rings the station with a relay call from ep, the first leg's far
// end, and returns the dialog once the station answered.
func (m *relayMCS) offer(t *testing.T, ctx context.Context, ep *endpoint, headers map[string]string, from string) *sipgo.DialogClientSession {
	t.Helper()
	sess, err := m.tryOffer(t, ctx, ep, headers, from)
	if err != nil {
		t.Fatalf("the station did not answer the offer: %v", err)
	}
	return sess
}

// tryOffer is offer returning the station's refusal as an error
// (*sipgo.ErrDialogResponse).
func (m *relayMCS) tryOffer(t *testing.T, ctx context.Context, ep *endpoint, headers map[string]string, from string) (*sipgo.DialogClientSession, error) {
	t.Helper()
	ct := m.registered()
	offer, err := media.BuildOffer(ep.ip, port(ep.audio), port(ep.video), true)
	if err != nil {
		t.Fatal(err)
	}
	req := sipmsg.NewRequest(sipmsg.INVITE, ct.Address)
	req.SetTransport("TCP")
	req.SetDestination(fmt.Sprintf("%s:%d", ct.Address.Host, ct.Address.Port))
	f := &sipmsg.FromHeader{Address: sipmsg.Uri{Scheme: "sip", User: from, Host: "mcs.z5.test"}, Params: sipmsg.NewParams()}
	f.Params.Add("tag", sipmsg.GenerateTagN(8))
	req.AppendHeader(f)
	req.AppendHeader(&sipmsg.ToHeader{Address: ct.Address})
	for k, v := range headers {
		req.AppendHeader(sipmsg.NewHeader(k, v))
	}
	req.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offer)
	sess, err := m.dcli.WriteInvite(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		sess.Close()
		return nil, err
	}
	if err := sess.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	neg, err := media.ParseAnswer(sess.InviteResponse.Body())
	if err != nil {
		t.Fatal(err)
	}
	ep.start(t, neg)
	return sess, nil
}

// endpoint is a far end's media in a test: the built-in clip out, counts in.
type endpoint struct {
	ip               netip.Addr
	audio, audioRTCP *net.UDPConn
	video, videoRTCP *net.UDPConn
	mu               sync.Mutex
	sess             *media.Session
	stopped          bool
}

func newEndpoint(t *testing.T, video bool) *endpoint {
	t.Helper()
	ep := &endpoint{ip: netip.MustParseAddr("127.0.0.1")}
	var err error
	if ep.audio, ep.audioRTCP, err = media.ListenRTPPair(ep.ip); err != nil {
		t.Fatal(err)
	}
	if video {
		if ep.video, ep.videoRTCP, err = media.ListenRTPPair(ep.ip); err != nil {
			t.Fatal(err)
		}
	}
	return ep
}

func (ep *endpoint) start(t *testing.T, neg media.Negotiated) {
	var streams []media.StreamConfig
	if a := neg.Audio; a != nil {
		src, _ := media.DefaultAudio()
		streams = append(streams, media.StreamConfig{Kind: a.Kind, PT: a.PT, ClockRate: a.ClockRate, Local: ep.audio,
			LocalRTCP: rtcpSock(a, ep.audioRTCP), Remote: a.Remote, RemoteRTCP: a.RemoteRTCP, Source: src})
	}
	if v := neg.Video; v != nil && ep.video != nil {
		src, _ := media.DefaultVideo()
		streams = append(streams, media.StreamConfig{Kind: v.Kind, PT: v.PT, ClockRate: v.ClockRate, Local: ep.video,
			LocalRTCP: rtcpSock(v, ep.videoRTCP), Remote: v.Remote, RemoteRTCP: v.RemoteRTCP, Source: src})
	}
	sess, err := media.NewSession(media.SessionConfig{Streams: streams})
	if err == nil {
		err = sess.Start(context.Background())
	}
	if err != nil {
		t.Errorf("endpoint media: %v", err)
		return
	}
	ep.mu.Lock()
	ep.sess = sess
	ep.mu.Unlock()
}

func rtcpSock(sp *media.StreamParams, c *net.UDPConn) *net.UDPConn {
	if sp.RTCPMux {
		return nil
	}
	return c
}

// received is what the endpoint got of kind.
func (ep *endpoint) received(kind string) uint64 {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.sess == nil {
		return 0
	}
	for _, s := range ep.sess.Stats() {
		if s.Kind == kind {
			return s.PacketsReceived
		}
	}
	return 0
}

func (ep *endpoint) stop() {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.stopped {
		return
	}
	ep.stopped = true
	if ep.sess != nil {
		ep.sess.Stop()
	}
	for _, c := range []*net.UDPConn{ep.audio, ep.audioRTCP, ep.video, ep.videoRTCP} {
		if c != nil {
			c.Close()
		}
	}
}

// eventLog keeps a station's events for a test.
type eventLog struct {
	mu  sync.Mutex
	evs []StationEvent
}

func (l *eventLog) add(ev StationEvent) {
	l.mu.Lock()
	l.evs = append(l.evs, ev)
	l.mu.Unlock()
}

func (l *eventLog) find(name, leg string) (StationEvent, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ev := range l.evs {
		if ev.Event == name && (leg == "" || ev.Leg == leg) {
			return ev, true
		}
	}
	return StationEvent{}, false
}

func (l *eventLog) names() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var s []string
	for _, ev := range l.evs {
		n := ev.Event
		if ev.State != "" {
			n += ":" + ev.State
		}
		if ev.Leg != "" {
			n += ":" + ev.Leg
		}
		s = append(s, n)
	}
	return strings.Join(s, " ")
}

// stationRig is a logged-in client, a fake MCS and a running station.
type stationRig struct {
	mcs    *relayMCS
	acd    *fakeACD
	log    *eventLog
	rec    string
	cancel context.CancelFunc
	done   chan error
}

func startStation(t *testing.T, secondStatus int, tweak ...func(*StationOptions)) *stationRig {
	t.Helper()
	f := newFakeProvider(t, startDNS(t))
	c := f.loginAlice(t, Options{})
	ctx := context.Background()
	r := &stationRig{mcs: startRelayMCS(t), acd: &fakeACD{}, log: &eventLog{}, rec: t.TempDir(), done: make(chan error, 1)}
	r.mcs.secondStatus = secondStatus
	c.state.SIP.Port = r.mcs.port()
	sctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	opts := StationOptions{AutoAnswer: true, ACD: r.acd, OnEvent: r.log.add, RecordDir: r.rec,
		PollInterval: 20 * time.Millisecond, MediaTimeout: 10 * time.Second}
	for _, f := range tweak {
		f(&opts)
	}
	go func() { r.done <- c.RunStation(sctx, opts) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(15 * time.Second):
			t.Error("the station did not stop")
		}
	})
	testenv.WaitFor(t, 10*time.Second, "registered and ready", func() bool {
		_, ok := r.log.find(EvState, "")
		return ok && r.mcs.registered() != nil
	})
	return r
}

// stop ends the station as Ctrl-C would and checks it signed out.
func (r *stationRig) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("station ended with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the station did not stop")
	}
	r.done <- nil // for the cleanup
	if h := r.acd.history(); len(h) != 2 || h[0] != StateReady || h[1] != StateNotReady {
		t.Errorf("states asked of the MCS: %v, want ready then not_ready", h)
	}
	if _, ok := r.log.find(EvSignedOut, ""); !ok {
		t.Errorf("no signed_out event: %s", r.log.names())
	}
}

// TestStationOutbound: a deaf caller's relay call is offered, answered with
// video, and the station calls the dialled number audio only, naming the
// relay call; media flows on both legs and is recorded per leg; when the
// deaf caller hangs up the station ends the hearing leg; the MCS's state
// changes are shown; Ctrl-C signs out.
func TestStationOutbound(t *testing.T) {
	r := startStation(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	user := newEndpoint(t, true)
	defer user.stop()
	first := r.mcs.offer(t, ctx, user, map[string]string{HeaderRelayCall: "relay-1", HeaderDirection: "outbound",
		HeaderDialed: "2125550100", HeaderUser: "3035550199", HeaderCaller: "3035550199"}, "3035550199")
	r.acd.set(StateInCall)
	testenv.WaitFor(t, 10*time.Second, "the hearing leg connected", func() bool { _, ok := r.log.find(EvConnected, LegHearing); return ok })

	r.mcs.mu.Lock()
	second, hearing := r.mcs.second, r.mcs.secondEP
	r.mcs.mu.Unlock()
	if second.Recipient.User != "2125550100" || second.GetHeader(HeaderRelayCall) == nil || second.GetHeader(HeaderRelayCall).Value() != "relay-1" {
		t.Errorf("second leg: %s with %v", second.Recipient.String(), second.GetHeader(HeaderRelayCall))
	}
	if body := string(second.Body()); strings.Contains(body, "m=video") || strings.Contains(body, "m=text") || !strings.Contains(body, "m=audio") {
		t.Errorf("the hearing leg's offer is not audio only:\n%s", body)
	}
	testenv.WaitFor(t, 10*time.Second, "media on both legs", func() bool {
		return user.received("video") > 20 && user.received("audio") > 20 && hearing.received("audio") > 20
	})
	// One call at a time: another offer now is busy at once.
	other := newEndpoint(t, true)
	defer other.stop()
	_, err := r.mcs.tryOffer(t, ctx, other, map[string]string{HeaderRelayCall: "relay-9", HeaderDirection: "outbound",
		HeaderDialed: "2125550199", HeaderUser: "2025550101"}, "2025550101")
	var de *sipgo.ErrDialogResponse
	if !errors.As(err, &de) || de.Res.StatusCode != 486 {
		t.Errorf("an offer during a call: %v, want 486 Busy Here", err)
	}
	if ans, _ := r.log.find(EvAnswered, ""); ans.Relay != "127.0.0.1" {
		t.Errorf("answered: relay %q, want the media address of the offer", ans.Relay)
	}
	// The deaf caller hangs up: the station ends the hearing leg.
	if err := first.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the hearing leg ended by the station", func() bool { return r.mcs.byeFor(second.CallID().Value()) })
	testenv.WaitFor(t, 10*time.Second, "call ended", func() bool { _, ok := r.log.find(EvCallEnded, ""); return ok })
	r.acd.set(StateWrapUp)
	testenv.WaitFor(t, 5*time.Second, "wrap-up shown", func() bool {
		return strings.Contains(r.log.names(), "state:in_call") && strings.Contains(r.log.names(), "state:wrap_up")
	})
	r.acd.set(StateReady)
	testenv.WaitFor(t, 5*time.Second, "ready again", func() bool { return strings.HasSuffix(r.log.names(), "state:ready") })

	offered, _ := r.log.find(EvOffered, "")
	if offered.RelayCall != "relay-1" || offered.Direction != "outbound" || offered.Caller != "3035550199" || offered.Dialed != "2125550100" {
		t.Errorf("offered event: %+v", offered)
	}
	for _, leg := range []struct {
		name  string
		kinds []string
	}{{LegUser, []string{"video", "audio"}}, {LegHearing, []string{"audio"}}} {
		ev, ok := r.log.find(EvLegEnded, leg.name)
		if !ok {
			t.Errorf("no leg_ended for %s: %s", leg.name, r.log.names())
			continue
		}
		got := map[string]uint64{}
		for _, s := range ev.Streams {
			got[s.Kind] = s.PacketsReceived
		}
		for _, k := range leg.kinds {
			if got[k] == 0 {
				t.Errorf("%s leg received no %s: %+v", leg.name, k, got)
			}
		}
		if len(got) != len(leg.kinds) {
			t.Errorf("%s leg streams %v, want %v", leg.name, got, leg.kinds)
		}
		want := filepath.Join(r.rec, "call1", leg.name, leg.name+".mkv")
		if fi, err := os.Stat(want); ev.Recording != want || err != nil || fi.Size() == 0 {
			t.Errorf("%s recording %q (want %s): %v", leg.name, ev.Recording, want, err)
		}
	}
	r.stop(t)
}

// TestStationSecondLegBusy: the hearing party is busy; the station says so
// and, answering automatically, ends the deaf caller's leg.
func TestStationSecondLegBusy(t *testing.T) {
	r := startStation(t, 486)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	user := newEndpoint(t, true)
	defer user.stop()
	first := r.mcs.offer(t, ctx, user, map[string]string{HeaderRelayCall: "relay-2", HeaderDirection: "outbound",
		HeaderDialed: "2125550486", HeaderUser: "3035550199"}, "3035550199")
	select {
	case <-first.Context().Done():
	case <-ctx.Done():
		t.Fatalf("the first leg was not ended: %s", r.log.names())
	}
	fail, ok := r.log.find(EvLegFailed, LegHearing)
	if !ok || fail.Status != 486 || fail.Outcome != "busy" || !strings.Contains(fail.Text(), "busy (486 Busy Here)") {
		t.Errorf("leg_failed: %+v %q", fail, fail.Text())
	}
	testenv.WaitFor(t, 10*time.Second, "call ended", func() bool { _, ok := r.log.find(EvCallEnded, ""); return ok })
	// An INVITE that is no relay offer is refused.
	stranger := newEndpoint(t, true)
	defer stranger.stop()
	_, err := r.mcs.tryOffer(t, ctx, stranger, map[string]string{HeaderDirection: "outbound", HeaderDialed: "2125550100"}, "2025550101")
	var de *sipgo.ErrDialogResponse
	if !errors.As(err, &de) || de.Res.StatusCode != 403 {
		t.Errorf("an INVITE without X-Z5-Relay-Call: %v, want 403", err)
	}
	r.stop(t)
}

// TestStationInbound: a hearing caller's call from the trunk (audio only)
// is answered audio only, and the station calls the deaf user's number
// with video.
func TestStationInbound(t *testing.T) {
	r := startStation(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hearing := newEndpoint(t, false)
	defer hearing.stop()
	first := r.mcs.offer(t, ctx, hearing, map[string]string{HeaderRelayCall: "relay-3", HeaderDirection: "inbound",
		HeaderDialed: "3035550199", HeaderUser: "3035550199", HeaderCaller: "2125550100"}, "2125550100")
	testenv.WaitFor(t, 10*time.Second, "the user leg connected", func() bool { _, ok := r.log.find(EvConnected, LegUser); return ok })
	r.mcs.mu.Lock()
	second, user := r.mcs.second, r.mcs.secondEP
	r.mcs.mu.Unlock()
	if second.Recipient.User != "3035550199" || !strings.Contains(string(second.Body()), "m=video") {
		t.Errorf("second leg to %s:\n%s", second.Recipient.User, second.Body())
	}
	testenv.WaitFor(t, 10*time.Second, "media on both legs", func() bool {
		return user.received("video") > 20 && hearing.received("audio") > 20
	})
	if ans, _ := r.log.find(EvAnswered, ""); ans.Leg != LegHearing || ans.Video {
		t.Errorf("answered: %+v (want the hearing leg, audio only)", ans)
	}
	// The station's own hang-up (Ctrl-C) ends both legs.
	r.stop(t)
	select {
	case <-first.Context().Done():
	case <-time.After(10 * time.Second):
		t.Error("the hearing leg was not ended at Ctrl-C")
	}
	if !r.mcs.byeFor(second.CallID().Value()) {
		t.Error("the user leg was not ended at Ctrl-C")
	}
}

// TestQueuedAndRefusedCalls: a caller waiting for an interpreter reads its
// place from 182 Queued; a refused relay call says why and what to do.
func TestQueuedAndRefusedCalls(t *testing.T) {
	parse := func(raw string) *sipmsg.Response {
		m, err := sipmsg.ParseMessage([]byte(strings.ReplaceAll(raw, "\n", "\r\n") + "\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		return m.(*sipmsg.Response)
	}
	head := "Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK1\nFrom: <sip:a@x>;tag=1\nTo: <sip:b@x>\nCall-ID: c\nCSeq: 1 INVITE\nContent-Length: 0\n"
	for _, tt := range []struct {
		raw  string
		want int
	}{
		{"SIP/2.0 182 Queued (position 3)\n" + head + "X-Z5-Queue-Position: 3\n", 3},
		{"SIP/2.0 182 Queued\n" + head, 0},
		{"SIP/2.0 182 Queued\n" + head + "X-Z5-Queue-Position: zero\n", 0},
		{"SIP/2.0 180 Ringing\n" + head + "X-Z5-Queue-Position: 2\n", 0},
	} {
		if got := queuePosition(parse(tt.raw)); got != tt.want {
			t.Errorf("queuePosition(%q) = %d, want %d", tt.raw[:30], got, tt.want)
		}
	}
	loc := parse("SIP/2.0 403 Forbidden (Registered Location Required)\n" + head +
		`Warning: 399 mcs.z5.test "set your registered location with z5 location set"` + "\n")
	if w := warningText(loc); w != "set your registered location with z5 location set" {
		t.Errorf("warning text %q", w)
	}
	for _, tt := range []struct {
		ce   *CallError
		want string
	}{
		{&CallError{Status: 403, Reason: "Forbidden (Registered Location Required)", Warning: warningText(loc)}, "z5 location set"},
		{&CallError{Status: 403, Reason: "Forbidden (Registered Location Required)"}, "z5 location set --street"},
		{&CallError{Status: 480, Reason: "Temporarily Unavailable (No Interpreter Available)", Err: ErrUnavailable}, "no interpreter answered"},
		{&CallError{Status: 480, Reason: "Temporarily Unavailable", Err: ErrUnavailable}, "not signed in"},
	} {
		if got := callHint(tt.ce); !strings.Contains(got, tt.want) {
			t.Errorf("hint for %d %s: %q, want it to say %q", tt.ce.Status, tt.ce.Reason, got, tt.want)
		}
	}
}

// TestStationRetryAfterHangup: answering by hand, the interpreter calls
// the hearing party again after it hung up (the deaf caller still on),
// and the second time lets the call end: the station then ends the deaf
// caller's leg.
func TestStationRetryAfterHangup(t *testing.T) {
	var mu sync.Mutex
	asked := 0
	r := startStation(t, 0, func(o *StationOptions) {
		o.AutoAnswer = false
		o.Answer = func(context.Context, RelayOffer, <-chan struct{}) bool { return true }
		o.Retry = func(_ context.Context, _ RelayOffer, ev StationEvent) bool {
			mu.Lock()
			defer mu.Unlock()
			asked++
			return asked == 1 && ev.Leg == LegHearing && ev.Reason == "remote hangup"
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	user := newEndpoint(t, true)
	defer user.stop()
	first := r.mcs.offer(t, ctx, user, map[string]string{HeaderRelayCall: "relay-4", HeaderDirection: "outbound",
		HeaderDialed: "2125550100", HeaderUser: "3035550199"}, "3035550199")
	hangUpHearing := func(n int) string {
		t.Helper()
		testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("hearing leg %d connected", n), func() bool {
			r.log.mu.Lock()
			defer r.log.mu.Unlock()
			c := 0
			for _, ev := range r.log.evs {
				if ev.Event == EvConnected {
					c++
				}
			}
			return c == n
		})
		r.mcs.mu.Lock()
		d, req := r.mcs.secondD, r.mcs.second
		r.mcs.mu.Unlock()
		if err := d.Bye(ctx); err != nil {
			t.Fatal(err)
		}
		return req.CallID().Value()
	}
	one := hangUpHearing(1)
	two := hangUpHearing(2)
	select {
	case <-first.Context().Done():
	case <-ctx.Done():
		t.Fatalf("the deaf caller's leg was not ended: %s", r.log.names())
	}
	mu.Lock()
	n := asked
	mu.Unlock()
	if one == two || n != 2 {
		t.Errorf("second legs %s and %s, asked %d times: want two calls and two questions", one, two, n)
	}
	testenv.WaitFor(t, 10*time.Second, "call ended", func() bool { _, ok := r.log.find(EvCallEnded, ""); return ok })
	r.stop(t)
}
