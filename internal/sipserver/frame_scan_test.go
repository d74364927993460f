package sipserver

import (
	"strings"
	"testing"
)

// TestHeaderName: the lower-cased, expanded name, whether or not it is
// among the common ones looked up without a copy.
func TestHeaderName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Via", "via"}, {"v", "via"}, {"V", "via"}, {"CONTENT-LENGTH", "content-length"}, {"l", "content-length"},
		{"Call-ID", "call-id"}, {"i", "call-id"}, {"X-Custom", "x-custom"}, {"x", "session-expires"},
		{"A-Very-Long-Custom-Header-Name", "a-very-long-custom-header-name"}, {"Ümlaut", "ümlaut"}, {"", ""},
	} {
		if got := headerName(tc.in); got != tc.want {
			t.Errorf("headerName(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := headerName([]byte(tc.in)); got != tc.want {
			t.Errorf("headerName([]byte(%q)) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestScanHeadersAgrees: scanHeaders, which reads a section without
// continuation lines in place, finds what a scan through splitHeaders
// finds, folded or not.
func TestScanHeadersAgrees(t *testing.T) {
	for _, sec := range []string{
		"INVITE sip:a@b SIP/2.0\r\nVia: x\r\nContent-Length: 12\r\n\r\n",
		"INVITE sip:a@b SIP/2.0\r\nl: 007\r\nContent-Length:7\r\n\r\n",
		"INVITE sip:a@b SIP/2.0\r\nl: 7\r\nContent-Length: 8\r\n\r\n",
		"INVITE sip:a@b SIP/2.0\r\nContent-Length: \r\n\r\n",
		"INVITE sip:a@b SIP/2.0\r\nContent-Length: 1x\r\n\r\n",
		"INVITE sip:a@b SIP/2.0\r\nContent-Length: 1234567890\r\n\r\n",
		"INVITE sip:a@b SIP/2.0\r\nno colon here\r\nVia: x\r\n\r\n",
		"INVITE sip:a@b SIP/2.0\r\n CONTENT-length : 5 \r\n\r\n",
		"INVITE sip:a@b SIP/2.0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",
		"INVITE sip:a@b SIP/2.0",
		"INVITE sip:a@b SIP/2.0\r\n\r\n",
		"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n y\r\nContent-Length: 3\r\n\r\n",
		"INVITE sip:a@b SIP/2.0\r\nContent-Length:\r\n 4\r\n\r\n",
		"INVITE sip:a@b SIP/2.0\r\nl: 4\r\n\tx: y\r\nL: 5\r\n\r\n",
	} {
		for _, max := range []int{3, 70} {
			n1, err1 := scanHeaders([]byte(sec), max)
			n2, err2 := scanSplit([]byte(sec), max)
			if n1 != n2 || err1 != err2 {
				t.Errorf("%q (max %d): in place %d, %v; split %d, %v", strings.ReplaceAll(sec, "\r\n", "|"), max, n1, err1, n2, err2)
			}
		}
	}
}

// scanSplit is scanHeaders as it was written over splitHeaders alone: the
// reference for TestScanHeadersAgrees.
func scanSplit(hdr []byte, maxHeaders int) (contentLength int, err error) {
	contentLength = -1
	count := 0
	var lengthSeen string
	for _, h := range splitHeaders(hdr) {
		count++
		if count > maxHeaders {
			return 0, errTooManyHeaders
		}
		if h.name != "content-length" {
			continue
		}
		v := h.value
		if v == "" || len(v) > 9 || strings.Trim(v, "0123456789") != "" {
			return 0, errBadContentLength
		}
		if lengthSeen != "" && strings.TrimLeft(lengthSeen, "0") != strings.TrimLeft(v, "0") {
			return 0, errConflictingLength
		}
		lengthSeen = v
		contentLength = atoiDigits(v)
	}
	return contentLength, nil
}

func TestFolded(t *testing.T) {
	for _, tc := range []struct {
		hdr  string
		want bool
	}{
		{"REGISTER sip:a SIP/2.0\r\nVia: x\r\n\r\n", false},
		{"REGISTER sip:a SIP/2.0\r\nSubject: a\r\n b\r\n\r\n", true},
		{"REGISTER sip:a SIP/2.0\r\nSubject: a\r\n\tb\r\n\r\n", true},
		{"REGISTER sip:a SIP/2.0\r\nSubject: a \r\nb: c\r\n", false},
		{"REGISTER sip:a SIP/2.0\r\n", false},
		{"REGISTER sip:a SIP/2.0\r\n ", true},
		{"", false},
	} {
		if got := folded([]byte(tc.hdr)); got != tc.want {
			t.Errorf("folded(%q) = %v, want %v", tc.hdr, got, tc.want)
		}
	}
}
