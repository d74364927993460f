package sipreg

import (
	"testing"

	sipmsg "github.com/emiago/sipgo/sip"
)

func TestFill(t *testing.T) {
	// As the phones build it: From and To of the request line, and the
	// Call-ID and CSeq of an earlier request.
	req := sipmsg.NewRequest(sipmsg.REGISTER, sipmsg.Uri{Scheme: "sip", Host: "z5.test"})
	req.AppendHeader(&sipmsg.FromHeader{Address: sipmsg.Uri{Scheme: "sip", Host: "z5.test"}, Params: sipmsg.NewParams()})
	req.AppendHeader(&sipmsg.ToHeader{Address: sipmsg.Uri{Scheme: "sip", Host: "z5.test"}})
	old := sipmsg.CallIDHeader("c0")
	req.AppendHeader(&old)
	req.AppendHeader(&sipmsg.CSeqHeader{SeqNo: 1, MethodName: sipmsg.REGISTER})
	contact := sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", User: "15550001", Host: "127.0.0.1", Port: 40000}}
	Fill(req, Binding{Number: "15550001", Domain: "z5.test", CallID: "c1", CSeq: 7, Contact: contact, Expires: 600, License: "lic"})
	for _, tc := range []struct{ header, want string }{
		{"To", "<sip:15550001@z5.test>"},
		{"Call-ID", "c1"},
		{"CSeq", "7 REGISTER"},
		{"Contact", "<sip:15550001@127.0.0.1:40000>"},
		{"Expires", "600"},
		{"Supported", "outbound, path"},
		{"X-Z5-License", "lic"},
	} {
		h := req.GetHeader(tc.header)
		if h == nil {
			t.Errorf("no %s header", tc.header)
			continue
		}
		if got := h.Value(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.header, got, tc.want)
		}
	}
	from := req.From()
	if from == nil || from.Address.User != "15550001" || from.Address.Host != "z5.test" {
		t.Fatalf("From %v, want the address of record", from)
	}
	if tag, ok := from.Params.Get("tag"); !ok || tag == "" {
		t.Errorf("From %v has no tag", from)
	}
}

func TestContact(t *testing.T) {
	c := Contact("15550001", "127.0.0.1", 40000, "tls", "urn:uuid:00000000-0000-0000-0000-000000000001")
	want := `<sip:15550001@127.0.0.1:40000;transport=tls;ob>;+sip.instance="<urn:uuid:00000000-0000-0000-0000-000000000001>";reg-id=1`
	if got := c.Value(); got != want {
		t.Errorf("Contact\n got %s\nwant %s", got, want)
	}
}
