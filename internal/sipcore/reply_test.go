package sipcore

import (
	"regexp"
	"testing"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/google/go-cmp/cmp"
)

// TestReply: a REGISTER's response is the one sipgo's
// NewResponseFromRequest builds, but for the To tag's value, and the
// request is left as it was.
func TestReply(t *testing.T) {
	tag := regexp.MustCompile(`;tag=[0-9A-Za-z-]+`)
	for _, tc := range []struct {
		name    string
		code    int
		via, to string // replacing the request's
		extra   []string
	}{
		{name: "challenge", code: 401},
		{name: "ok", code: 200},
		{name: "trying keeps no tag and copies Timestamp", code: 100, extra: []string{"Timestamp: 54"}},
		{name: "rport filled", code: 200, via: "Via: SIP/2.0/UDP 198.18.0.9:5070;branch=z9hG4bKb2;rport"},
		{name: "rport of a lower via left", code: 200, extra: []string{"Via: SIP/2.0/UDP 198.18.0.9:5070;branch=z9hG4bKb2;rport"}},
		{name: "to tag kept", code: 200, to: "To: <sip:5552340001@mcs.z5.test>;tag=given;x=1"},
		{name: "to params kept", code: 200, to: "t: <sip:5552340001@mcs.z5.test>;x=1"},
		{name: "via lines, compact", code: 403, via: "v: SIP/2.0/TCP 198.18.0.9;branch=z9hG4bKc3, SIP/2.0/TCP 198.18.0.11;branch=z9hG4bKe5",
			extra: []string{"Via: SIP/2.0/TCP 198.18.0.10;branch=z9hG4bKd4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines := []string{
				"REGISTER sip:mcs.z5.test SIP/2.0",
				"Via: SIP/2.0/TCP 198.18.0.7:5060;branch=z9hG4bK776asdhds",
				"Max-Forwards: 70",
				`From: "A" <sip:5552340001@mcs.z5.test>;tag=a73kszlfl`,
				"To: <sip:5552340001@mcs.z5.test>",
				"Call-ID: reg-1@198.18.0.7",
				"CSeq: 1 REGISTER",
			}
			if tc.via != "" {
				lines[1] = tc.via
			}
			if tc.to != "" {
				lines[4] = tc.to
			}
			lines = append(lines, tc.extra...)
			req := parseRequest(t, append(lines, "Content-Length: 0")...)
			req.SetSource("198.18.0.9:5070")
			req.SetTransport("TCP")
			before := req.String()
			want := sipmsg.NewResponseFromRequest(req, tc.code, "Reason", nil)
			got := Reply(req, tc.code, "Reason")
			if diff := cmp.Diff(tag.ReplaceAllString(want.String(), ";tag=T"), tag.ReplaceAllString(got.String(), ";tag=T")); diff != "" {
				t.Errorf("(-sipgo +Reply)\n%s", diff)
			}
			if got.Destination() != "198.18.0.9:5070" || got.Transport() != "TCP" {
				t.Errorf("sent to %s over %s", got.Destination(), got.Transport())
			}
			if req.String() != before {
				t.Errorf("request changed:\n%s\nwas\n%s", req, before)
			}
			if tc.code != 100 && !got.To().Params.Has("tag") {
				t.Error("no To tag")
			}
		})
	}
}

// TestReplyTag: each response to a request without a To tag gets its
// own, in hex: tags made of letters now and then spelled "CSeq", which
// SIPp read as the header.
func TestReplyTag(t *testing.T) {
	req := register(t, "1")
	hex := regexp.MustCompile(`^[0-9a-f]{1,16}$`)
	seen := map[string]bool{}
	for range 1000 {
		tag, _ := Reply(req, 401, "Unauthorized").To().Params.Get("tag")
		if !hex.MatchString(tag) || seen[tag] {
			t.Fatalf("tag %q: not hex, or seen before", tag)
		}
		seen[tag] = true
	}
}
