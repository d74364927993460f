package media

import (
	"net/netip"
	"strings"
	"testing"
)

func TestTextOfferAnswer(t *testing.T) {
	addr := netip.MustParseAddr("192.0.2.1")
	offer, err := BuildOffer(addr, 4000, 4002, true)
	if err != nil {
		t.Fatal(err)
	}
	offer, err = WithText(offer, 4004, true, 77, "c1")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"m=text 4004 RTP/AVP 100 98", "a=rtpmap:100 red/1000", "a=fmtp:100 98/98/98",
		"a=rtpmap:98 t140/1000", "a=ssrc:77 cname:c1"} {
		if !strings.Contains(string(offer), line+"\r\n") {
			t.Fatalf("offer lacks %q:\n%s", line, offer)
		}
	}
	answer, neg, err := BuildAnswer(offer, netip.MustParseAddr("192.0.2.2"), 5000, 5002)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(answer), "m=text 0 ") || neg.Text != nil {
		t.Fatalf("BuildAnswer alone should decline text:\n%s", answer)
	}
	answer, tp, err := AnswerText(offer, answer, 5004, 88, "c2")
	if err != nil {
		t.Fatal(err)
	}
	if tp == nil || tp.PT != PTT140 || tp.RedPT != PTRed || tp.Remote != netip.MustParseAddrPort("192.0.2.1:4004") || !tp.Send || !tp.Recv {
		t.Fatalf("answerer's text params %+v", tp)
	}
	if !strings.Contains(string(answer), "m=text 5004 RTP/AVP 100 98\r\n") || !strings.Contains(string(answer), "a=ssrc:88 cname:c2") {
		t.Fatalf("answer:\n%s", answer)
	}
	got, err := ParseText(answer)
	if err != nil || got == nil || got.RedPT != PTRed || got.Remote != netip.MustParseAddrPort("192.0.2.2:5004") {
		t.Fatalf("ParseText(answer) = %+v, %v", got, err)
	}
}

func TestTextPeers(t *testing.T) {
	const head = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"
	for _, tc := range []struct {
		name     string
		text     string
		want     bool
		red, pt  uint8
		declined bool
	}{
		{"plain t140 only", "m=text 6002 RTP/AVP 99\r\na=rtpmap:99 t140/1000\r\n", true, 0, 99, false},
		{"other numbers", "m=text 6002 RTP/AVP 101 103\r\na=rtpmap:101 RED/1000\r\na=fmtp:101 103/103\r\na=rtpmap:103 T140/1000\r\n", true, 101, 103, false},
		{"red without t140", "m=text 6002 RTP/AVP 101\r\na=rtpmap:101 red/1000\r\n", false, 0, 0, true},
		{"disabled", "m=text 0 RTP/AVP 98\r\na=rtpmap:98 t140/1000\r\n", false, 0, 0, true},
		{"encrypted", "m=text 6002 RTP/SAVP 98\r\na=rtpmap:98 t140/1000\r\n", false, 0, 0, true},
		{"none", "", false, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			offer := []byte(head + tc.text)
			answer, _, err := BuildAnswer(offer, netip.MustParseAddr("192.0.2.2"), 5000, 0)
			if err != nil {
				t.Fatal(err)
			}
			out, tp, err := AnswerText(offer, answer, 5004, 0, "")
			if err != nil {
				t.Fatal(err)
			}
			if (tp != nil) != tc.want {
				t.Fatalf("accepted %+v, want %t", tp, tc.want)
			}
			if tp != nil && (tp.RedPT != tc.red || tp.PT != tc.pt) {
				t.Fatalf("red %d t140 %d, want %d %d", tp.RedPT, tp.PT, tc.red, tc.pt)
			}
			if tc.declined && !strings.Contains(string(out), "m=text 0 ") {
				t.Fatalf("text not declined:\n%s", out)
			}
		})
	}
}

// TestTextOfferOrder: the text line comes before video, so a peer that
// declines video (the usual case for audio-only phones) declines the last
// line; see WithText for the Linphone crash this avoids.
func TestTextOfferOrder(t *testing.T) {
	addr := netip.MustParseAddr("192.0.2.1")
	for _, tc := range []struct {
		name  string
		video int
		want  []string
	}{
		{"audio and video", 4002, []string{"audio", "text", "video"}},
		{"audio only", 0, []string{"audio", "text"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			offer, err := BuildOffer(addr, 4000, tc.video, true)
			if err == nil {
				offer, err = WithText(offer, 4004, true, 77, "c1")
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, line := range strings.Split(string(offer), "\r\n") {
				if kind, ok := strings.CutPrefix(line, "m="); ok {
					got = append(got, strings.Fields(kind)[0])
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("m-lines %v, want %v:\n%s", got, tc.want, offer)
			}
		})
	}
}
