package sipcore

import (
	"testing"

	sipmsg "github.com/emiago/sipgo/sip"
)

// FuzzDecide feeds whatever sipgo parses as a request to every decision:
// none may panic, and a refusal is always a final non-2xx status.
func FuzzDecide(f *testing.F) {
	f.Add([]byte("REGISTER sip:mcs.z5.test SIP/2.0\r\nVia: SIP/2.0/TCP 198.18.0.7;branch=z9hG4bKx\r\nFrom: <sip:5552340001@mcs.z5.test>;tag=a\r\nTo: <sip:5552340001@mcs.z5.test>\r\nCall-ID: c\r\nCSeq: 2 REGISTER\r\nContact: <sip:a@198.18.0.7>;expires=60, *\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("INVITE sip:+1-555-234-0002@mcs.z5.test SIP/2.0\r\nVia: SIP/2.0/TCP 198.18.0.1;branch=z9hG4bKZ5x\r\nMax-Forwards: 0\r\nProxy-Require: foo\r\nFrom: <sip:a@b>;tag=a\r\nTo: <sip:b@c>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"))
	current := []Binding{bound("<sip:5552340001@198.18.0.7:5060;transport=tcp>", "c", 1, "TCP/1")}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := sipmsg.NewParser().ParseSIP(raw)
		if err != nil {
			return
		}
		req, ok := m.(*sipmsg.Request)
		if !ok {
			return
		}
		final := func(r Refusal) {
			if r.Code != 0 && (r.Code < 300 || r.Code > 699) {
				t.Fatalf("refusal %d", r.Code)
			}
		}
		_, r := Route(req, testLocal)
		final(r)
		final(UnsupportedRequire(req, "Require"))
		for _, flow := range []Flow{tcp, {ID: "UDP/198.18.0.7:5060", UDP: true, Bindings: 2}} {
			cs, r := Register(req, alice, flow, current, limits, t0)
			final(r)
			for _, c := range cs {
				if c.Old >= len(current) || c.New == nil && c.Old < 0 {
					t.Fatalf("change %+v", c)
				}
			}
		}
		var live []Registered
		for _, b := range current {
			live = append(live, Registered{Contact: b.Contact.Value(), Expires: b.Expires})
		}
		RegisterOK(req, live, t0, 0)
	})
}
