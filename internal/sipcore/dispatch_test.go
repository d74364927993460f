package sipcore

import (
	"strings"
	"testing"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/google/go-cmp/cmp"
)

// testLocal is a node named mcs1.mcs.z5.test in domain mcs.z5.test at
// 198.18.0.1, whose Vias carry branches starting z9hG4bKZ5.
var testLocal = Local{
	OurHost: func(h string) bool {
		return h == "mcs.z5.test" || h == "mcs1.mcs.z5.test" || h == "198.18.0.1"
	},
	OwnVia: func(v *sipmsg.ViaHeader) bool {
		b, _ := v.Params.Get("branch")
		return v.Host == "198.18.0.1" && strings.HasPrefix(b, "z9hG4bKZ5")
	},
}

// request is raw SIP for a request line and extra headers.
func request(t *testing.T, line string, extra ...string) *sipmsg.Request {
	method, _, _ := strings.Cut(line, " ")
	lines := []string{
		line,
		"Via: SIP/2.0/TCP 198.18.0.7:5060;branch=z9hG4bK776asdhds",
		"From: <sip:5552340001@mcs.z5.test>;tag=a73kszlfl",
		"To: <sip:5552340002@mcs.z5.test>",
		"Call-ID: c-1@198.18.0.7",
		"CSeq: 1 " + method,
	}
	hasMF := false
	for _, e := range extra {
		hasMF = hasMF || strings.HasPrefix(e, "Max-Forwards")
	}
	if !hasMF {
		lines = append(lines, "Max-Forwards: 70")
	}
	return parseRequest(t, append(append(lines, extra...), "Content-Length: 0")...)
}

func TestRoute(t *testing.T) {
	allow := "Allow: INVITE, ACK, CANCEL, BYE, REGISTER, OPTIONS, INFO, UPDATE, PRACK, MESSAGE, NOTIFY, REFER"
	for _, tc := range []struct {
		name    string
		req     *sipmsg.Request
		handler Handler
		want    outcome
	}{
		{"INVITE to a number", request(t, "INVITE sip:5552340002@mcs.z5.test SIP/2.0"), Invite, outcome{}},
		{"INVITE to a dialled +1 number", request(t, "INVITE sip:+15552340002@mcs1.mcs.z5.test;user=phone SIP/2.0"), Invite, outcome{}},
		{"REGISTER", request(t, "REGISTER sip:mcs.z5.test SIP/2.0"), Registrar, outcome{}},
		{"REGISTER with no hops left still terminates here", request(t, "REGISTER sip:mcs.z5.test SIP/2.0", "Max-Forwards: 0"), Registrar, outcome{}},
		{"OPTIONS to the server", request(t, "OPTIONS sip:198.18.0.1 SIP/2.0", "Max-Forwards: 0"), Options, outcome{}},
		{"OPTIONS to a number", request(t, "OPTIONS sip:5552340002@mcs.z5.test SIP/2.0"), ForwardSimple, outcome{}},
		{"MESSAGE to a number", request(t, "MESSAGE sip:5552340002@mcs.z5.test SIP/2.0"), ForwardSimple, outcome{}},
		{"BYE in a dialog", request(t, "BYE sip:5552340002@198.18.0.9 SIP/2.0", "To: <sip:5552340002@mcs.z5.test>;tag=b1"), InDialog, outcome{}},
		{"ACK in a dialog", request(t, "ACK sip:5552340002@198.18.0.9 SIP/2.0", "To: <sip:5552340002@mcs.z5.test>;tag=b1"), InDialogAck, outcome{}},
		{"ACK outside a dialog", request(t, "ACK sip:5552340002@mcs.z5.test SIP/2.0"), Ignore, outcome{}},
		{"CANCEL matching nothing", request(t, "CANCEL sip:5552340002@mcs.z5.test SIP/2.0"), Refuse,
			outcome{Code: 481, Reason: "Call/Transaction Does Not Exist"}},
		{"Proxy-Require unknown", request(t, "INVITE sip:5552340002@mcs.z5.test SIP/2.0", "Proxy-Require: foo, outbound, Foo, bar"), Refuse,
			outcome{Code: 420, Reason: "Bad Extension", Headers: []string{"Unsupported: foo, bar"}}},
		{"tel URI", request(t, "INVITE tel:+15552340002 SIP/2.0"), Refuse,
			outcome{Code: 416, Reason: "Unsupported URI Scheme"}},
		{"our own Via: a loop", request(t, "INVITE sip:5552340002@mcs.z5.test SIP/2.0", "Via: SIP/2.0/TCP 198.18.0.1:5060;branch=z9hG4bKZ5abc"), Refuse,
			outcome{Code: 482, Reason: "Loop Detected"}},
		{"no hops left", request(t, "INVITE sip:5552340002@mcs.z5.test SIP/2.0", "Max-Forwards: 0"), Refuse,
			outcome{Code: 483, Reason: "Too Many Hops"}},
		{"unknown method", request(t, "FOO sip:5552340002@mcs.z5.test SIP/2.0"), Refuse,
			outcome{Code: 501, Reason: "Not Implemented", Headers: []string{allow}}},
		{"another domain", request(t, "INVITE sip:5552340002@example.com SIP/2.0"), Refuse,
			outcome{Code: 403, Reason: "Forbidden (Relaying Denied)"}},
		{"BYE outside a dialog", request(t, "BYE sip:5552340002@mcs.z5.test SIP/2.0"), Refuse,
			outcome{Code: 481, Reason: "Call/Transaction Does Not Exist"}},
		{"SUBSCRIBE", request(t, "SUBSCRIBE sip:5552340002@mcs.z5.test SIP/2.0"), Refuse,
			outcome{Code: 405, Reason: "Method Not Allowed", Headers: []string{allow}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, r := Route(tc.req, testLocal)
			if h != tc.handler {
				t.Errorf("handler %d, want %d", h, tc.handler)
			}
			if diff := cmp.Diff(tc.want, summarize(nil, r)); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestTargetNumber(t *testing.T) {
	for in, want := range map[string]string{
		"5552340002": "5552340002", "+15552340002": "5552340002", "1-555-234-0002": "5552340002",
		"5552340002;user=phone": "5552340002", "alice": "", "123": "", "5551230002": "",
		"ca-1001": "ca-1001", "ca-1001;user=phone": "ca-1001", "ca-": "", "CA-1001": "", "ca-12345678901234567": "",
	} {
		got, ok := TargetNumber(in)
		if !ok {
			got = ""
		}
		if got != want {
			t.Errorf("TargetNumber(%q) = %q, want %q", in, got, want)
		}
	}
}
