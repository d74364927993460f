package addressbook

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// stored drops what the server assigns and a vCard does not carry.
var stored = cmp.Options{
	cmpopts.IgnoreFields(Contact{}, "Owner", "ID", "Version", "Rev"),
	cmpopts.EquateEmpty(),
}

func ph(typ, number string) Phone { return Phone{Type: typ, Number: number} }

func full() Contact {
	return Contact{
		Owner:        "2025550100",
		ID:           "c1",
		UID:          "urn:uuid:5b8c2b7e-6a0e-4a3e-9a39-0f6d2b1f0c11",
		Name:         "Ana María O'Neil, Jr.",
		GivenName:    "Ana María",
		FamilyName:   "O'Neil; Jr\\",
		Number:       "2025550123",
		Phones:       []Phone{ph("video", "sip:ana@example.org;transport=tcp"), ph("voice", "3125550199"), ph("cell", "+442079460000"), ph("text", "2025550124"), ph("home", "2025550125"), ph("work", "2025550126")},
		Email:        "ana@example.org",
		Organization: "Acme, Inc.; Sales \\ East",
		Note:         "line one\nline two, with comma; semicolon \\ backslash \\n not a newline\n\ttabbed — ünïcödé 日本語 🎉",
		Favorite:     true,
		Version:      7,
		Rev:          42,
		UpdatedAt:    time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC),
	}
}

func TestRoundTrip(t *testing.T) {
	long := strings.Repeat("ü", 2047) + "x" // 4095 bytes, multi-byte runes straddle every fold
	tests := []Contact{
		full(),
		{Name: "Minimal", Number: "2025550123"},
		{Name: "SIP only", Number: "sips:bob@[2001:db8::1]:5061", UID: "x,y;z\\w"},
		{Name: strings.Repeat("名", MaxFieldLen), Number: "9995550100", Note: long, Favorite: true},
		{Name: "Commas, everywhere,", GivenName: ",", FamilyName: ";", Organization: ";;", Number: "2125550000", Note: ",;\\"},
	}
	for _, want := range tests {
		t.Run(want.Name[:min(len(want.Name), 12)], func(t *testing.T) {
			if err := Validate(want); err != nil {
				t.Fatalf("fixture invalid: %v", err)
			}
			var buf bytes.Buffer
			if err := Encode(&buf, []Contact{want}); err != nil {
				t.Fatal(err)
			}
			for i, l := range strings.Split(strings.TrimSuffix(buf.String(), "\r\n"), "\r\n") {
				if len(l) > 75 {
					t.Errorf("line %d is %d octets, want <= 75: %q", i+1, len(l), l)
				}
			}
			if strings.Contains(strings.ReplaceAll(buf.String(), "\r\n", ""), "\n") {
				t.Errorf("bare LF in output")
			}
			got, err := Decode(&buf, 10, 1<<20)
			if err != nil {
				t.Fatalf("decode: %v\n%s", err, buf.String())
			}
			if len(got) != 1 {
				t.Fatalf("decoded %d contacts", len(got))
			}
			if d := cmp.Diff(want, got[0], stored); d != "" {
				t.Errorf("round trip (-want +got):\n%s", d)
			}
		})
	}
}

func TestEncodeGolden(t *testing.T) {
	c := Contact{
		UID: "u-1", Name: "Bob Smith", GivenName: "Bob", FamilyName: "Smith", Number: "2025550123",
		Phones: []Phone{ph("voice", "3125550199")}, Email: "bob@example.com", Organization: "Acme",
		Note: "Prefers ASL, mornings", Favorite: true, UpdatedAt: time.Date(2024, 1, 2, 15, 4, 5, 0, time.UTC),
	}
	want := "BEGIN:VCARD\r\n" +
		"VERSION:4.0\r\n" +
		"PRODID:-//Z5//Z5 address book//EN\r\n" +
		"UID:u-1\r\n" +
		"FN:Bob Smith\r\n" +
		"N:Smith;Bob;;;\r\n" +
		"TEL;PREF=1;TYPE=video;VALUE=uri:tel:+12025550123\r\n" +
		"TEL;TYPE=voice;VALUE=uri:tel:+13125550199\r\n" +
		"EMAIL:bob@example.com\r\n" +
		"ORG:Acme\r\n" +
		"NOTE:Prefers ASL\\, mornings\r\n" +
		"CATEGORIES:favorite\r\n" +
		"REV:20240102T150405Z\r\n" +
		"END:VCARD\r\n"
	var buf bytes.Buffer
	if err := Encode(&buf, []Contact{c}); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, buf.String()); d != "" {
		t.Errorf("Encode (-want +got):\n%s", d)
	}
}

// Cards as other address books write them.
func TestDecodeForeign(t *testing.T) {
	runDecode(t, Decode, 100, []decodeCase{
		{
			name: "apple 3.0",
			in: "BEGIN:VCARD\r\nVERSION:3.0\r\nPRODID:-//Apple Inc.//iPhone OS 17.0//EN\r\n" +
				"N:Doe;Jane;;;\r\nFN:Jane Doe\r\nORG:Example Co.;Support;\r\n" +
				"EMAIL;type=INTERNET;type=HOME;type=pref:jane@example.com\r\n" +
				"item1.TEL;type=CELL;type=VOICE;type=pref:(202) 555-0143\r\nitem1.X-ABLabel:mobile\r\n" +
				"TEL;type=HOME;type=VOICE:+1 312 555 0100\r\n" +
				"NOTE:Deaf\\, uses VRS\\nSecond line\r\nPHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRgABAQAAAQABAAD/2wBD\r\n AAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwc\r\n" +
				"CATEGORIES:Family,Favorites\r\nREV:2023-11-05T10:20:30Z\r\nEND:VCARD\r\n",
			want: []Contact{{
				Name: "Jane Doe", GivenName: "Jane", FamilyName: "Doe", Organization: "Example Co., Support",
				Email: "jane@example.com", Number: "2025550143", Phones: []Phone{ph("home", "3125550100")},
				Note: "Deaf, uses VRS\nSecond line", Favorite: true, UpdatedAt: time.Date(2023, 11, 5, 10, 20, 30, 0, time.UTC),
			}},
		},
		{
			name: "google 3.0, two cards, LF only, no FN",
			in: "BEGIN:VCARD\nVERSION:3.0\nN:Lee;Sam;;;\nTEL;TYPE=CELL:202-555-0111\nEND:VCARD\n\n" +
				"BEGIN:VCARD\nVERSION:3.0\nFN:Video Desk\nTEL;TYPE=VIDEO:sip:desk@vrs.example.net\nTEL;TYPE=WORK,FAX:+1-212-555-0188\nEND:VCARD\n",
			want: []Contact{
				{Name: "Sam Lee", GivenName: "Sam", FamilyName: "Lee", Number: "2025550111"},
				{Name: "Video Desk", Number: "sip:desk@vrs.example.net", Phones: []Phone{ph("work", "2125550188")}},
			},
		},
		{
			name: "4.0 preferred video among several, folded, bom",
			in: "\xef\xbb\xbfBEGIN:VCARD\r\nVERSION:4.0\r\nFN:Pat\r\n  Kim\r\n" +
				"TEL;VALUE=uri;TYPE=video:tel:+1-202-555-0199\r\n" +
				"TEL;VALUE=uri;TYPE=\"video,home\";PREF=2:tel:+1-202-555-0198;ext=12\r\n" +
				"TEL;VALUE=uri;TYPE=voice;PREF=1:tel:+12025550197\r\nEND:VCARD\r\n",
			want: []Contact{{
				Name: "Pat Kim", Number: "2025550198",
				Phones: []Phone{ph("video", "2025550199"), ph("voice", "2025550197")},
			}},
		},
		{
			name: "v2.1-style bare TYPE, group, escaped semicolon in N",
			in:   "BEGIN:VCARD\r\nVERSION:3.0\r\nN:O\\;Brien;Liam\r\nTEL;CELL;PREF:2025550155\r\nEND:VCARD\r\n",
			want: []Contact{{Name: "Liam O;Brien", GivenName: "Liam", FamilyName: "O;Brien", Number: "2025550155"}},
		},
	})
}

func TestDecodeErrors(t *testing.T) {
	card := func(lines ...string) string {
		return "BEGIN:VCARD\r\nVERSION:4.0\r\n" + strings.Join(lines, "\r\n") + "\r\nEND:VCARD\r\n"
	}
	ok := card("FN:Ok", "TEL:2025550123")
	runDecodeErrors(t, Decode, []decodeErrorCase{
		{"empty", "", "vcard: vcard syntax error: no BEGIN:VCARD in input", ErrSyntax},
		{"not vcard", "hello world\r\n", `vcard line 1: vcard syntax error: "hello world" has no ':'`, ErrSyntax},
		{"outside", "FN:x\r\n", "vcard line 1: vcard syntax error: FN outside BEGIN:VCARD ... END:VCARD", ErrSyntax},
		{"no end", ok + "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x\r\n", "vcard card 2, line 6: vcard syntax error: END:VCARD missing", ErrSyntax},
		{"nested", "BEGIN:VCARD\r\nBEGIN:VCARD\r\n", "vcard card 1, line 2: vcard syntax error: BEGIN:VCARD inside a card (END:VCARD missing before it?)", ErrSyntax},
		{"no version", "BEGIN:VCARD\r\nFN:x\r\nEND:VCARD\r\n", "vcard card 1, line 1: VERSION: vcard syntax error: missing", ErrSyntax},
		{"version 2.1", "BEGIN:VCARD\r\nVERSION:2.1\r\nFN:x\r\nEND:VCARD\r\n", `vcard card 1, line 2: VERSION: vcard syntax error: "2.1" not supported, want 3.0 or 4.0`, ErrSyntax},
		{"bad tel", ok + card("FN:Bob", "TEL:2025550123", "TEL;TYPE=cell:call me maybe"), `vcard card 2, line 10: TEL: "call me maybe" is not a 10-digit NANP number, an E.164 number (+442079460000) or a sip: URI`, nil},
		{"bad main tel", card("FN:Bob", "TEL:555-1234"), `vcard card 1, line 4: TEL: "555-1234" is not a 10-digit NANP number (2025550123) or a sip: URI`, nil},
		{"no tel", card("FN:Bob"), "vcard card 1, line 1: TEL: missing: every card needs a videophone number (TEL)", nil},
		{"no name", card("TEL:2025550123"), "vcard card 1, line 1: FN: missing: every card needs a name (FN, N or ORG)", nil},
		{"bad email", card("FN:Bob", "TEL:2025550123", "EMAIL:bob at example"), `vcard card 1, line 5: EMAIL: "bob at example" is not an e-mail address (want user@example.com)`, nil},
		{"bad rev", card("FN:Bob", "TEL:2025550123", "REV:yesterday"), `vcard card 1, line 5: REV: "yesterday" is not a timestamp (want e.g. 20240102T150405Z)`, nil},
		{"long note", card("FN:Bob", "TEL:2025550123", "NOTE:"+strings.Repeat("a", 4097)), "vcard card 1, line 5: NOTE: 4097 bytes, at most 4096", nil},
		{"dup uid", card("UID:a", "FN:A", "TEL:2025550123") + card("UID:a", "FN:B", "TEL:2025550124"), `vcard card 2, line 9: UID: "a" repeats card 1`, nil},
		{"quoted-printable", card("FN:Bob", "NOTE;ENCODING=QUOTED-PRINTABLE:=C3=A9"), "vcard card 1, line 4: NOTE: vcard syntax error: ENCODING=QUOTED-PRINTABLE is vCard 2.1; export as vCard 3.0 or 4.0", ErrSyntax},
		{"bad utf8", card("FN:B\xffob"), "vcard card 1, line 3: vcard syntax error: not valid UTF-8", ErrSyntax},
		{"bad param", card("TEL;TYPE=\"cell:2025550123"), `vcard card 1, line 3: vcard syntax error: TEL: parameter TYPE: unterminated quoted value`, ErrSyntax},
		{"stray continuation", " FN:x\r\n", "vcard line 1: vcard syntax error: folded continuation line without a property before it", ErrSyntax},
		{"too many", ok + ok + ok, "vcard card 3, line 11: too many vcards: more than 2", ErrTooManyCards},
		{"control in name", card("FN:Bob\\nSmith", "TEL:2025550123"), "vcard card 1, line 3: FN: control character U+000A at byte 3", nil},
	})
}

func TestDecodeTooLarge(t *testing.T) {
	in := "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x\r\nTEL:2025550123\r\nEND:VCARD\r\n"
	if _, err := Decode(strings.NewReader(in), 5, int64(len(in))); err != nil {
		t.Fatalf("exactly at the limit: %v", err)
	}
	_, err := Decode(strings.NewReader(in+"\r\n"), 5, int64(len(in)))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("one byte over: %v, want ErrTooLarge", err)
	}
}

// Unfolding must stay linear: a line folded at every byte used to make
// naive decoders quadratic.
func TestDecodeManyFolds(t *testing.T) {
	var b strings.Builder
	b.WriteString("BEGIN:VCARD\r\nVERSION:4.0\r\nTEL:2025550123\r\nNOTE:a")
	for range 1 << 20 {
		b.WriteString("\r\n b")
	}
	b.WriteString("\r\nFN:x\r\nEND:VCARD\r\n")
	start := time.Now()
	_, err := Decode(strings.NewReader(b.String()), 1, 16<<20)
	if err == nil || !strings.Contains(err.Error(), "NOTE: 1048577 bytes, at most 4096") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("decoding took %v", d)
	}
}

func TestValidate(t *testing.T) {
	ok := Contact{Name: "A", Number: "2025550123"}
	tests := []struct {
		name string
		mod  func(*Contact)
		want string
	}{
		{"ok", func(*Contact) {}, ""},
		{"sip", func(c *Contact) { c.Number = "sip:alice@example.com" }, ""},
		{"no name", func(c *Contact) { c.Name = "  " }, "name: required"},
		{"long name", func(c *Contact) { c.Name = strings.Repeat("é", 257) }, "name: 257 characters, at most 256"},
		{"no number", func(c *Contact) { c.Number = "" }, "number: required: a 10-digit number or a sip: URI"},
		{"nanp N", func(c *Contact) { c.Number = "1025550123" }, `number: "1025550123" is not a 10-digit NANP number (2025550123) or a sip: URI`},
		{"e164 main", func(c *Contact) { c.Number = "+442079460000" }, `number: "+442079460000" is not a 10-digit NANP number (2025550123) or a sip: URI`},
		{"sip no host", func(c *Contact) { c.Number = "sip:bob@" }, `number: sip URI host "" is not a host name or address`},
		{"sip space", func(c *Contact) { c.Number = "sip:bob smith@x" }, `number: sip URI has a forbidden character ' '`},
		{"phones", func(c *Contact) { c.Phones = make([]Phone, 21) }, "phones: 21 entries, at most 20"},
		{"phone type", func(c *Contact) { c.Phones = []Phone{ph("fax", "2025550123")} }, `phones[0].type: "fax" is not one of video, cell, text, home, work, voice`},
		{"phone number", func(c *Contact) { c.Phones = []Phone{ph("cell", "")} }, "phones[0].number: required"},
		{"email", func(c *Contact) { c.Email = "Bob <bob@example.com>" }, `email: "Bob <bob@example.com>" is not an e-mail address (want user@example.com)`},
		{"note", func(c *Contact) { c.Note = strings.Repeat("x", 4097) }, "note: 4097 bytes, at most 4096"},
		{"note control", func(c *Contact) { c.Note = "a\x00b" }, "note: control character U+0000 at byte 1"},
		{"org utf8", func(c *Contact) { c.Organization = "\xff" }, "organization: not valid UTF-8"},
		{"several", func(c *Contact) { c.Name, c.Number = "", "" }, "name: required; number: required: a 10-digit number or a sip: URI"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			err := Validate(c)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestNormalizeNumber(t *testing.T) {
	tests := map[string]string{
		"2025550123":             "2025550123",
		"(202) 555-0123":         "2025550123",
		"+1 202.555.0123":        "2025550123",
		"1-202-555-0123":         "2025550123",
		"tel:+1-202-555-0123":    "2025550123",
		"TEL:+12025550123;ext=9": "2025550123",
		"+44 20 7946 0000":       "+442079460000",
		"SIP:Bob@Example.com":    "sip:Bob@Example.com",
		" 555-1234 ":             "555-1234",
		"call me":                "call me",
		"mailto:x@y":             "mailto:x@y",
		"+1 102 555 0123":        "+1 102 555 0123",
	}
	for in, want := range tests {
		if got := NormalizeNumber(in); got != want {
			t.Errorf("NormalizeNumber(%q) = %q, want %q", in, got, want)
		}
		if got := NormalizeNumber(want); got != want {
			t.Errorf("NormalizeNumber not idempotent on %q: %q", want, got)
		}
	}
}

func FuzzDecode(f *testing.F) {
	var buf bytes.Buffer
	Encode(&buf, []Contact{full(), {Name: "B", Number: "sip:b@example.com"}})
	f.Add(buf.String())
	f.Add("BEGIN:VCARD\nVERSION:3.0\nN:Lee;Sam;;;\nTEL;TYPE=CELL:202-555-0111\nEND:VCARD\n")
	f.Add("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Pat\r\n  Kim\r\nTEL;VALUE=uri;TYPE=\"video,home\";PREF=2:tel:+1-202-555-0198\r\nORG:a\\;b\\\\;c\r\nEND:VCARD\r\n")
	f.Add("BEGIN:VCARD\r\nVERSION:4.0\r\nitem1.TEL;X-A=\"^^^n^'\":2025550123\r\nFN:x\r\nEND:VCARD")
	f.Fuzz(func(t *testing.T, in string) { fuzzDecode(t, in, Encode, Decode, nil) })
}

// FuzzRoundTrip: every valid contact survives export and import.
func FuzzRoundTrip(f *testing.F) {
	c := full()
	f.Add(c.UID, c.Name, c.GivenName, c.FamilyName, c.Number, "cell", c.Phones[0].Number, c.Email, c.Organization, c.Note, true)
	f.Add("", "x", "", "", "2025550123", "video", "sip:a@b", "", "", "", false)
	f.Fuzz(func(t *testing.T, uid, name, given, family, number, ptype, pnumber, email, org, note string, fav bool) {
		c := Normalize(Contact{
			UID: uid, Name: name, GivenName: given, FamilyName: family, Number: number,
			Phones: []Phone{ph(ptype, pnumber)}, Email: email, Organization: org, Note: note, Favorite: fav,
			UpdatedAt: time.Unix(1700000000, 0).UTC(),
		})
		if Validate(c) != nil {
			return
		}
		var buf bytes.Buffer
		if err := Encode(&buf, []Contact{c}); err != nil {
			t.Fatal(err)
		}
		got, err := Decode(&buf, 1, 1<<20)
		if err != nil {
			t.Fatalf("decode: %v\n%s", err, buf.String())
		}
		if d := cmp.Diff([]Contact{c}, got, stored); d != "" {
			t.Fatalf("(-want +got):\n%s\n%s", d, buf.String())
		}
	})
}
