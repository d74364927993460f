package sipcore

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"strings"
	"time"

	"github.com/z5vrs/z5/internal/store"
)

// 911 location by value (RFC 6442): the emergency leg's INVITE carries a
// Geolocation header naming a body part by Content-ID, and a
// multipart/mixed body with the SDP and that part: a PIDF-LO (RFC 4119,
// RFC 5491) whose civic address follows RFC 5139.

// XML namespaces of a PIDF-LO.
const (
	NSPIDF      = "urn:ietf:params:xml:ns:pidf"
	NSGeopriv   = "urn:ietf:params:xml:ns:pidf:geopriv10"
	NSCivicAddr = "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr"
	NSDataModel = "urn:ietf:params:xml:ns:pidf:data-model"
)

// CivicOrder is the sequence of RFC 5139's civicAddress elements.
var CivicOrder = []string{"country", "A1", "A2", "A3", "A4", "A5", "A6", "PRM", "PRD", "RD", "STS", "POD", "POM",
	"RDSEC", "RDBR", "RDSUBBR", "HNO", "HNS", "LMK", "LOC", "FLR", "NAM", "PC", "BLD", "UNIT", "ROOM", "SEAT",
	"PLC", "PCN", "POBOX", "ADDCODE"}

// CivicAddress is RFC 5139's civicAddress with the elements a registered
// location fills: country, A1 (state), A3 (city), RD (road), HNO (house
// number), PC (postal code), in the order the schema's sequence demands.
type CivicAddress struct {
	XMLName xml.Name `xml:"urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr civicAddress"`
	Lang    string   `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	Country string   `xml:"urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr country"`
	A1      string   `xml:"urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr A1"`
	A3      string   `xml:"urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr A3"`
	RD      string   `xml:"urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr RD"`
	HNO     string   `xml:"urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr HNO,omitempty"`
	PC      string   `xml:"urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr PC"`
}

// PIDF is the presence document (RFC 4119 with RFC 5491's device).
type PIDF struct {
	XMLName xml.Name `xml:"urn:ietf:params:xml:ns:pidf presence"`
	Entity  string   `xml:"entity,attr"`
	Device  struct {
		ID      string `xml:"id,attr"`
		Geopriv struct {
			Civic   CivicAddress `xml:"urn:ietf:params:xml:ns:pidf:geopriv10 location-info>civicAddress"`
			Retrans string       `xml:"urn:ietf:params:xml:ns:pidf:geopriv10 usage-rules>retransmission-allowed"`
			Method  string       `xml:"urn:ietf:params:xml:ns:pidf:geopriv10 method"`
		} `xml:"urn:ietf:params:xml:ns:pidf:geopriv10 geopriv"`
		DeviceID  string `xml:"urn:ietf:params:xml:ns:pidf:data-model deviceID"`
		Timestamp string `xml:"urn:ietf:params:xml:ns:pidf:data-model timestamp"`
	} `xml:"urn:ietf:params:xml:ns:pidf:data-model device"`
}

// Civic turns a registered location into a civic address: a leading
// house number of the street line is HNO, the rest RD.
func Civic(loc store.Location) CivicAddress {
	street := strings.TrimSpace(loc.Street)
	hno, rd := "", street
	if n, rest, ok := strings.Cut(street, " "); ok && n[0] >= '0' && n[0] <= '9' && strings.TrimSpace(rest) != "" {
		hno, rd = n, strings.TrimSpace(rest)
	}
	country := loc.Country
	if country == "" {
		country = "US"
	}
	return CivicAddress{Lang: "en", Country: country, A1: loc.State, A3: loc.City, HNO: hno, RD: rd, PC: loc.Zip}
}

// LocationLine is a location as one line, "street, city, ST zip" (the
// X-Z5-Location header and the station's display).
func LocationLine(loc store.Location) string {
	return fmt.Sprintf("%s, %s, %s %s", loc.Street, loc.City, loc.State, loc.Zip)
}

// PIDFLO is the PIDF-LO document for a caller (entity, a SIP URI) at loc.
func PIDFLO(entity string, loc store.Location, now time.Time) ([]byte, error) {
	var p PIDF
	p.Entity = entity
	p.Device.ID = "z5"
	p.Device.Geopriv.Civic = Civic(loc)
	p.Device.Geopriv.Retrans = "no"
	// The subscriber registered the address (FCC rules for VRS 911).
	p.Device.Geopriv.Method = "Manual"
	p.Device.DeviceID = "urn:z5:user:" + strings.TrimPrefix(strings.TrimPrefix(entity, "sip:"), "sips:")
	p.Device.Timestamp = now.UTC().Format(time.RFC3339)
	b, err := xml.MarshalIndent(p, "", " ")
	if err != nil {
		return nil, fmt.Errorf("pidf-lo: %w", err)
	}
	return append([]byte(xml.Header), b...), nil
}

// EmergencyBody is the multipart/mixed body of a 911 INVITE (RFC 6442
// §3): the SDP, then the PIDF-LO with the Content-ID the Geolocation
// header names. It returns the body, its Content-Type and that
// Content-ID (without angle brackets).
func EmergencyBody(sdp, pidf []byte, domain string) (body []byte, contentType, cid string) {
	var rnd [8]byte
	rand.Read(rnd[:])
	boundary := "z5-" + hex.EncodeToString(rnd[:])
	cid = "loc-" + hex.EncodeToString(rnd[:4]) + "@" + domain
	var b strings.Builder
	b.WriteString("--" + boundary + "\r\nContent-Type: application/sdp\r\n\r\n")
	b.Write(sdp)
	// The CRLF before a boundary belongs to the boundary (RFC 2046 §5.1.1).
	b.WriteString("\r\n--" + boundary + "\r\nContent-Type: application/pidf+xml\r\nContent-ID: <" + cid + ">\r\n\r\n")
	b.Write(pidf)
	b.WriteString("\r\n--" + boundary + "--\r\n")
	return []byte(b.String()), `multipart/mixed;boundary=` + boundary, cid
}
