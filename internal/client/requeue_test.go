package client

import (
	"testing"

	sipmsg "github.com/emiago/sipgo/sip"
)

// TestRequeueOf: a BYE asks the caller to call again only with a token;
// the notice is the Reason's text, or the default words.
func TestRequeueOf(t *testing.T) {
	for _, tc := range []struct {
		name          string
		headers       [][2]string
		ok            bool
		token, notice string
	}{
		{"plain BYE", nil, false, "", ""},
		{"reason without token", [][2]string{{"Reason", `SIP;cause=480;text="Interpreter disconnected; please call again"`}}, false, "", ""},
		{"empty token", [][2]string{{"X-Z5-Requeue", " "}}, false, "", ""},
		{"token and reason", [][2]string{{"Reason", `SIP;cause=480;text="Your interpreter was disconnected; reconnecting"`}, {"X-Z5-Requeue", "ab12"}},
			true, "ab12", "Your interpreter was disconnected; reconnecting"},
		{"token alone", [][2]string{{"X-Z5-Requeue", "ab12"}}, true, "ab12", defaultRequeueNotice},
	} {
		req := sipmsg.NewRequest(sipmsg.BYE, sipmsg.Uri{Scheme: "sip", User: "5552340001", Host: "example.test"})
		for _, h := range tc.headers {
			req.AppendHeader(sipmsg.NewHeader(h[0], h[1]))
		}
		ask, ok := requeueOf(req)
		if ok != tc.ok || ask.token != tc.token || (ok && ask.notice != tc.notice) {
			t.Errorf("%s: requeueOf = %+v %v, want %q %q %v", tc.name, ask, ok, tc.token, tc.notice, tc.ok)
		}
	}
}
