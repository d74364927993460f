package sipserver

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/acd"
	"github.com/z5vrs/z5/internal/store"
)

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
	if res := wait(t, st1.secondLeg("ca-3002", q.callID), "a second leg to another station"); statusOf(res.err) != 404 {
		t.Fatalf("second leg to a station: %v, want 404", res.err)
	}
	select {
	case ic := <-other.calls:
		t.Fatalf("a second leg reached another station: %v", ic.req)
	default:
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
