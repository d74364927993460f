package sipserver

import (
	"reflect"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/sipcore"
)

// TestEntryKeepsBinding: a binding stored as an entry (its contact as the
// header value) comes back as it went in.
func TestEntryKeepsBinding(t *testing.T) {
	flow := &flowRef{id: "TCP/192.0.2.7:5074/3", transport: "TCP", dest: "192.0.2.7:5074"}
	exp := time.Unix(1_800_000_000, 0)
	for _, v := range []string{
		`<sip:2125550007@127.0.79.1:5074;transport=TCP>`,
		`"Alice Smith" <sip:alice@10.0.0.1:5060;transport=tcp;ob>;+sip.instance="<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>";reg-id=1`,
		`Bob <sips:bob@host.example.com;lr>;q=0.7;+sip.ice`,
		`<sip:[2001:db8::1]:5060>`,
		`<sip:u@h?X-Foo=bar>`,
		`sip:u@h:5;transport=udp`,
	} {
		var c sipmsg.ContactHeader
		dn, err := sipmsg.ParseAddressValue(v, &c.Address, &c.Params)
		if err != nil {
			t.Fatal(v, err)
		}
		c.DisplayName = dn
		b := sipcore.Binding{Number: "2125550007", DeviceID: 7, Kind: "sip", Contact: c, URI: c.Address.String(),
			Instance: "<urn:uuid:1>", RegID: "1", CallID: "abc@h", CSeq: 9, Expires: exp, FlowID: flow.id}
		got := newEntry(&b, flow, exp).binding()
		if got.Contact.Value() != c.Value() || got.Contact.DisplayName != c.DisplayName || got.Contact.Address.String() != c.Address.String() {
			t.Errorf("%s: contact %q, want %q", v, got.Contact.Value(), c.Value())
		}
		if p, _ := got.Contact.Params.Get("reg-id"); p != func() string { s, _ := c.Params.Get("reg-id"); return s }() {
			t.Errorf("%s: reg-id parameter %q", v, p)
		}
		got.Contact, b.Contact = sipmsg.ContactHeader{}, sipmsg.ContactHeader{}
		if !reflect.DeepEqual(got.Binding, b) || got.flow != *flow || !got.since.Equal(exp) {
			t.Errorf("%s: binding %+v, want %+v", v, got.Binding, b)
		}
	}
}
