package sipserver

import (
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// requestCases are requests and the answer each must get, in the
// protocol's own notation. {addr} is the server's address, {tr} the
// transport; Content-Length is given where the case needs it.
var requestCases = []struct {
	name   string
	text   string
	code   int    // 0: no answer at all
	reason string // expected reason phrase, when it matters
	header string // a header the answer must carry ("Name: value")
	ends   bool   // TCP: the stream cannot be framed past it; the flow ends
}{
	{
		name: "options to the server",
		text: sipText(
			"OPTIONS sip:{addr} SIP/2.0",
			"Via: SIP/2.0/{tr} 127.0.0.1:9;branch=z9hG4bKopt1",
			"Max-Forwards: 70",
			"From: <sip:probe@127.0.0.1>;tag=a1",
			"To: <sip:{addr}>",
			"Call-ID: opt1",
			"CSeq: 1 OPTIONS",
			"Content-Length: 0"),
		code:   200,
		header: "Supported: outbound",
	},
	{
		name: "options to the domain with max-forwards 0 is still ours",
		text: sipText(
			"OPTIONS sip:mcs.z5.test SIP/2.0",
			"Via: SIP/2.0/{tr} 127.0.0.1:9;branch=z9hG4bKopt2",
			"Max-Forwards: 0",
			"From: <sip:probe@127.0.0.1>;tag=a1",
			"To: <sip:mcs.z5.test>",
			"Call-ID: opt2",
			"CSeq: 1 OPTIONS",
			"Content-Length: 0"),
		code:   200,
		header: "Accept: application/sdp",
	},
	{
		name: "missing call-id",
		text: sipText(
			"OPTIONS sip:{addr} SIP/2.0",
			"Via: SIP/2.0/{tr} 127.0.0.1:9;branch=z9hG4bKnocid",
			"Max-Forwards: 70",
			"From: <sip:probe@127.0.0.1>;tag=a1",
			"To: <sip:{addr}>",
			"CSeq: 1 OPTIONS",
			"Content-Length: 0"),
		code:   400,
		reason: "Missing Call-ID Header",
	},
	{
		name: "cseq method differs from the request's",
		text: sipText(
			"OPTIONS sip:{addr} SIP/2.0",
			"Via: SIP/2.0/{tr} 127.0.0.1:9;branch=z9hG4bKcseq",
			"Max-Forwards: 70",
			"From: <sip:probe@127.0.0.1>;tag=a1",
			"To: <sip:{addr}>",
			"Call-ID: cseq1",
			"CSeq: 1 INVITE",
			"Content-Length: 0"),
		code:   400,
		reason: "CSeq Method Does Not Match",
	},
	{
		name: "duplicate call-id",
		text: sipText(
			"OPTIONS sip:{addr} SIP/2.0",
			"Via: SIP/2.0/{tr} 127.0.0.1:9;branch=z9hG4bKdup",
			"Max-Forwards: 70",
			"From: <sip:probe@127.0.0.1>;tag=a1",
			"To: <sip:{addr}>",
			"Call-ID: dup1",
			"i: dup2",
			"CSeq: 1 OPTIONS",
			"Content-Length: 0"),
		code:   400,
		reason: "Duplicate Call-ID Header",
	},
	{
		name: "unquoted display name with a comma",
		text: sipText(
			"OPTIONS sip:{addr} SIP/2.0",
			"Via: SIP/2.0/{tr} 127.0.0.1:9;branch=z9hG4bKdn",
			"Max-Forwards: 70",
			"From: Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
			"To: <sip:{addr}>",
			"Call-ID: dn1",
			"CSeq: 1 OPTIONS",
			"Content-Length: 0"),
		code:   400,
		reason: "Malformed From Header",
	},
	{
		name: "unterminated quote in To",
		text: sipText(
			"OPTIONS sip:{addr} SIP/2.0",
			"Via: SIP/2.0/{tr} 127.0.0.1:9;branch=z9hG4bKquot",
			"Max-Forwards: 70",
			"From: <sip:probe@127.0.0.1>;tag=a1",
			`To: "Mr. J. User <sip:j.user@example.com>`,
			"Call-ID: quot1",
			"CSeq: 1 OPTIONS",
			"Content-Length: 0"),
		code:   400,
		reason: "Malformed To Header",
	},
	{
		name: "another sip version",
		text: sipText(
			"OPTIONS sip:{addr} SIP/7.0",
			"Via: SIP/7.0/{tr} 127.0.0.1:9;branch=z9hG4bKvers",
			"Max-Forwards: 70",
			"From: <sip:probe@127.0.0.1>;tag=a1",
			"To: <sip:{addr}>",
			"Call-ID: vers1",
			"CSeq: 1 OPTIONS",
			"Content-Length: 0"),
		code: 505,
	},
	{
		name: "spaces in the request line",
		text: sipText(
			"OPTIONS  sip:{addr}  SIP/2.0",
			"Via: SIP/2.0/{tr} 127.0.0.1:9;branch=z9hG4bKlws",
			"Max-Forwards: 70",
			"From: <sip:probe@127.0.0.1>;tag=a1",
			"To: <sip:{addr}>",
			"Call-ID: lws1",
			"CSeq: 1 OPTIONS",
			"Content-Length: 0"),
		code:   400,
		reason: "Malformed Request-Line",
	},
	{
		name: "unknown scheme",
		text: sipText(
			"OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0",
			"Via: SIP/2.0/{tr} 127.0.0.1:9;branch=z9hG4bKscheme",
			"Max-Forwards: 70",
			"From: <sip:probe@127.0.0.1>;tag=a1",
			"To: <sip:{addr}>",
			"Call-ID: scheme1",
			"CSeq: 1 OPTIONS",
			"Content-Length: 0"),
		code: 416,
	},
	{
		name: "unknown method",
		text: sipText(
			"FROBNICATE sip:{addr} SIP/2.0",
			"Via: SIP/2.0/{tr} 127.0.0.1:9;branch=z9hG4bKfrob",
			"Max-Forwards: 70",
			"From: <sip:probe@127.0.0.1>;tag=a1",
			"To: <sip:{addr}>",
			"Call-ID: frob1",
			"CSeq: 1 FROBNICATE",
			"Content-Length: 0"),
		code: 501,
	},
	{
		name: "subscribe is known but not served",
		text: sipText(
			"SUBSCRIBE sip:5552340002@mcs.z5.test SIP/2.0",
			"Via: SIP/2.0/{tr} 127.0.0.1:9;branch=z9hG4bKsub",
			"Max-Forwards: 70",
			"From: <sip:5552340001@mcs.z5.test>;tag=a1",
			"To: <sip:5552340002@mcs.z5.test>",
			"Call-ID: sub1",
			"CSeq: 1 SUBSCRIBE",
			"Event: presence",
			"Content-Length: 0"),
		code:   405,
		header: "Allow: INVITE, ACK, CANCEL, BYE, REGISTER, OPTIONS, INFO, UPDATE, PRACK, MESSAGE, NOTIFY, REFER",
	},
	{
		name: "unsupported require",
		text: sipText(
			"OPTIONS sip:{addr} SIP/2.0",
			"Via: SIP/2.0/{tr} 127.0.0.1:9;branch=z9hG4bKreq",
			"Max-Forwards: 70",
			"From: <sip:probe@127.0.0.1>;tag=a1",
			"To: <sip:{addr}>",
			"Call-ID: req1",
			"CSeq: 1 OPTIONS",
			"Require: nothingyet, outbound",
			"Content-Length: 0"),
		code:   420,
		header: "Unsupported: nothingyet",
	},
	{
		name: "unsupported proxy-require",
		text: sipText(
			"INVITE sip:5552340002@mcs.z5.test SIP/2.0",
			"Via: SIP/2.0/{tr} 127.0.0.1:9;branch=z9hG4bKpreq",
			"Max-Forwards: 70",
			"From: <sip:5552340001@mcs.z5.test>;tag=a1",
			"To: <sip:5552340002@mcs.z5.test>",
			"Call-ID: preq1",
			"CSeq: 1 INVITE",
			"Proxy-Require: foo",
			"Content-Length: 0"),
		code:   420,
		header: "Unsupported: foo",
	},
	{
		name: "no hops left",
		text: sipText(
			"INVITE sip:5552340002@mcs.z5.test SIP/2.0",
			"Via: SIP/2.0/{tr} 127.0.0.1:9;branch=z9hG4bKmf0",
			"Max-Forwards: 0",
			"From: <sip:5552340001@mcs.z5.test>;tag=a1",
			"To: <sip:5552340002@mcs.z5.test>",
			"Call-ID: mf0",
			"CSeq: 1 INVITE",
			"Content-Length: 0"),
		code: 483,
	},
	{
		name: "another domain is not relayed",
		text: sipText(
			"INVITE sip:bob@example.org SIP/2.0",
			"Via: SIP/2.0/{tr} 127.0.0.1:9;branch=z9hG4bKrelay",
			"Max-Forwards: 70",
			"From: <sip:5552340001@mcs.z5.test>;tag=a1",
			"To: <sip:bob@example.org>",
			"Call-ID: relay1",
			"CSeq: 1 INVITE",
			"Content-Length: 0"),
		code:   403,
		reason: "Forbidden (Relaying Denied)",
	},
	{
		name: "invite from an unknown source is challenged",
		text: sipText(
			"INVITE sip:5552340002@mcs.z5.test SIP/2.0",
			"Via: SIP/2.0/{tr} 127.0.0.1:9;branch=z9hG4bKauth",
			"Max-Forwards: 70",
			"From: <sip:5552340001@mcs.z5.test>;tag=a1",
			"To: <sip:5552340002@mcs.z5.test>",
			"Call-ID: auth1",
			"CSeq: 1 INVITE",
			"Content-Length: 0"),
		code:   407,
		header: "Proxy-Authenticate",
	},
	{
		name: "a request that has been here before is a loop",
		text: sipText(
			"OPTIONS sip:5552340002@mcs.z5.test SIP/2.0",
			"Via: SIP/2.0/{tr} 127.0.0.1:9;branch=z9hG4bKloop",
			"Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKZ5deadbeef",
			"Max-Forwards: 69",
			"From: <sip:5552340001@mcs.z5.test>;tag=a1",
			"To: <sip:5552340002@mcs.z5.test>",
			"Call-ID: loop1",
			"CSeq: 1 OPTIONS",
			"Content-Length: 0"),
		code: 482,
	},
	{
		name: "bye outside any dialog",
		text: sipText(
			"BYE sip:5552340002@mcs.z5.test SIP/2.0",
			"Via: SIP/2.0/{tr} 127.0.0.1:9;branch=z9hG4bKbye",
			"Max-Forwards: 70",
			"From: <sip:5552340001@mcs.z5.test>;tag=a1",
			"To: <sip:5552340002@mcs.z5.test>;tag=b1",
			"Call-ID: nosuchcall",
			"CSeq: 2 BYE",
			"Content-Length: 0"),
		code: 481,
	},
	{
		name: "a stray response is never answered",
		text: sipText(
			"SIP/2.0 200 OK",
			"Via: SIP/2.0/{tr} 127.0.0.1:9;branch=z9hG4bKstray",
			"From: <sip:probe@127.0.0.1>;tag=a1",
			"To: <sip:{addr}>;tag=b1",
			"Call-ID: stray1",
			"CSeq: 1 OPTIONS",
			"Content-Length: 0"),
		code: 0,
	},
	{
		name: "an unparseable message is dropped",
		text: "HELLO THERE\r\n\r\n",
		code: 0,
		ends: true,
	},
}

func expand(text, addr, tr string) string {
	return strings.NewReplacer("{addr}", addr, "{tr}", tr).Replace(text)
}

func checkAnswer(t *testing.T, m sipmsg.Message, code int, reason, header string) {
	t.Helper()
	if code == 0 {
		if m != nil {
			t.Fatalf("got an answer, want none:\n%s", m)
		}
		return
	}
	res, ok := m.(*sipmsg.Response)
	if !ok {
		t.Fatalf("got %v, want a %d response", m, code)
	}
	if res.StatusCode != code {
		t.Fatalf("got %d %s, want %d", res.StatusCode, res.Reason, code)
	}
	if reason != "" && res.Reason != reason {
		t.Errorf("reason %q, want %q", res.Reason, reason)
	}
	if sv := res.GetHeader("Server"); sv == nil || sv.Value() != "Z5-MCS/test" {
		t.Errorf("Server header %v, want Z5-MCS/test", sv)
	}
	if header != "" {
		name, value, _ := strings.Cut(header, ": ")
		h := res.GetHeader(name)
		if h == nil || value != "" && h.Value() != value {
			t.Errorf("header %s = %v, want %q", name, h, value)
		}
	}
}

func TestRequestsOverUDP(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range requestCases {
		t.Run(tc.name, func(t *testing.T) {
			wait := 2 * time.Second
			if tc.code == 0 {
				wait = 300 * time.Millisecond
			}
			m := udpExchange(t, e.addr, []byte(expand(tc.text, e.addr.String(), "UDP")), wait)
			checkAnswer(t, m, tc.code, tc.reason, tc.header)
		})
	}
}

func TestRequestsOverTCP(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range requestCases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialTCP(t, e.addr)
			c.send(t, expand(tc.text, e.addr.String(), "TCP"))
			wait := 2 * time.Second
			if tc.code == 0 {
				wait = 300 * time.Millisecond
			}
			m, err := c.read(wait)
			if err != nil && tc.code != 0 {
				t.Fatalf("read: %v", err)
			}
			checkAnswer(t, m, tc.code, tc.reason, tc.header)
			// The connection survives anything that could be framed;
			// after the rest, a new one works.
			if tc.ends {
				c = dialTCP(t, e.addr)
			}
			if err == nil {
				c.send(t, optionsText(e.addr, "TCP"))
				m, err := c.read(2 * time.Second)
				if err != nil || status(m) != 200 {
					t.Fatalf("OPTIONS after the case: %v %v", m, err)
				}
			}
		})
	}
}
