package callreport

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/z5vrs/z5/internal/media"
)

var nan = math.NaN()

func TestSamplerRows(t *testing.T) {
	type reading struct {
		el      time.Duration
		streams []media.StreamStats
	}
	tests := []struct {
		name     string
		readings []reading
		want     []Row
	}{
		{
			name: "first second, no reports yet",
			readings: []reading{{time.Second, []media.StreamStats{{
				Kind: "video", BytesSent: 62500, FramesSent: 30,
				PacketsReceived: 99, Lost: 1, BytesReceived: 50000, FramesReceived: 29, JitterMs: 2.5,
			}}}},
			want: []Row{
				{1, "video", Send, 500, 30, nan, nan, nan},
				{1, "video", Recv, 400, 29, 1, 2.5, nan},
			},
		},
		{
			name: "rates over the interval; the far end's view on the send row",
			readings: []reading{
				{time.Second, []media.StreamStats{{Kind: "audio", BytesSent: 8000, FramesSent: 50, PacketsReceived: 50, BytesReceived: 8000, FramesReceived: 50}}},
				{3 * time.Second, []media.StreamStats{{Kind: "audio", BytesSent: 18000, FramesSent: 150,
					PacketsReceived: 140, Lost: 10, BytesReceived: 16000, FramesReceived: 140, JitterMs: 4,
					RemoteReports: 2, RemoteFractionLost: 0.25, RemoteJitterMs: 7, RTTMs: 31}}},
			},
			want: []Row{
				{1, "audio", Send, 64, 50, nan, nan, nan},
				{1, "audio", Recv, 64, 50, 0, 0, nan},
				{3, "audio", Send, 40, 50, 25, 7, 31},
				{3, "audio", Recv, 32, 45, 10, 4, nan},
			},
		},
		{
			name: "silence: no loss figure, duplicates are not negative loss",
			readings: []reading{
				{time.Second, []media.StreamStats{{Kind: "audio", PacketsReceived: 50, Lost: 2}}},
				{2 * time.Second, []media.StreamStats{{Kind: "audio", PacketsReceived: 50, Lost: 2}}},
				{3 * time.Second, []media.StreamStats{{Kind: "audio", PacketsReceived: 60, Lost: 1}}},
			},
			want: []Row{
				{1, "audio", Send, 0, 0, nan, nan, nan},
				{1, "audio", Recv, 0, 0, 2 * 100.0 / 52, 0, nan},
				{2, "audio", Send, 0, 0, nan, nan, nan},
				{2, "audio", Recv, 0, 0, nan, 0, nan},
				{3, "audio", Send, 0, 0, nan, nan, nan},
				{3, "audio", Recv, 0, 0, 0, 0, nan},
			},
		},
		{
			name:     "too soon after the last reading",
			readings: []reading{{50 * time.Millisecond, []media.StreamStats{{Kind: "audio", BytesSent: 100}}}},
			want:     nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s Sampler
			var got []Row
			for _, r := range tc.readings {
				got = append(got, s.Rows(r.el, r.streams)...)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateNaNs(), cmpopts.EquateApprox(0, 1e-9)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCSVRoundTrip(t *testing.T) {
	rows := []Row{
		{1, "video", Send, 512.25, 30, nan, nan, nan},
		{1, "video", Recv, 498.5, 29.5, 1.25, 2.5, nan},
		{2, "audio", Send, 64, 50, 0, 7, 31.5},
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.Write(rows[:1]); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rows[1:]); err != nil {
		t.Fatal(err)
	}
	want := "time_s,stream,direction,kbps,fps,loss_pct,jitter_ms,rtt_ms\n" +
		"1.0,video,send,512.25,30.00,,,\n" +
		"1.0,video,recv,498.50,29.50,1.25,2.50,\n" +
		"2.0,audio,send,64.00,50.00,0.00,7.00,31.50\n"
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("csv (-want +got):\n%s", diff)
	}
	got, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rows, got, cmpopts.EquateNaNs()); diff != "" {
		t.Errorf("read back (-want +got):\n%s", diff)
	}
}

func TestReadRejects(t *testing.T) {
	const head = "time_s,stream,direction,kbps,fps,loss_pct,jitter_ms,rtt_ms\n"
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"other header", "t,stream,direction,kbps,fps,loss_pct,jitter_ms,rtt_ms\n"},
		{"short row", head + "1.0,video,send,1,2,3,4\n"},
		{"bad time", head + "x,video,send,1,2,3,4,5\n"},
		{"negative time", head + "-1,video,send,1,2,3,4,5\n"},
		{"bad stream", head + "1,text,send,1,2,3,4,5\n"},
		{"bad direction", head + "1,video,both,1,2,3,4,5\n"},
		{"bad number", head + "1,video,send,1,2,NaN,4,5\n"},
		{"negative", head + "1,video,send,-1,2,3,4,5\n"},
		{"infinite", head + "1,video,send,1,2,3,4,Inf\n"},
	} {
		if _, err := Read(strings.NewReader(tc.in)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", tc.name, err)
		}
	}
}

// TestSVG checks the picture is well-formed XML that says what it shows in
// words (title, desc, one labelled chart per metric with axis labels), and
// tells series apart by line style and marker, not colour alone.
func TestSVG(t *testing.T) {
	var rows []Row
	for i := 1; i <= 30; i++ {
		ti := float64(i)
		loss := 0.0
		if i == 10 {
			loss = 5
		}
		rows = append(rows,
			Row{ti, "video", Send, 500, 30, loss, 3, 20},
			Row{ti, "video", Recv, 480, 29, 0, 2, nan},
			Row{ti, "audio", Send, 64, 50, 0, 1, 21},
			Row{ti, "audio", Recv, 64, 50, 0, 1, nan})
	}
	rows[4*4+1].JitterMs = nan // received video at 5 s: the line breaks
	svg := SVG(rows, "call.csv <1>")

	type node struct {
		name  string
		attrs map[string]string
		text  string
	}
	var nodes []node
	dec := xml.NewDecoder(bytes.NewReader(svg))
	var stack []int
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			n := node{name: el.Name.Local, attrs: map[string]string{}}
			for _, a := range el.Attr {
				n.attrs[a.Name.Local] = a.Value
			}
			nodes = append(nodes, n)
			stack = append(stack, len(nodes)-1)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				nodes[stack[len(stack)-1]].text += string(el)
			}
		}
	}
	count := func(pred func(node) bool) (n int) {
		for _, x := range nodes {
			if pred(x) {
				n++
			}
		}
		return n
	}
	texts := func(name string) []string {
		var out []string
		for _, x := range nodes {
			if x.name == name {
				out = append(out, x.text)
			}
		}
		return out
	}
	titles := texts("title")
	if len(titles) != 6 || titles[0] != "Call quality: call.csv <1>" {
		t.Errorf("titles: %q, want the call's and one per chart", titles)
	}
	desc := texts("desc")
	if len(desc) != 1 || !strings.Contains(desc[0], "30 seconds") || !strings.Contains(desc[0], "Video sent (far end's view) (solid, circles line): bitrate average 500.0") {
		t.Errorf("desc: %q", desc)
	}
	if n := count(func(x node) bool { return x.name == "g" && x.attrs["role"] == "img" }); n != 5 {
		t.Errorf("%d charts, want 5", n)
	}
	allText := strings.Join(texts("text"), "|")
	for _, want := range []string{"Bitrate (kb/s)", "Packet loss (%)", "Round-trip time (ms)", "time since answer (s)", "video received", "audio sent (far end's view)"} {
		if !strings.Contains(allText, want) {
			t.Errorf("no label %q in %s", want, allText)
		}
	}
	dashes := map[string]bool{}
	var jitterVideoSend string
	for _, x := range nodes {
		if x.name == "path" && x.attrs["fill"] == "none" {
			dashes[x.attrs["stroke-dasharray"]] = true
		}
	}
	if len(dashes) != 4 {
		t.Errorf("line styles %v: want 4 distinct", dashes)
	}
	// Series lines: 4 per chart, RTT only for the two send series.
	if n := count(func(x node) bool { return x.name == "path" && x.attrs["fill"] == "none" }); n != 4*4+2 {
		t.Errorf("%d series lines, want 18", n)
	}
	for _, x := range nodes {
		if x.name == "path" && x.attrs["fill"] == "none" && x.attrs["stroke-dasharray"] == "8 4" && jitterVideoSend == "" && strings.Count(x.attrs["d"], "M") == 2 {
			jitterVideoSend = x.attrs["d"]
		}
	}
	if jitterVideoSend == "" {
		t.Error("the unknown jitter sample did not break the received-video line")
	}
}

func TestNiceStep(t *testing.T) {
	for _, tc := range []struct {
		max  float64
		n    int
		want float64
	}{
		{30, 8, 5}, {1, 4, 0.5}, {500, 4, 200}, {7, 4, 2}, {0.03, 4, 0.01}, {100, 4, 50},
	} {
		if got := niceStep(tc.max, tc.n); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("niceStep(%v, %d) = %v, want %v", tc.max, tc.n, got, tc.want)
		}
	}
}

func TestSummary(t *testing.T) {
	rows := []Row{{1, "audio", Recv, 60, 50, 0, 2, nan}, {2, "audio", Recv, 70, 50, 10, nan, nan}}
	got := Summary(rows)
	for _, want := range []string{"audio received               Bitrate kb/s             60.0     65.0     70.0", "Packet loss %             0.0      5.0     10.0", "Jitter ms                 2.0      2.0      2.0"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "Round-trip") {
		t.Errorf("summary of an unknown metric:\n%s", got)
	}
}
