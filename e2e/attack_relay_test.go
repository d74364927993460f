package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// inviteSDP is an INVITE from number (registered on the connection from
// src) to callee, offering streams m-lines on src.
func inviteSDP(number, callee, callID, src string, streams int) string {
	kinds := []string{"audio", "video", "text", "audio"}
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n", src, src)
	for i := range streams {
		fmt.Fprintf(&b, "m=%s %d RTP/AVP 0\r\n", kinds[i%len(kinds)], 30000+2*i)
	}
	body := b.String()
	return strings.Join([]string{
		"INVITE sip:" + callee + "@mcs.z5.test SIP/2.0",
		"Via: SIP/2.0/TCP " + src + ":5999;branch=z9hG4bK" + callID,
		"Max-Forwards: 70",
		"From: <sip:" + number + "@mcs.z5.test>;tag=f" + callID,
		"To: <sip:" + callee + "@mcs.z5.test>",
		"Call-ID: " + callID,
		"CSeq: 1 INVITE",
		"Contact: <sip:" + number + "@" + src + ":5999;transport=tcp>",
		"Content-Type: application/sdp",
		fmt.Sprintf("Content-Length: %d", len(body)),
	}, "\r\n") + "\r\n\r\n" + body
}

// firstResponse is the first response to an INVITE: the proxy sends 100
// Trying only once the relay anchored the media, else a final refusal.
func firstResponse(t *testing.T, c *sipConn) *sipmsg.Response {
	t.Helper()
	return c.response(5 * time.Second)
}

// TestRelayPortQuotaOverSIP (hole 5): one customer rings calls with the
// most streams allowed until the relay refuses; it holds no more ports
// than relay.max_ports_per_customer, an offer with more m-lines than
// relay.max_streams is 488, and another customer's call is still
// anchored.
func TestRelayPortQuotaOverSIP(t *testing.T) {
	const quota = 64 // four calls of four streams
	s := &stack{ip: loopbackIP(t), dir: t.TempDir()}
	s.cfg = stackConfig(t, s.dir, s.ip, fmt.Sprintf("\n[relay]\nmax_ports_per_customer = %d\n", quota))
	s.start(t)
	s.sipDevice(t, "mallory", "4155550201", "mal-a", "mal-a-sip-pw")
	s.admin(t, "", "number", "add", "mallory", "4155550202")
	s.admin(t, "mal-b-sip-pw\n", "device", "add", "4155550202", "--kind", "sip", "--user", "mal-b", "--password-stdin")
	s.sipDevice(t, "grace", "4155550301", "grace-a", "grace-a-sip-pw")
	s.admin(t, "", "number", "add", "grace", "4155550302")
	s.admin(t, "grace-b-sip-pw\n", "device", "add", "4155550302", "--kind", "sip", "--user", "grace-b", "--password-stdin")

	reg := func(number, user, pass, src string) *sipConn {
		c := dialSIP(t, src, s.ip)
		if code, _ := c.registerOnce(number, user, pass, src); code != 200 {
			t.Fatalf("register %s: %d", number, code)
		}
		return c
	}
	malSrc, malCalleeSrc := s.sibling(51), s.sibling(52)
	mal := reg("4155550201", "mal-a", "mal-a-sip-pw", malSrc)
	reg("4155550202", "mal-b", "mal-b-sip-pw", malCalleeSrc) // rings, never answers

	// Sixteen m-lines (64 ports) in one offer: refused before any port.
	if err := mal.send(inviteSDP("4155550201", "4155550202", "many-lines", malSrc, 16)); err != nil {
		t.Fatal(err)
	}
	if res := firstResponse(t, mal); res.StatusCode != 488 {
		t.Fatalf("16 m-lines: %d %s, want 488", res.StatusCode, res.Reason)
	}

	// Ringing calls of four streams until the relay says no.
	accepted, calls := 0, 0
	var refused *sipmsg.Response
	for calls < 8 && refused == nil {
		calls++
		if err := mal.send(inviteSDP("4155550201", "4155550202", fmt.Sprintf("ring-%d", calls), malSrc, 4)); err != nil {
			t.Fatal(err)
		}
		switch res := firstResponse(t, mal); res.StatusCode {
		case 100:
			accepted++
		default:
			refused = res
		}
	}
	if refused == nil || refused.StatusCode != 503 || !strings.Contains(refused.Reason, "Quota") || refused.GetHeader("Retry-After") == nil {
		t.Fatalf("after %d ringing calls: %v, want 503 (Media Port Quota Reached) with Retry-After", accepted, refused)
	}
	held := s.metric(t, "z5_relay_allocated_ports")
	if held > quota {
		t.Fatalf("one customer holds %v relay ports, quota %d", held, quota)
	}

	// Another customer, from another address, still gets a video call
	// anchored: its callee receives the INVITE with the relay's address.
	graceSrc, graceCalleeSrc := s.sibling(61), s.sibling(62)
	graceCallee := reg("4155550302", "grace-b", "grace-b-sip-pw", graceCalleeSrc)
	grace := reg("4155550301", "grace-a", "grace-a-sip-pw", graceSrc)
	if err := grace.send(inviteSDP("4155550301", "4155550302", "grace-call", graceSrc, 2)); err != nil {
		t.Fatal(err)
	}
	if res := firstResponse(t, grace); res.StatusCode != 100 {
		t.Fatalf("another customer's call: %d %s", res.StatusCode, res.Reason)
	}
	for {
		m, err := graceCallee.read(5 * time.Second)
		if err != nil {
			t.Fatalf("the other customer's callee got no INVITE: %v", err)
		}
		if req, ok := m.(*sipmsg.Request); ok && req.Method == sipmsg.INVITE {
			if !strings.Contains(string(req.Body()), "c=IN IP4 "+s.ip) {
				t.Fatalf("INVITE not anchored on the relay:\n%s", req.Body())
			}
			break
		}
	}
	if refusals := s.metric(t, "z5_relay_quota_refusals_total"); refusals < 1 {
		t.Errorf("z5_relay_quota_refusals_total = %v", refusals)
	}
	t.Logf("one customer: %d ringing calls of 4 streams anchored, call %d refused 503, %v ports held (quota %d); another customer's call anchored (%v ports in use)",
		accepted, calls, held, quota, s.metric(t, "z5_relay_allocated_ports"))
}
