package algprobe

import (
	"strconv"
	"strings"
	"testing"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/google/go-cmp/cmp"
)

// sipText turns a readable message (LF, leading tabs, a blank line before
// the body) into wire form with a Content-Length that matches the body.
func sipText(s string) []byte {
	head, body, _ := strings.Cut(strings.TrimSpace(s), "\n\n")
	var lines []string
	for _, l := range strings.Split(head, "\n") {
		lines = append(lines, strings.TrimSpace(l))
	}
	b := ""
	if body != "" {
		var bl []string
		for _, l := range strings.Split(body, "\n") {
			bl = append(bl, strings.TrimSpace(l))
		}
		b = strings.Join(bl, "\r\n") + "\r\n"
	}
	lines = append(lines, "Content-Length: "+strconv.Itoa(len(b)))
	return []byte(strings.Join(lines, "\r\n") + "\r\n\r\n" + b)
}

const probeOptions = `
	OPTIONS sip:198.18.1.21:5060;transport=tcp SIP/2.0
	Via: SIP/2.0/TCP 10.0.0.5:51000;branch=z9hG4bKabc;rport
	Max-Forwards: 70
	From: <sip:z5-check@mcs.z5.test>;tag=1
	To: <sip:198.18.1.21:5060>
	Call-ID: alg-1
	CSeq: 1 OPTIONS
	Contact: <sip:z5-check@10.0.0.5:51000;transport=tcp>
	X-Z5-Probe: alg
	Content-Type: application/sdp

	v=0
	o=z5-check 1 1 IN IP4 10.0.0.5
	s=z5 check
	c=IN IP4 10.0.0.5
	t=0 0
	m=audio 49170 RTP/AVP 0
	c=IN IP4 10.1.2.3
`

func TestEchoReply(t *testing.T) {
	body := "v=0\r\no=z5-check 1 1 IN IP4 10.0.0.5\r\ns=z5 check\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\nc=IN IP4 10.1.2.3\r\n"
	echoed := []string{
		"X-Z5-Echo-Via: SIP/2.0/TCP 10.0.0.5:51000;branch=z9hG4bKabc;rport",
		"X-Z5-Echo-Contact: <sip:z5-check@10.0.0.5:51000;transport=tcp>",
		"X-Z5-Echo-Length: " + strconv.Itoa(len(body)),
		"Content-Type: application/x-z5-echo",
	}
	for _, tc := range []struct {
		name      string
		msg       string
		transport string
		want      []string // "Name: value" of the headers, nil: no echo
		body      string
	}{
		{"probe over tcp", probeOptions, "TCP", echoed, body},
		{"probe over tls", probeOptions, "TLS", echoed, body},
		{"over udp: never reflected", probeOptions, "UDP", nil, ""},
		{"no probe header", strings.Replace(probeOptions, "X-Z5-Probe: alg", "X-Other: 1", 1), "TCP", nil, ""},
		{"other probe value", strings.Replace(probeOptions, "X-Z5-Probe: alg", "X-Z5-Probe: rtp", 1), "TCP", nil, ""},
		{"not OPTIONS", strings.Replace(strings.Replace(probeOptions, "OPTIONS sip", "MESSAGE sip", 1), "1 OPTIONS", "1 MESSAGE", 1), "TCP", nil, ""},
		{"no body, no contact", `
			OPTIONS sip:198.18.1.21 SIP/2.0
			Via: SIP/2.0/TCP 10.0.0.5:51000;branch=z9hG4bKabc
			From: <sip:a@b>;tag=1
			To: <sip:198.18.1.21>
			Call-ID: alg-2
			CSeq: 1 OPTIONS
			x-z5-probe: ALG`, "TCP", []string{
			"X-Z5-Echo-Via: SIP/2.0/TCP 10.0.0.5:51000;branch=z9hG4bKabc",
			"X-Z5-Echo-Length: 0",
		}, ""},
		{"body over the cap", strings.Replace(probeOptions, "t=0 0", "a="+strings.Repeat("x", MaxEchoBody)+"\n\tt=0 0", 1), "TCP", nil, ""},
		{"via over the cap", strings.Replace(probeOptions, "rport", "rport;x="+strings.Repeat("x", MaxEchoHeader), 1), "TCP", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := sipmsg.ParseMessage(sipText(tc.msg))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			req := m.(*sipmsg.Request)
			req.SetTransport(tc.transport)
			hs, b, ok := EchoReply(req)
			if ok != (tc.want != nil) {
				t.Fatalf("ok = %v", ok)
			}
			var got []string
			for _, h := range hs {
				got = append(got, h.Name()+": "+h.Value())
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("headers (-want +got):\n%s", d)
			}
			if string(b) != tc.body {
				t.Errorf("body %q, want %q", b, tc.body)
			}
		})
	}
	if _, _, ok := EchoReply(nil); ok {
		t.Error("nil request echoed")
	}
}

func TestHeaderSafe(t *testing.T) {
	for v, want := range map[string]bool{
		"SIP/2.0/TCP 10.0.0.5:5060":          true,
		"":                                   false,
		"a\r\nX-Injected: 1":                 false,
		"tab\tinside":                        false,
		"del\x7f":                            false,
		strings.Repeat("a", MaxEchoHeader):   true,
		strings.Repeat("a", MaxEchoHeader+1): false,
	} {
		if got := headerSafe(v); got != want {
			t.Errorf("headerSafe(%.20q) = %v, want %v", v, got, want)
		}
	}
}
