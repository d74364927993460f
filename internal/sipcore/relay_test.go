package sipcore

import (
	"bytes"
	"encoding/xml"
	"io"
	"mime"
	"mime/multipart"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/store"
)

func TestClassifyInvite(t *testing.T) {
	ours := func(n string) bool { return n == "5552340001" || n == "5552340002" || n == "ca-1001" }
	facts := InviteFacts{Ours: ours, RelayAccess: "8665550100"}
	station := facts
	station.CallerStation = true
	trunk := facts
	trunk.FromTrunk = true
	for _, tc := range []struct {
		name  string
		line  string
		extra []string
		facts InviteFacts
		want  Classified
	}{
		{"to one of our numbers: point to point", "INVITE sip:5552340002@mcs.z5.test SIP/2.0", nil, facts,
			Classified{Kind: KindPointToPoint, Target: "5552340002"}},
		{"to a hearing number: queued outbound", "INVITE sip:+12125550100@mcs.z5.test;user=phone SIP/2.0", nil, facts,
			Classified{Kind: KindQueueOutbound, Target: "2125550100", Dialed: "2125550100"}},
		{"911: queued emergency", "INVITE sip:911@mcs.z5.test SIP/2.0", nil, facts,
			Classified{Kind: KindQueueEmergency, Target: "911", Dialed: "911"}},
		{"911 with user=phone", "INVITE sip:911;user=phone@mcs.z5.test SIP/2.0", nil, facts,
			Classified{Kind: KindQueueEmergency, Target: "911", Dialed: "911"}},
		{"relay access number: queued with nothing dialled", "INVITE sip:8665550100@mcs.z5.test SIP/2.0", nil, facts,
			Classified{Kind: KindQueueOutbound, Target: "8665550100"}},
		{"a number that cannot exist (N9X area code): not queued", "INVITE sip:9995550100@mcs.z5.test SIP/2.0", nil, facts,
			Classified{Kind: KindRefuse, Target: "9995550100", Refusal: Refusal{Code: 404, Reason: "Not Found"}}},
		{"an N11 exchange: not queued", "INVITE sip:2124110100@mcs.z5.test SIP/2.0", nil, facts,
			Classified{Kind: KindRefuse, Target: "2124110100", Refusal: Refusal{Code: 404, Reason: "Not Found"}}},
		{"a name, not a number", "INVITE sip:alice@mcs.z5.test SIP/2.0", nil, facts,
			Classified{Kind: KindRefuse, Refusal: Refusal{Code: 404, Reason: "Not Found"}}},
		{"a customer calling a station directly", "INVITE sip:ca-1001@mcs.z5.test SIP/2.0", nil, facts,
			Classified{Kind: KindRefuse, Target: "ca-1001", Refusal: Refusal{Code: 403, Reason: "Forbidden (Interpreter Stations Take Queued Calls Only)"}}},
		{"a customer claiming a relay call", "INVITE sip:2125550100@mcs.z5.test SIP/2.0", []string{"X-Z5-Relay-Call: abc"}, facts,
			Classified{Kind: KindRefuse, Target: "2125550100", Refusal: Refusal{Code: 403, Reason: "Forbidden (Not An Interpreter Station)"}}},
		{"station's second leg out", "INVITE sip:2125550100@mcs.z5.test SIP/2.0", []string{"X-Z5-Relay-Call: abc@198.18.0.7"}, station,
			Classified{Kind: KindSecondLeg, Target: "2125550100", Relay: "abc@198.18.0.7"}},
		{"station's second leg to 911", "INVITE sip:911@mcs.z5.test SIP/2.0", []string{"X-Z5-Relay-Call: abc"}, station,
			Classified{Kind: KindSecondLeg, Target: "911", Relay: "abc"}},
		{"station's second leg to our user", "INVITE sip:5552340001@mcs.z5.test SIP/2.0", []string{"X-Z5-Relay-Call: abc"}, station,
			Classified{Kind: KindSecondLeg, Target: "5552340001", Relay: "abc"}},
		{"station's second leg to another station", "INVITE sip:ca-1001@mcs.z5.test SIP/2.0", []string{"X-Z5-Relay-Call: abc"}, station,
			Classified{Kind: KindRefuse, Target: "ca-1001", Refusal: Refusal{Code: 404, Reason: "Not Found"}}},
		{"station calling out without a relay call", "INVITE sip:2125550100@mcs.z5.test SIP/2.0", nil, station,
			Classified{Kind: KindRefuse, Target: "2125550100", Refusal: Refusal{Code: 403, Reason: "Forbidden (Relay Call Header Required)"}}},
		{"trunk to our user: queued inbound", "INVITE sip:+15552340001@198.18.0.1 SIP/2.0", nil, trunk,
			Classified{Kind: KindTrunkInbound, Target: "5552340001"}},
		{"trunk to a number not ours: no transit", "INVITE sip:2125550100@198.18.0.1 SIP/2.0", nil, trunk,
			Classified{Kind: KindRefuse, Target: "2125550100", Refusal: Refusal{Code: 404, Reason: "Not Found"}}},
		{"trunk to 911", "INVITE sip:911@198.18.0.1 SIP/2.0", nil, trunk,
			Classified{Kind: KindRefuse, Target: "911", Refusal: Refusal{Code: 404, Reason: "Not Found"}}},
		{"trunk to a station", "INVITE sip:ca-1001@198.18.0.1 SIP/2.0", nil, trunk,
			Classified{Kind: KindRefuse, Target: "ca-1001", Refusal: Refusal{Code: 404, Reason: "Not Found"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ClassifyInvite(request(t, tc.line, tc.extra...), tc.facts)
			if got.Kind != tc.want.Kind || got.Target != tc.want.Target || got.Dialed != tc.want.Dialed || got.Relay != tc.want.Relay ||
				got.Refusal.Code != tc.want.Refusal.Code || got.Refusal.Reason != tc.want.Refusal.Reason {
				t.Errorf("ClassifyInvite = %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestTrunkPretender(t *testing.T) {
	ours := func(n string) bool { return n == "5552340001" }
	for _, tc := range []struct {
		name  string
		extra []string
		want  bool
	}{
		{"our number, no credentials yet: challenged", nil, false},
		{"From host is the trunk's", []string{"From: <sip:2125550100@198.18.9.1>;tag=x"}, true},
		{"a calling number not ours", []string{"From: <sip:+12125550100@mcs.z5.test>;tag=x"}, true},
		{"a digest user name: challenged", []string{"From: <sip:dev-7f3a@mcs.z5.test>;tag=x"}, false},
		{"with credentials: checked by digest", []string{"From: <sip:2125550100@198.18.9.1>;tag=x", `Proxy-Authorization: Digest username="x"`}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := request(t, "INVITE sip:5552340001@mcs.z5.test SIP/2.0", tc.extra...)
			if got := TrunkPretender(req, "198.18.9.1", ours); got != tc.want {
				t.Errorf("TrunkPretender = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCivic(t *testing.T) {
	for _, tc := range []struct {
		street, hno, rd string
	}{
		{"1600 Pennsylvania Ave NW", "1600", "Pennsylvania Ave NW"},
		{"12B Baker St", "12B", "Baker St"},
		{"Main Street", "", "Main Street"},
		{"100", "", "100"},
	} {
		c := Civic(store.Location{Street: tc.street, City: "Austin", State: "TX", Zip: "78701"})
		if c.HNO != tc.hno || c.RD != tc.rd || c.Country != "US" || c.A1 != "TX" || c.A3 != "Austin" || c.PC != "78701" {
			t.Errorf("Civic(%q) = %+v, want HNO %q RD %q", tc.street, c, tc.hno, tc.rd)
		}
	}
}

// TestEmergencyBodyPIDFLO: the 911 body is multipart/mixed with the SDP
// and a PIDF-LO whose civic address parses back (encoding/xml, by
// namespace) into the registered location; the Content-ID is the one the
// Geolocation header will name; characters XML reserves are escaped.
func TestEmergencyBodyPIDFLO(t *testing.T) {
	loc := store.Location{Street: "1 Main St & <Annex>", City: "Austin", State: "TX", Zip: "78701-1234", Country: "US"}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	pidf, err := PIDFLO("sip:5552340001@mcs.z5.test", loc, now)
	if err != nil {
		t.Fatal(err)
	}
	sdp := []byte("v=0\r\no=- 1 1 IN IP4 198.18.0.1\r\ns=-\r\nc=IN IP4 198.18.0.1\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0\r\n")
	body, ctype, cid := EmergencyBody(sdp, pidf, "mcs.z5.test")
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("Content-Type %q: %v", ctype, err)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var parts []string
	var doc []byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("part: %v", err)
		}
		b, _ := io.ReadAll(p)
		ct := p.Header.Get("Content-Type")
		parts = append(parts, ct)
		switch ct {
		case "application/sdp":
			if !bytes.Equal(b, sdp) {
				t.Errorf("SDP part %q, want %q", b, sdp)
			}
		case "application/pidf+xml":
			if got := p.Header.Get("Content-ID"); got != "<"+cid+">" {
				t.Errorf("Content-ID %q, want <%s>", got, cid)
			}
			doc = b
		}
	}
	if strings.Join(parts, ",") != "application/sdp,application/pidf+xml" {
		t.Fatalf("parts %v", parts)
	}
	// Parse with a struct of its own (not the one that wrote it), naming
	// each element by namespace.
	var got struct {
		XMLName xml.Name `xml:"urn:ietf:params:xml:ns:pidf presence"`
		Entity  string   `xml:"entity,attr"`
		Device  struct {
			Geopriv struct {
				Info struct {
					Civic struct {
						Country string `xml:"urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr country"`
						A1      string `xml:"urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr A1"`
						A3      string `xml:"urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr A3"`
						HNO     string `xml:"urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr HNO"`
						RD      string `xml:"urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr RD"`
						PC      string `xml:"urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr PC"`
					} `xml:"urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr civicAddress"`
				} `xml:"urn:ietf:params:xml:ns:pidf:geopriv10 location-info"`
				Method string `xml:"urn:ietf:params:xml:ns:pidf:geopriv10 method"`
			} `xml:"urn:ietf:params:xml:ns:pidf:geopriv10 geopriv"`
			Timestamp string `xml:"urn:ietf:params:xml:ns:pidf:data-model timestamp"`
		} `xml:"urn:ietf:params:xml:ns:pidf:data-model device"`
	}
	if err := xml.Unmarshal(doc, &got); err != nil {
		t.Fatalf("PIDF-LO does not parse: %v\n%s", err, doc)
	}
	c := got.Device.Geopriv.Info.Civic
	if got.Entity != "sip:5552340001@mcs.z5.test" || c.Country != "US" || c.A1 != "TX" || c.A3 != "Austin" ||
		c.HNO != "1" || c.RD != "Main St & <Annex>" || c.PC != "78701-1234" || got.Device.Geopriv.Method != "Manual" ||
		got.Device.Timestamp != "2026-12-07T12:00:00Z" {
		t.Errorf("PIDF-LO parsed as %+v\n%s", got, doc)
	}
	// The civic elements follow the schema's sequence (RFC 5139 §4).
	dec := xml.NewDecoder(bytes.NewReader(doc))
	last := -1
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Space != NSCivicAddr || se.Name.Local == "civicAddress" {
			continue
		}
		i := slices.Index(CivicOrder, se.Name.Local)
		if i < 0 || i <= last {
			t.Errorf("civicAddress element %s out of the schema's sequence", se.Name.Local)
		}
		last = i
	}
	if !strings.Contains(string(doc), "&amp;") || !strings.Contains(string(doc), "&lt;Annex&gt;") {
		t.Errorf("reserved characters not escaped:\n%s", doc)
	}
}

func TestAudioOnly(t *testing.T) {
	in := "v=0\r\no=- 1 1 IN IP4 198.18.0.7\r\ns=-\r\nc=IN IP4 198.18.0.7\r\nt=0 0\r\n" +
		"m=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\nm=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=text 4004 RTP/AVP 98\r\n"
	want := "v=0\r\no=- 1 1 IN IP4 198.18.0.7\r\ns=-\r\nc=IN IP4 198.18.0.7\r\nt=0 0\r\n" +
		"m=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=text 0 RTP/AVP 98\r\n"
	if got := string(AudioOnly([]byte(in))); got != want {
		t.Errorf("AudioOnly =\n%q\nwant\n%q", got, want)
	}
}

func TestDialable(t *testing.T) {
	for n, want := range map[string]bool{
		"2125550100": true, "8665550100": true, "3105551234": true,
		"9995550100": false, "2915550100": false, // N9X area codes
		"4115550100": false, "9115550100": false, // N11 area codes
		"2124110100": false, // N11 exchange
		"1125550100": false, "212555010": false, "ca-1001": false,
	} {
		if got := Dialable(n); got != want {
			t.Errorf("Dialable(%q) = %v, want %v", n, got, want)
		}
	}
}
