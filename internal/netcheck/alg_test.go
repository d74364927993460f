package netcheck

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/google/go-cmp/cmp"

	"github.com/z5vrs/z5/internal/profile"
	"github.com/z5vrs/z5/internal/wire/algprobe"
)

func itoa(n int) string { return strconv.Itoa(n) }

// fixLength sets Content-Length to the body's size, as an ALG does after
// rewriting the body.
func fixLength(msg string) string {
	head, body, _ := strings.Cut(msg, "\r\n\r\n")
	var out []string
	for _, l := range strings.Split(head, "\r\n") {
		if strings.HasPrefix(strings.ToLower(l), "content-length:") {
			l = "Content-Length: " + itoa(len(body))
		}
		out = append(out, l)
	}
	return strings.Join(out, "\r\n") + "\r\n\r\n" + body
}

func parseRequest(t *testing.T, b []byte, transport string) *sipmsg.Request {
	t.Helper()
	m, err := sipmsg.ParseMessage(b)
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, b)
	}
	req := m.(*sipmsg.Request)
	req.SetTransport(transport)
	return req
}

// TestCompareEcho runs the client's comparison against the server's echo,
// with and without the rewriting an ALG does between them.
func TestCompareEcho(t *testing.T) {
	c := &checker{p: &profile.Profile{Names: profile.Names{SIPDomain: "mcs.z5.test"}}, opts: Options{UserAgent: "test"}}
	req, sent := c.optionsRequest(netip.MustParseAddrPort("198.18.1.21:5060"), netip.MustParseAddrPort("10.0.0.5:51000"))
	wire := []byte(req.String())
	for _, tc := range []struct {
		name      string
		rewrite   func(string) string
		echo      bool
		rewritten []string
	}{
		{"unchanged", func(s string) string { return s }, true, nil},
		{"via and contact", func(s string) string {
			return strings.ReplaceAll(s, "10.0.0.5:51000", "203.0.113.9:40000")
		}, true, []string{
			"Via: sent TCP/10.0.0.5:51000, the MCS received TCP/203.0.113.9:40000",
			"Contact: sent sip:z5-check@10.0.0.5:51000, the MCS received sip:z5-check@203.0.113.9:40000",
		}},
		{"sdp only", func(s string) string {
			return strings.ReplaceAll(s, "c=IN IP4 10.1.2.3", "c=IN IP4 203.0.113.9")
		}, true, []string{`SDP: sent "c=IN IP4 10.1.2.3", the MCS received "c=IN IP4 203.0.113.9"`}},
		{"sdp session address and length", func(s string) string {
			return fixLength(strings.ReplaceAll(s, "IN IP4 10.0.0.5\r\n", "IN IP4 203.0.113.129\r\n"))
		}, true, []string{`SDP: sent "o=z5-check 1 1 IN IP4 10.0.0.5", the MCS received "o=z5-check 1 1 IN IP4 203.0.113.129"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := parseRequest(t, []byte(tc.rewrite(string(wire))), "TCP")
			res := sipmsg.NewResponseFromRequest(got, 200, "OK", nil)
			hs, body, ok := algprobe.EchoReply(got)
			if !ok {
				t.Fatal("no echo")
			}
			for _, h := range hs {
				res.AppendHeader(h)
			}
			res.SetBody(body)
			// Over the wire and back: the client parses what it reads.
			back, err := readResponse(bytes.NewReader([]byte(res.String())))
			if err != nil {
				t.Fatal(err)
			}
			echoed, rewritten := compareEcho(sent, back)
			if echoed != tc.echo {
				t.Errorf("echoed = %v", echoed)
			}
			if d := cmp.Diff(tc.rewritten, rewritten); d != "" {
				t.Errorf("rewritten (-want +got):\n%s", d)
			}
		})
	}
	// No echo headers: an older server, nothing to compare.
	res := sipmsg.NewResponseFromRequest(req, 200, "OK", nil)
	if echoed, rw := compareEcho(sent, res); echoed || rw != nil {
		t.Errorf("plain 200: echoed %v, %v", echoed, rw)
	}
}

func TestReadResponse(t *testing.T) {
	ok := "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 10.0.0.5:5060;branch=z9hG4bK1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"response", ok, true},
		{"after keepalives", "\r\n\r\n" + ok, true},
		{"a request", "OPTIONS sip:a SIP/2.0\r\nContent-Length: 0\r\n\r\n", false},
		{"http", "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", false},
		{"truncated", ok[:30], false},
		{"endless header", "SIP/2.0 200 OK\r\nX: " + strings.Repeat("a", 2*maxSIPResponse), false},
	} {
		res, err := readResponse(strings.NewReader(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, %v", tc.name, res, err)
		}
	}
}

// FuzzALGEcho feeds any message to both ends: ALGEchoReply never panics
// and never returns an unsafe header; compareEcho copes with any echo.
func FuzzALGEcho(f *testing.F) {
	f.Add([]byte("SIP/2.0 200 OK\r\nX-Z5-Echo-Via: SIP/2.0/TCP [::1\r\nX-Z5-Echo-Contact: <sip:@>\r\nX-Z5-Echo-Length: -1\r\nContent-Length: 3\r\n\r\nabc"))
	f.Add([]byte("SIP/2.0 200 OK\r\nX-Z5-Echo-Via: x\r\nContent-Length: 0\r\n\r\n"))
	c := &checker{p: &profile.Profile{Names: profile.Names{SIPDomain: "mcs.z5.test"}}, opts: Options{UserAgent: "test"}}
	req, sent := c.optionsRequest(netip.MustParseAddrPort("198.18.1.21:5060"), netip.MustParseAddrPort("10.0.0.5:51000"))
	f.Add([]byte(req.String())) // the probe as the client sends it
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := sipmsg.ParseMessage(b)
		if err != nil {
			return
		}
		switch m := m.(type) {
		case *sipmsg.Request:
			m.SetTransport("TCP")
			hs, body, ok := algprobe.EchoReply(m)
			if !ok {
				return
			}
			if len(body) > algprobe.MaxEchoBody {
				t.Fatalf("echoed %d bytes", len(body))
			}
			for _, h := range hs {
				if strings.ContainsAny(h.Value(), "\r\n") {
					t.Fatalf("unsafe header %q", h.Value())
				}
			}
		case *sipmsg.Response:
			compareEcho(sent, m)
		}
	})
}

// FuzzReadResponse: the SIP probe's reader ends on any input.
func FuzzReadResponse(f *testing.F) {
	f.Add([]byte("SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("\r\n\r\nSIP/2.0 100 Trying\r\nContent-Length: 5\r\n\r\nab"))
	f.Add([]byte("HTTP/1.1 200 OK\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		readResponse(bytes.NewReader(b))
	})
}
