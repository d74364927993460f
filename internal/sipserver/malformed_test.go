package sipserver

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// malformedCases are the hostile messages a review found answered 200:
// each is a plain OPTIONS to the server with one defect.
var malformedCases = []struct {
	name      string
	old, new_ string // replace old with new_ in the plain OPTIONS
}{
	{"NUL in Request-URI", "OPTIONS sip:", "OPTIONS sip:a\x00b@"},
	{"NUL in header name", "Max-Forwards:", "Max-For\x00wards:"},
	{"NUL in Call-ID", "Call-ID: opt-", "Call-ID: opt-\x00"},
	{"NUL in Via host", "127.0.0.1:9;branch", "127.0.0.1\x00x:9;branch"},
	{"space inside header name", "Max-Forwards:", "Max Forwards:"},
	{"empty header name", "Max-Forwards: 70", "Max-Forwards: 70\r\n: empty"},
	{"continuation before first header", " SIP/2.0\r\nVia:", " SIP/2.0\r\n folded\r\nVia:"},
	{"invalid UTF-8 in header name", "Max-Forwards: 70", "Max-Forwards: 70\r\nX-\xff\xfe: x"},
	{"Request-URI port 65536", "OPTIONS sip:127.0.0.1:", "OPTIONS sip:127.0.0.1:65536;x="},
}

// plainOptions is an OPTIONS to addr over TCP; every malformed case edits
// it.
func plainOptions(addr netip.AddrPort) string {
	return optionsText(addr, "TCP")
}

func TestCheckRaw(t *testing.T) {
	addr := netip.MustParseAddrPort("127.0.0.1:5060")
	base := plainOptions(addr)
	hdr := func(msg string) []byte {
		i := strings.Index(msg, "\r\n\r\n")
		return []byte(msg[:i+4])
	}
	if e := checkRaw(hdr(base)); e != nil {
		t.Fatalf("plain OPTIONS refused: %v", e)
	}
	for _, tc := range malformedCases {
		msg := strings.Replace(base, tc.old, tc.new_, 1)
		if msg == base {
			t.Fatalf("%s: the case does not apply", tc.name)
		}
		if e := checkRaw(hdr(msg)); e == nil || e.code != 400 {
			t.Errorf("%s: %v, want 400", tc.name, e)
		}
	}
	// Still accepted: what RFC 3261 allows.
	for _, tc := range []struct{ name, old, new_ string }{
		{"space before the colon", "Max-Forwards:", "Max-Forwards  \t:"},
		{"folded header", "Max-Forwards: 70", "Max-Forwards:\r\n 70"},
		{"port 65535", "OPTIONS sip:127.0.0.1:", "OPTIONS sip:127.0.0.1:65535;x="},
		{"IPv6 Request-URI with port", "OPTIONS sip:127.0.0.1:", "OPTIONS sip:[::1]:5060;x="},
		{"Via port with spaces", "127.0.0.1:9;branch", "127.0.0.1 : 9 ;branch"},
		{"escaped NUL in the user part", "OPTIONS sip:", "OPTIONS sip:a%00b@"},
		{"compact header", "Call-ID:", "i:"},
	} {
		msg := strings.Replace(base, tc.old, tc.new_, 1)
		if msg == base {
			t.Fatalf("%s: the case does not apply", tc.name)
		}
		if e := checkRaw(hdr(msg)); e != nil {
			t.Errorf("%s: refused %v", tc.name, e)
		}
	}
	for _, tc := range []struct {
		port string
		ok   bool
	}{{"", true}, {"0", true}, {"65535", true}, {"65536", false}, {"99999", false}, {"123456", false}, {"-1", false}, {"5x", false}} {
		if validPort(tc.port) != tc.ok {
			t.Errorf("validPort(%q) = %v", tc.port, !tc.ok)
		}
	}
}

// TestMalformedAnswered400 sends each malformed message over TCP on one
// connection, then a good one: each is answered 400, and the framing
// holds so the connection keeps serving. Over UDP each is answered 400.
func TestMalformedAnswered400(t *testing.T) {
	e := newEnv(t, nil)
	c := dialTCP(t, e.addr)
	answered := 0
	for _, tc := range malformedCases {
		msg := strings.Replace(plainOptions(e.addr), tc.old, tc.new_, 1)
		c.send(t, msg)
		m, err := c.read(2 * time.Second)
		if err != nil || status(m) != 400 {
			t.Errorf("%s over TCP: %v %v, want 400", tc.name, m, err)
			continue
		}
		answered++
		udp := strings.Replace(msg, "SIP/2.0/TCP", "SIP/2.0/UDP", 1)
		if m := udpExchange(t, e.addr, []byte(udp), 2*time.Second); status(m) != 400 {
			t.Errorf("%s over UDP: %v, want 400", tc.name, m)
		}
	}
	t.Logf("%d of %d malformed messages answered 400 over TCP", answered, len(malformedCases))
	c.send(t, plainOptions(e.addr))
	if m, err := c.read(2 * time.Second); status(m) != 200 {
		t.Fatalf("good OPTIONS after the malformed ones: %v %v", m, err)
	}
}
