package media

import (
	"net/netip"
	"strings"
	"testing"
)

func TestWithSources(t *testing.T) {
	offer, err := buildOffer(netip.MustParseAddr("198.18.0.7"), 41000, 41002, true, 42)
	if err != nil {
		t.Fatal(err)
	}
	got, err := WithSources(offer, Sources{Audio: 1111, Video: 2222, CNAME: "c0ffee"})
	if err != nil {
		t.Fatal(err)
	}
	text := string(got)
	audio, video, ok := strings.Cut(text, "m=video")
	if !ok {
		t.Fatalf("no video line:\n%s", text)
	}
	if !strings.Contains(audio, "a=ssrc:1111 cname:c0ffee\r\n") || strings.Contains(audio, "2222") {
		t.Errorf("audio section:\n%s", audio)
	}
	if !strings.Contains(video, "a=ssrc:2222 cname:c0ffee\r\n") || strings.Contains(video, "1111") {
		t.Errorf("video section:\n%s", video)
	}

	// A declined line (port 0) and a zero SSRC announce nothing.
	answer, _, err := buildAnswer([]byte(offer), netip.MustParseAddr("198.18.0.9"), 50000, 0, 7)
	if err != nil {
		t.Fatal(err)
	}
	got, err = WithSources(answer, Sources{Audio: 0, Video: 3333})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(got), "a=ssrc") {
		t.Errorf("announced a source for a zero SSRC or a declined line:\n%s", got)
	}
}

func TestNewSources(t *testing.T) {
	a, err := NewSources()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewSources()
	if a.Audio == 0 || a.Video == 0 || a.Audio == a.Video || len(a.CNAME) != 32 || a == b {
		t.Fatalf("sources %+v, %+v", a, b)
	}
}
