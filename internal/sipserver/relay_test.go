package sipserver

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/acd"
	"github.com/z5vrs/z5/internal/store"
)

const hearing = "2125550100" // a number not ours: the telephone network

// TestRelayQueueOrderAndPositions: with the only interpreter busy, three
// callers wait at positions 1, 2, 3; a second interpreter signing in is
// offered the first caller (with the relay call's facts in X-Z5-*), the
// others move up; a 911 call then jumps the queue and is offered to every
// ready interpreter at once.
func TestRelayQueueOrderAndPositions(t *testing.T) {
	e := relayEnv(t, nil, nil)
	station(t, e, "1001", acd.InCall)
	var calls []*queuedCall
	for i, u := range []string{"5552340001", "5552340002", "5552340003"} {
		p := caller(t, e, u, "user"+u)
		q := p.callQueued(t, hearing)
		q.position(t, i+1, "caller "+u+" queued")
		calls = append(calls, q)
	}
	if got := metricValue(e, "z5_acd_queue_depth"); got != 3 {
		waitFor(t, "queue depth 3", func() bool { return metricValue(e, "z5_acd_queue_depth") == 3 })
	}

	st2 := station(t, e, "1002", acd.Ready)
	ic := st2.nextCall(5 * time.Second)
	for h, want := range map[string]string{
		"X-Z5-Relay-Call": calls[0].callID, "X-Z5-Direction": "outbound", "X-Z5-Dialed": hearing,
		"X-Z5-User": "5552340001", "X-Z5-Caller": "5552340001",
	} {
		if got := header(ic.req, h); got != want {
			t.Errorf("offer %s = %q, want %q", h, got, want)
		}
	}
	if u := ic.req.From().Address.User; u != "5552340001" {
		t.Errorf("offer From %q, want the caller", u)
	}
	if a := agentState(t, e, "1002"); a.State != acd.Offered || a.CallID != calls[0].callID {
		t.Errorf("station 1002 %+v, want offered the first call", a)
	}
	answerCall(t, st2, ic, calls[0].done, "the first caller's answer")
	calls[1].position(t, 1, "second caller moves up")
	calls[2].position(t, 2, "third caller moves up")
	rec, err := e.st.Call(context.Background(), calls[0].callID)
	if err != nil || rec.CAID != "1002" || rec.Direction != store.CallOutbound || rec.Dialed != hearing ||
		rec.UserNumber != "5552340001" || rec.QueuedAt.IsZero() || rec.OfferedAt.IsZero() || rec.SessionStart.IsZero() {
		t.Errorf("relay record %+v, %v", rec, err)
	}

	// 911 goes first and rings every ready interpreter.
	dave := caller(t, e, "5552340004", "dave")
	q911 := dave.callQueued(t, "911")
	q911.position(t, 1, "911 at the head of the queue")
	calls[1].position(t, 2, "second caller behind 911")
	st3 := station(t, e, "1003", acd.NotReady)
	st4 := station(t, e, "1004", acd.NotReady)
	e.srv.acdq.pass.Lock() // both ready in one go: 911 must ring both
	setAgent(t, e, "1003", acd.Ready)
	setAgent(t, e, "1004", acd.Ready)
	e.srv.acdq.pass.Unlock()
	ic3, ic4 := st3.nextCall(5*time.Second), st4.nextCall(5*time.Second)
	for _, o := range []*incoming{ic3, ic4} {
		if header(o.req, "X-Z5-Relay-Call") != q911.callID || header(o.req, "X-Z5-Direction") != "emergency" ||
			header(o.req, "X-Z5-Callback") != "5552340004" {
			t.Errorf("911 offer headers: %v", o.req)
		}
	}
	answerCall(t, st3, ic3, q911.done, "the 911 answer")
	wait(t, st4.cancels, "the CANCEL of the other 911 offer")
	ic4.finish()
	waitFor(t, "1004 ready again", func() bool { return agentState(t, e, "1004").State == acd.Ready })
	// 1004 is free again: the next caller is offered to it.
	ic4b := st4.nextCall(5 * time.Second)
	if header(ic4b.req, "X-Z5-Relay-Call") != calls[1].callID {
		t.Errorf("after 911, 1004 offered %q, want the second caller", header(ic4b.req, "X-Z5-Relay-Call"))
	}
	ic4b.finish()
}

// TestRelayAbandonRecorded: a caller who hangs up in the queue is recorded
// as abandoned (487) and counted.
func TestRelayAbandonRecorded(t *testing.T) {
	e := relayEnv(t, nil, nil)
	a := caller(t, e, "5552340001", "alice")
	q := a.callQueued(t, hearing)
	q.position(t, 1, "queued")
	q.cancel()
	rec := recordEnds(t, e.st, q.callID, "abandoned", 487)
	if rec.Direction != store.CallOutbound || rec.QueuedAt.IsZero() || !rec.SessionStart.IsZero() {
		t.Errorf("abandoned record %+v", rec)
	}
	waitFor(t, "abandoned counted", func() bool { return metricValue(e, "z5_acd_abandoned_total") == 1 })
	waitFor(t, "queue empty", func() bool {
		qs, _ := e.st.Queue(context.Background())
		return len(qs) == 0
	})
}

// TestRelayRingTimeoutReoffers: the longest idle interpreter is offered
// the call first; when it rings out (acd.ring_timeout) the offer is
// cancelled, that interpreter goes not ready and the next is offered.
func TestRelayRingTimeoutReoffers(t *testing.T) {
	e := relayEnv(t, nil, nil)
	idle := station(t, e, "2001", acd.NotReady)
	fresh := station(t, e, "2002", acd.NotReady)
	setAgent(t, e, "2001", acd.Ready)
	time.Sleep(10 * time.Millisecond) // distinct ready times: 2001 idle longer
	setAgent(t, e, "2002", acd.Ready)
	a := caller(t, e, "5552340001", "alice")
	q := a.callQueued(t, hearing)
	ic := idle.nextCall(5 * time.Second)
	if header(ic.req, "X-Z5-Relay-Call") != q.callID {
		t.Fatalf("offer to the longest idle is not the call")
	}
	wait(t, idle.cancels, "the CANCEL after the ring timeout")
	ic.finish()
	ic2 := fresh.nextCall(5 * time.Second)
	if header(ic2.req, "X-Z5-Relay-Call") != q.callID {
		t.Fatalf("re-offer is not the call")
	}
	if s := agentState(t, e, "2001").State; s != acd.NotReady {
		t.Errorf("the interpreter who let it ring is %s, want not_ready", s)
	}
	answerCall(t, fresh, ic2, q.done, "the answer after re-offer")
}

// TestRelayMaxWait: nobody answers within acd.max_wait: 480 with a
// reason, recorded as queue-timeout.
func TestRelayMaxWait(t *testing.T) {
	e := relayEnv(t, nil, func(c *Config) { c.ACD.MaxWait = 500 * time.Millisecond })
	a := caller(t, e, "5552340001", "alice")
	q := a.callQueued(t, hearing)
	res := wait(t, q.done, "the 480")
	if statusOf(res.err) != 480 {
		t.Fatalf("queue timeout: %v, want 480", res.err)
	}
	recordEnds(t, e.st, q.callID, "queue-timeout", 480)
}

// TestTrunkInboundAndPretender: an INVITE for one of our numbers from a
// source in trunk.allow is queued (inbound) without a challenge; the same
// INVITE from elsewhere, claiming the carrier, gets 403.
func TestTrunkInboundAndPretender(t *testing.T) {
	e := relayEnv(t, nil, nil)
	caller(t, e, "5552340001", "alice")
	invite := func(callID, fromHost string) string {
		body := "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
		return sipText(
			"INVITE sip:+15552340001@"+e.addr.String()+" SIP/2.0",
			"Via: SIP/2.0/TCP 127.0.0.2:5080;branch=z9hG4bK-"+callID,
			"Max-Forwards: 70",
			"From: <sip:+12125550100@"+fromHost+">;tag=t1",
			"To: <sip:+15552340001@"+testDomain+">",
			"Call-ID: "+callID,
			"CSeq: 1 INVITE",
			"Contact: <sip:2125550100@127.0.0.2:5080;transport=tcp>",
			"Content-Type: application/sdp",
			"Content-Length: "+itoa(len(body)),
		) + body
	}
	// The pretender: loopback 127.0.0.1 is not in trunk.allow.
	pre := dialTCP(t, e.addr)
	pre.send(t, invite("pretend-1", "127.0.0.2"))
	if m, _ := pre.read(5 * time.Second); status(m) != 403 {
		t.Fatalf("pretender: got %v, want 403", m)
	}
	// The carrier, from 127.0.0.2.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", e.addr.String())
	if err != nil {
		t.Skipf("cannot bind 127.0.0.2: %v", err)
	}
	carrier := &rawTCP{c: c, par: sipmsg.NewParser().NewSIPStream()}
	defer c.Close()
	carrier.send(t, invite("carrier-1", "127.0.0.2"))
	for {
		m, err := carrier.read(5 * time.Second)
		if m == nil || err != nil {
			t.Fatalf("carrier INVITE: no 182 (%v)", err)
		}
		if status(m) == 182 {
			break
		}
		if status(m) >= 200 {
			t.Fatalf("carrier INVITE: %d, want 182 Queued", status(m))
		}
	}
	qs, err := e.st.Queue(context.Background())
	if err != nil || len(qs) != 1 || qs[0].Direction != store.CallInbound || qs[0].User != "5552340001" || qs[0].Caller != hearing {
		t.Errorf("queue %+v %v, want one inbound call for 5552340001 from %s", qs, err, hearing)
	}
}

// TestSecondLegToTrunk: only the station holding the relay call may place
// its second leg (another station: 403); the leg reaches the trunk audio
// only, with the deaf user's number as the calling number; its answer and
// end land in the one relay record.
func TestSecondLegToTrunk(t *testing.T) {
	tr := newFakeTrunk(t)
	e := relayEnv(t, tr, nil)
	st1 := station(t, e, "3001", acd.Ready)
	other := station(t, e, "3002", acd.NotReady)
	a := caller(t, e, "5552340001", "alice")
	q := a.callQueued(t, hearing)
	ic := st1.nextCall(5 * time.Second)
	first := answerCall(t, st1, ic, q.done, "the interpreter's answer")

	if res := wait(t, other.secondLeg(hearing, q.callID), "the wrong station's second leg"); statusOf(res.err) != 403 {
		t.Fatalf("second leg from another station: %v, want 403", res.err)
	}
	res := wait(t, st1.secondLeg(hearing, q.callID), "the second leg")
	if res.err != nil {
		t.Fatalf("second leg: %v", res.err)
	}
	inv := wait(t, tr.invites, "the INVITE at the trunk")
	if u := inv.From().Address.User; u != "5552340001" {
		t.Errorf("trunk From user %q, want the deaf user's number", u)
	}
	if pai := header(inv, "P-Asserted-Identity"); !strings.Contains(pai, "5552340001") {
		t.Errorf("P-Asserted-Identity %q", pai)
	}
	if u := inv.Recipient.User; u != hearing {
		t.Errorf("trunk Request-URI user %q, want %s", u, hearing)
	}
	if body := string(inv.Body()); !strings.Contains(body, "m=video 0 ") || !strings.Contains(body, "m=audio ") {
		t.Errorf("trunk offer not audio only:\n%s", body)
	}
	if ap := mediaAddr(inv.Body()); !e.inRelay(ap) {
		t.Errorf("trunk offer's media %v is not on the relay", ap)
	}
	for _, h := range []string{"X-Z5-Relay-Call", "Proxy-Authorization"} {
		if header(inv, h) != "" {
			t.Errorf("trunk INVITE carries %s", h)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res.sess.Bye(ctx)
	first.sess.Bye(ctx)
	var rec store.Call
	waitFor(t, "relay record complete", func() bool {
		rec, _ = e.st.Call(context.Background(), q.callID)
		return !rec.EndedAt.IsZero() && !rec.ConversationEnd.IsZero()
	})
	if rec.ConversationStart.IsZero() || rec.SessionEnd.IsZero() || rec.CAID != "3001" {
		t.Errorf("relay record %+v", rec)
	}
	calls, _ := e.st.ListCalls(context.Background(), store.CallFilter{})
	for _, c := range calls {
		if c.CallID != q.callID {
			t.Errorf("a second record %q: the second leg must not make its own", c.CallID)
		}
	}
	waitFor(t, "interpreter ready after wrap-up", func() bool { return agentState(t, e, "3001").State == acd.Ready })
}

// TestEmergencyLegCarriesLocation: 911's second leg goes to the PSAP
// route with Geolocation naming a PIDF-LO body part whose civic address
// (parsed with encoding/xml) is the caller's registered location, and the
// callback number.
func TestEmergencyLegCarriesLocation(t *testing.T) {
	tr := newFakeTrunk(t)
	e := relayEnv(t, tr, nil)
	st1 := station(t, e, "4001", acd.Ready)
	a := caller(t, e, "5552340001", "alice")
	n, err := e.st.Number(context.Background(), "5552340001")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.SetLocation(context.Background(), store.Location{CustomerID: n.CustomerID, Street: "100 Congress Ave",
		City: "Austin", State: "TX", Zip: "78701", Country: "US", UpdatedBy: "test"}); err != nil {
		t.Fatal(err)
	}
	q := a.callQueued(t, "911")
	ic := st1.nextCall(5 * time.Second)
	if got := header(ic.req, "X-Z5-Location"); got != "100 Congress Ave, Austin, TX 78701" {
		t.Errorf("X-Z5-Location %q", got)
	}
	answerCall(t, st1, ic, q.done, "the 911 answer")
	if res := wait(t, st1.secondLeg("911", q.callID), "the 911 leg"); res.err != nil {
		t.Fatalf("911 leg: %v", res.err)
	}
	inv := wait(t, tr.invites, "the INVITE at the PSAP route")
	if inv.Recipient.User != "911" || inv.From().Address.User != "5552340001" {
		t.Errorf("PSAP INVITE %s from %s", inv.Recipient.String(), inv.From().Address.User)
	}
	if !strings.Contains(header(inv, "Call-Info"), "5552340001") || !strings.Contains(header(inv, "Call-Info"), "purpose=callback") {
		t.Errorf("callback Call-Info %q", header(inv, "Call-Info"))
	}
	geo := header(inv, "Geolocation")
	if !strings.HasPrefix(geo, "<cid:") || header(inv, "Geolocation-Routing") != "no" {
		t.Fatalf("Geolocation %q Geolocation-Routing %q", geo, header(inv, "Geolocation-Routing"))
	}
	cid := strings.TrimSuffix(strings.TrimPrefix(geo, "<cid:"), ">")
	mt, params, err := mime.ParseMediaType(header(inv, "Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("Content-Type %q", header(inv, "Content-Type"))
	}
	mr := multipart.NewReader(bytes.NewReader(inv.Body()), params["boundary"])
	var civic struct {
		Country string `xml:"country"`
		A1      string `xml:"A1"`
		A3      string `xml:"A3"`
		HNO     string `xml:"HNO"`
		RD      string `xml:"RD"`
		PC      string `xml:"PC"`
	}
	found := false
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		if p.Header.Get("Content-Type") != "application/pidf+xml" || p.Header.Get("Content-ID") != "<"+cid+">" {
			continue
		}
		found = true
		dec := xml.NewDecoder(bytes.NewReader(b))
		for {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			if se, ok := tok.(xml.StartElement); ok && se.Name.Space == "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr" && se.Name.Local == "civicAddress" {
				if err := dec.DecodeElement(&civic, &se); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if !found {
		t.Fatalf("no PIDF-LO part with Content-ID %s", cid)
	}
	if civic.Country != "US" || civic.A1 != "TX" || civic.A3 != "Austin" || civic.HNO != "100" || civic.RD != "Congress Ave" || civic.PC != "78701" {
		t.Errorf("civic address %+v", civic)
	}
}

// TestRelayOffIsPointToPointOnly: without [acd] a number not ours is 404,
// as before relay calls.
func TestRelayOffIsPointToPointOnly(t *testing.T) {
	e := newEnv(t, nil)
	a := caller(t, e, "5552340001", "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.invite(ctx, hearing); statusOf(err) != 404 {
		t.Fatalf("call to a number not ours without [acd]: %v, want 404", err)
	}
}

// TestLocationRequired: with locations required, a number whose customer
// has none is refused (403 Registered Location Required) for calls to our
// numbers and to hearing parties, and still reaches 911.
func TestLocationRequired(t *testing.T) {
	e := relayEnv(t, nil, func(c *Config) { c.RequireLocation = true })
	a := caller(t, e, "5552340001", "alice")
	caller(t, e, "5552340002", "bob")
	for _, target := range []string{"5552340002", hearing} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := a.invite(ctx, target)
		cancel()
		var de *sipgo.ErrDialogResponse
		if !errors.As(err, &de) || de.Res.StatusCode != 403 || !strings.Contains(de.Res.Reason, "Registered Location Required") ||
			!strings.Contains(header(de.Res, "Warning"), "z5 location set") {
			t.Errorf("call to %s without a location: %v, want 403 Registered Location Required with a Warning", target, err)
		}
	}
	q := a.callQueued(t, "911")
	q.position(t, 1, "911 queued without a location")
}

// TestRestoreRecordRoute: a 2xx whose UAS returned only the callee-facing
// one of the proxy's two Record-Routes gets the caller-facing one back
// below it; complete or foreign route sets are left alone.
func TestRestoreRecordRoute(t *testing.T) {
	e := newEnv(t, nil)
	tcp := flowRef{transport: "TCP", local: netip.MustParseAddrPort("127.0.0.1:5060")}
	tls := flowRef{transport: "TLS", local: netip.MustParseAddrPort("127.0.0.1:5061")}
	toCallee, toCaller := "<sip:127.0.0.1:5060;transport=tcp;lr>", "<sip:127.0.0.1:5061;transport=tls;lr>"
	for _, tc := range []struct {
		name     string
		rr, want []string
	}{
		{"callee-facing only", []string{toCallee}, []string{toCallee, toCaller}},
		{"a carrier proxy above ours", []string{"<sip:198.18.9.5;lr>", toCallee}, []string{"<sip:198.18.9.5;lr>", toCallee, toCaller}},
		{"both returned", []string{toCallee, toCaller}, []string{toCallee, toCaller}},
		{"none", nil, nil},
	} {
		res := sipmsg.NewResponse(200, "OK")
		for _, v := range tc.rr {
			res.AppendHeader(sipmsg.NewHeader("Record-Route", v))
		}
		e.srv.restoreRecordRoute(res, tcp, tls)
		var got []string
		for _, h := range res.GetHeaders("Record-Route") {
			got = append(got, h.Value())
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: Record-Route %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestTrunkCredentials: the answer to a gateway's challenge is RFC 2617's
// worked example, and a 407 is answered in Proxy-Authorization.
func TestTrunkCredentials(t *testing.T) {
	res := sipmsg.NewResponse(401, "Unauthorized")
	res.AppendHeader(sipmsg.NewHeader("WWW-Authenticate", `Digest realm="testrealm@host.com", qop="auth,auth-int", `+
		`nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"`))
	name, v, err := trunkCredentials(res, "GET", "/dir/index.html", "Mufasa", "Circle Of Life", "0a4f113b")
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseDigest(v)
	if name != "Authorization" || err != nil || c.Response != "6629fae49393a05397450978507c4ef1" || c.QOP != "auth" ||
		c.NC != "00000001" || c.Opaque != "5ccc069c403ebaf9f0171e9517f40e41" {
		t.Errorf("credentials %s: %s (%+v, %v)", name, v, c, err)
	}
	res = sipmsg.NewResponse(407, "Proxy Authentication Required")
	res.AppendHeader(sipmsg.NewHeader("Proxy-Authenticate", `Digest realm="carrier", nonce="n", algorithm=SHA-256`))
	if name, _, err := trunkCredentials(res, "INVITE", "sip:911@198.18.9.2", "u", "p", "c"); name != "Proxy-Authorization" || err != nil {
		t.Errorf("407: %s %v", name, err)
	}
	if _, _, err := trunkCredentials(sipmsg.NewResponse(407, "x"), "INVITE", "sip:x", "u", "p", "c"); err == nil {
		t.Error("a 407 without a challenge answered")
	}
}

// TestTrunkDigest: a gateway that challenges gets the leg again with
// credentials for [trunk] username/password; the station sees only the
// answer.
func TestTrunkDigest(t *testing.T) {
	tr := newFakeTrunkOpts(t, true)
	e := relayEnv(t, tr, func(c *Config) { c.Trunk.Username, c.Trunk.Password = "z5", "trunk-secret" })
	st1 := station(t, e, "5001", acd.Ready)
	a := caller(t, e, "5552340001", "alice")
	q := a.callQueued(t, hearing)
	ic := st1.nextCall(5 * time.Second)
	answerCall(t, st1, ic, q.done, "the interpreter's answer")
	res := wait(t, st1.secondLeg(hearing, q.callID), "the second leg")
	if res.err != nil {
		t.Fatalf("second leg through a challenging trunk: %v", res.err)
	}
	wait(t, tr.challenged, "the challenge")
	inv := wait(t, tr.invites, "the authorized INVITE")
	c, err := parseDigest(header(inv, "Proxy-Authorization"))
	if err != nil {
		t.Fatal(err)
	}
	h, _ := digestHash("MD5")
	want := digestResponse(h, hexHash(h, "z5", "carrier", "trunk-secret"), "n0nce", c.NC, c.CNonce, "auth", "INVITE", c.URI)
	if c.Username != "z5" || c.Realm != "carrier" || c.Response != want || c.URI != inv.Recipient.String() {
		t.Errorf("Proxy-Authorization %+v, want response %s for %s", c, want, inv.Recipient.String())
	}
}

// TestStationLostMidCall: the interpreter's connection closes during a
// relay call: the caller gets a BYE saying why, the record ends as
// interpreter-lost, and the interpreter is not offered calls until it
// signs in again.
func TestStationLostMidCall(t *testing.T) {
	e := relayEnv(t, nil, nil)
	st1 := station(t, e, "6001", acd.Ready)
	a := caller(t, e, "5552340001", "alice")
	q := a.callQueued(t, hearing)
	ic := st1.nextCall(5 * time.Second)
	answerCall(t, st1, ic, q.done, "the interpreter's answer")
	st1.ua.Close() // the station vanishes: its connection closes
	bye := wait(t, a.byes, "the caller's BYE")
	if r := header(bye, "Reason"); !strings.Contains(r, "Interpreter disconnected") {
		t.Errorf("BYE Reason %q", r)
	}
	recordEnds(t, e.st, q.callID, "interpreter-lost", 200)
	waitFor(t, "interpreter not ready", func() bool { return agentState(t, e, "6001").State == acd.NotReady })
}
