package sipcore

import (
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/google/go-cmp/cmp"
)

// parseRequest parses raw SIP text, lines joined with CRLF.
func parseRequest(t *testing.T, lines ...string) *sipmsg.Request {
	t.Helper()
	raw := strings.Join(lines, "\r\n") + "\r\n\r\n"
	m, err := sipmsg.NewParser().ParseSIP([]byte(raw))
	if err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	req, ok := m.(*sipmsg.Request)
	if !ok {
		t.Fatalf("not a request: %q", raw)
	}
	return req
}

// register is a REGISTER from alice's device with extra header lines.
func register(t *testing.T, cseq string, extra ...string) *sipmsg.Request {
	lines := []string{
		"REGISTER sip:mcs.z5.test SIP/2.0",
		"Via: SIP/2.0/TCP 198.18.0.7:5060;branch=z9hG4bK776asdhds",
		"Max-Forwards: 70",
		"From: <sip:5552340001@mcs.z5.test>;tag=a73kszlfl",
		"To: <sip:5552340001@mcs.z5.test>",
		"Call-ID: reg-1@198.18.0.7",
		"CSeq: " + cseq + " REGISTER",
	}
	lines = append(lines, extra...)
	return parseRequest(t, append(lines, "Content-Length: 0")...)
}

var (
	t0     = time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	alice  = Registrant{Number: "5552340001", DeviceID: 7, Kind: "sip"}
	limits = RegisterLimits{MinExpires: 60, MaxExpires: 3600, DefaultExpires: 600, MaxPerNumber: 3, MaxUDPPerAddr: 2}
	tcp    = Flow{ID: "TCP/1"}
)

// bound is a binding of alice's device as a REGISTER would have made it.
func bound(uri, callID string, cseq uint32, flow string) Binding {
	var c sipmsg.ContactHeader
	c.Params = sipmsg.NewParams()
	if _, err := sipmsg.ParseAddressValue(uri, &c.Address, &c.Params); err != nil {
		panic(err)
	}
	return Binding{Number: alice.Number, DeviceID: alice.DeviceID, Kind: alice.Kind, Contact: c,
		URI: c.Address.String(), CallID: callID, CSeq: cseq, Expires: t0.Add(time.Minute), FlowID: flow}
}

// outcome is a decision in a comparable form: per change, the index of
// the binding replaced (-1: none) and the new binding's URI and seconds
// to expiry ("" when removed), or the refusal.
type outcome struct {
	Changes []string
	Code    int
	Reason  string
	Headers []string
}

func summarize(cs []Change, r Refusal) outcome {
	var o outcome
	for _, c := range cs {
		s := "old=" + itoa(c.Old)
		if c.New != nil {
			s += " new=" + c.New.URI + " expires=" + c.New.Expires.Sub(t0).String() + " flow=" + c.New.FlowID
			if c.New.Instance != "" {
				s += " instance=" + c.New.Instance + " reg-id=" + c.New.RegID
			}
		}
		o.Changes = append(o.Changes, s)
	}
	o.Code, o.Reason = r.Code, r.Reason
	for _, h := range r.Headers {
		o.Headers = append(o.Headers, h.Name()+": "+h.Value())
	}
	return o
}

func itoa(n int) string {
	if n < 0 {
		return "-1"
	}
	return string(rune('0' + n))
}

func TestRegister(t *testing.T) {
	one := []Binding{bound("<sip:5552340001@198.18.0.7:5060;transport=tcp>", "reg-1@198.18.0.7", 1, "TCP/1")}
	for _, tc := range []struct {
		name    string
		req     *sipmsg.Request
		current []Binding
		flow    Flow
		want    outcome
	}{
		{"new binding, default expiry", register(t, "1", "Contact: <sip:5552340001@198.18.0.7:5060;transport=tcp>"), nil, tcp,
			outcome{Changes: []string{"old=-1 new=sip:5552340001@198.18.0.7:5060;transport=tcp expires=10m0s flow=TCP/1"}}},
		{"Expires header", register(t, "1", "Contact: <sip:5552340001@198.18.0.7:5060;transport=tcp>", "Expires: 120"), nil, tcp,
			outcome{Changes: []string{"old=-1 new=sip:5552340001@198.18.0.7:5060;transport=tcp expires=2m0s flow=TCP/1"}}},
		{"contact expires wins, capped at max", register(t, "1", "Contact: <sip:5552340001@198.18.0.7:5060;transport=tcp>;expires=99999", "Expires: 120"), nil, tcp,
			outcome{Changes: []string{"old=-1 new=sip:5552340001@198.18.0.7:5060;transport=tcp expires=1h0m0s flow=TCP/1"}}},
		{"refresh replaces the binding", register(t, "2", "Contact: <sip:5552340001@198.18.0.7:5060;transport=tcp>"), one, tcp,
			outcome{Changes: []string{"old=0 new=sip:5552340001@198.18.0.7:5060;transport=tcp expires=10m0s flow=TCP/1"}}},
		{"outbound instance matches across contact URIs", register(t, "1",
			`Contact: <sip:5552340001@198.18.0.9:5062;transport=tcp>;+sip.instance="<urn:uuid:00000000-0000-0000-0000-000000000001>";reg-id=1`),
			[]Binding{func() Binding {
				b := bound(`<sip:5552340001@198.18.0.7:5060;transport=tcp>;+sip.instance="<urn:uuid:00000000-0000-0000-0000-000000000001>";reg-id=1`, "other", 9, "TCP/0")
				b.Instance, b.RegID = `"<urn:uuid:00000000-0000-0000-0000-000000000001>"`, "1"
				return b
			}()}, tcp,
			outcome{Changes: []string{`old=0 new=sip:5552340001@198.18.0.9:5062;transport=tcp expires=10m0s flow=TCP/1 instance="<urn:uuid:00000000-0000-0000-0000-000000000001>" reg-id=1`}}},
		{"Expires: 0 removes", register(t, "2", "Contact: <sip:5552340001@198.18.0.7:5060;transport=tcp>", "Expires: 0"), one, tcp,
			outcome{Changes: []string{"old=0"}}},
		{"Expires: 0 of an unknown contact changes nothing", register(t, "2", "Contact: <sip:5552340001@198.18.0.8>", "Expires: 0"), one, tcp,
			outcome{}},
		{"wildcard removes every binding of the device", register(t, "2", "Contact: *", "Expires: 0"),
			append(one, Binding{Number: alice.Number, DeviceID: 8, URI: "sip:other"}, bound("<sip:5552340001@198.18.0.8>", "x", 1, "TCP/2")), tcp,
			outcome{Changes: []string{"old=0", "old=2"}}},
		{"wildcard needs Expires: 0", register(t, "2", "Contact: *"), one, tcp,
			outcome{Code: 400, Reason: "Wildcard Contact Requires Expires: 0"}},
		{"wildcard must be alone", register(t, "2", "Contact: *, <sip:5552340001@198.18.0.8>", "Expires: 0"), one, tcp,
			outcome{Code: 400, Reason: "Wildcard Contact Must Be Alone"}},
		{"too brief", register(t, "1", "Contact: <sip:5552340001@198.18.0.7>", "Expires: 30"), nil, tcp,
			outcome{Code: 423, Reason: "Interval Too Brief", Headers: []string{"Min-Expires: 60"}}},
		{"malformed Expires", register(t, "1", "Contact: <sip:5552340001@198.18.0.7>", "Expires: soon"), nil, tcp,
			outcome{Code: 400, Reason: "Malformed Expires Header"}},
		{"malformed contact expires", register(t, "1", "Contact: <sip:5552340001@198.18.0.7>;expires=-1"), nil, tcp,
			outcome{Code: 400, Reason: "Malformed Contact Expires"}},
		{"not a SIP contact", register(t, "1", "Contact: <tel:+15552340001>"), nil, tcp,
			outcome{Code: 400, Reason: "Contact Must Be A SIP URI"}},
		{"out of order", register(t, "1", "Contact: <sip:5552340001@198.18.0.7:5060;transport=tcp>"), one, tcp,
			outcome{Code: 500, Reason: "Out Of Order Registration", Headers: []string{"Retry-After: 1"}}},
		{"too many contacts", register(t, "1", "Contact: <sip:a@h1>, <sip:a@h2>, <sip:a@h3>, <sip:a@h4>, <sip:a@h5>, <sip:a@h6>, <sip:a@h7>, <sip:a@h8>, <sip:a@h9>"), nil, tcp,
			outcome{Code: 403, Reason: "Forbidden (Too Many Contacts)"}},
		{"too many registrations for the number", register(t, "1", "Contact: <sip:a@h3>, <sip:a@h4>"),
			[]Binding{bound("<sip:a@h1>", "x", 1, "TCP/1"), bound("<sip:a@h2>", "x", 1, "TCP/1")}, tcp,
			outcome{Code: 403, Reason: "Forbidden (Too Many Registrations)"}},
		{"UDP address under its cap", register(t, "1", "Contact: <sip:5552340001@198.18.0.7>"), nil, Flow{ID: "UDP/198.18.0.7:5060", UDP: true, Bindings: 1},
			outcome{Changes: []string{"old=-1 new=sip:5552340001@198.18.0.7 expires=10m0s flow=UDP/198.18.0.7:5060"}}},
		{"UDP address at its cap", register(t, "1", "Contact: <sip:5552340001@198.18.0.7>"), nil, Flow{ID: "UDP/198.18.0.7:5060", UDP: true, Bindings: 2},
			outcome{Code: 403, Reason: "Forbidden (Too Many Registrations At This Address)"}},
		{"UDP refresh at the cap", register(t, "2", "Contact: <sip:5552340001@198.18.0.7>"),
			[]Binding{bound("<sip:5552340001@198.18.0.7>", "reg-1@198.18.0.7", 1, "UDP/198.18.0.7:5060")}, Flow{ID: "UDP/198.18.0.7:5060", UDP: true, Bindings: 2},
			outcome{Changes: []string{"old=0 new=sip:5552340001@198.18.0.7 expires=10m0s flow=UDP/198.18.0.7:5060"}}},
		{"UDP binding moved here at the cap", register(t, "2", "Contact: <sip:5552340001@198.18.0.7>"),
			[]Binding{bound("<sip:5552340001@198.18.0.7>", "reg-1@198.18.0.7", 1, "UDP/198.18.0.7:5061")}, Flow{ID: "UDP/198.18.0.7:5060", UDP: true, Bindings: 2},
			outcome{Code: 403, Reason: "Forbidden (Too Many Registrations At This Address)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := summarize(Register(tc.req, alice, tc.flow, tc.current, limits, t0))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestRegisterOK(t *testing.T) {
	b := bound("<sip:5552340001@198.18.0.7:5060;transport=tcp>", "reg-1@198.18.0.7", 1, "TCP/1")
	b.Expires = t0.Add(90*time.Second + time.Millisecond)
	for _, tc := range []struct {
		name string
		req  *sipmsg.Request
		want []string
	}{
		{"plain", register(t, "1", "Contact: <sip:5552340001@198.18.0.7:5060;transport=tcp>"), []string{
			"Contact: <sip:5552340001@198.18.0.7:5060;transport=tcp>;expires=91",
			"Date: Mon, 07 Dec 2026 03:00:00 GMT",
		}},
		{"outbound", register(t, "1", `Contact: <sip:5552340001@198.18.0.7:5060;transport=tcp>;+sip.instance="<urn:uuid:1>";reg-id=1`, "Supported: path, outbound"), []string{
			"Contact: <sip:5552340001@198.18.0.7:5060;transport=tcp>;expires=91",
			"Date: Mon, 07 Dec 2026 03:00:00 GMT",
			"Require: outbound",
			"Flow-Timer: 120",
		}},
		{"outbound without reg-id", register(t, "1", `Contact: <sip:5552340001@198.18.0.7:5060;transport=tcp>;+sip.instance="<urn:uuid:1>"`, "Supported: outbound"), []string{
			"Contact: <sip:5552340001@198.18.0.7:5060;transport=tcp>;expires=91",
			"Date: Mon, 07 Dec 2026 03:00:00 GMT",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := RegisterOK(tc.req, []Registered{{Contact: b.Contact.Value(), Expires: b.Expires}}, t0, 2*time.Minute)
			var got []string
			for _, name := range []string{"Contact", "Date", "Require", "Flow-Timer"} {
				for _, h := range res.GetHeaders(name) {
					got = append(got, h.Name()+": "+h.Value())
				}
			}
			if res.StatusCode != 200 {
				t.Errorf("status %d", res.StatusCode)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

// TestRegisterOKContacts: the 200 lists a binding as registered, its
// expires parameter (if any) replaced by the time left, from the stored
// value alone.
func TestRegisterOKContacts(t *testing.T) {
	for _, tc := range []struct{ contact, want string }{
		{"Contact: <sip:5552340001@198.18.0.7:5060;transport=tcp>",
			"Contact: <sip:5552340001@198.18.0.7:5060;transport=tcp>;expires=600"},
		{"Contact: <sip:5552340001@198.18.0.7>;expires=120",
			"Contact: <sip:5552340001@198.18.0.7>;expires=120"},
		{`Contact: "Alice Z" <sip:5552340001@198.18.0.7>;expires=120;+sip.instance="<urn:uuid:1>";reg-id=1`,
			`Contact: "Alice Z" <sip:5552340001@198.18.0.7>;+sip.instance="<urn:uuid:1>";reg-id=1;expires=120`},
		{"m: sip:5552340001@198.18.0.7;q=0.5",
			"Contact: <sip:5552340001@198.18.0.7>;q=0.5;expires=600"},
	} {
		t.Run(tc.contact, func(t *testing.T) {
			req := register(t, "1", tc.contact)
			cs, r := Register(req, alice, tcp, nil, limits, t0)
			if r.Code != 0 || len(cs) != 1 || cs[0].New == nil {
				t.Fatalf("Register: %+v, %+v", cs, r)
			}
			b := cs[0].New
			res := RegisterOK(req, []Registered{{Contact: b.Contact.Value(), Expires: b.Expires}}, t0, 0)
			var got []string
			for h := range Named(res.Headers(), "Contact") {
				got = append(got, h.Name()+": "+h.Value())
			}
			if diff := cmp.Diff([]string{tc.want}, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestNamed(t *testing.T) {
	req := register(t, "1", "Supported: path", "k: outbound", "SUPPORTED: gruu", "Contact: <sip:a@198.18.0.7>")
	var got []string
	for h := range Named(req.Headers(), "supported") {
		got = append(got, h.Value())
	}
	// "k" is the compact form, which sipgo keeps as its own name.
	if diff := cmp.Diff([]string{"path", "gruu"}, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	if !UsesOutbound(register(t, "1", `Contact: <sip:a@198.18.0.7>;+sip.instance="<urn:uuid:1>";reg-id=1`, "k: outbound")) {
		t.Error("compact Supported not read")
	}
}

func TestParseDelta(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"0", 0, true}, {" 600 ", 600, true}, {"4294967296", 4294967295, true}, {"4294967295", 2147483647, true},
		{"", 0, false}, {"-1", 0, false}, {"1e3", 0, false}, {"0x10", 0, false},
	} {
		got, ok := ParseDelta(tc.in)
		if ok != tc.ok || ok && got != tc.want {
			t.Errorf("ParseDelta(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
