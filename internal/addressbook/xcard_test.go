package addressbook

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestXCardRoundTrip(t *testing.T) {
	tests := []Contact{
		full(),
		{Name: "Minimal", Number: "2025550123"},
		{Name: "SIP only", Number: "sips:bob@[2001:db8::1]:5061", UID: "x,y;z\\w"},
		{Name: strings.Repeat("名", MaxFieldLen), Number: "9995550100", Note: strings.Repeat("ü", 2047) + "x", Favorite: true},
		{Name: "Commas, everywhere,", GivenName: ",", FamilyName: ";", Organization: ";;", Number: "2125550000", Note: ",;\\"},
		{Name: "Markup <b>&amp;</b> \"quotes\" 'too'", Number: "2025550123", Note: "]]> <!-- not a comment -->\n\t<?pi?>"},
	}
	var all bytes.Buffer
	if err := EncodeXCard(&all, tests); err != nil {
		t.Fatal(err)
	}
	got, err := DecodeXCard(&all, len(tests), 1<<20)
	if err != nil {
		t.Fatalf("decode: %v\n%s", err, all.String())
	}
	if d := cmp.Diff(tests, got, stored); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
}

func TestEncodeXCardGolden(t *testing.T) {
	c := Contact{
		UID: "urn:uuid:5b8c2b7e-6a0e-4a3e-9a39-0f6d2b1f0c11", Name: "Bob Smith", GivenName: "Bob", FamilyName: "Smith", Number: "2025550123",
		Phones: []Phone{ph("voice", "3125550199"), ph("cell", "sip:bob@example.com")}, Email: "bob@example.com", Organization: "Acme; Sales",
		Note: "Prefers ASL, mornings\n<in person>", Favorite: true, UpdatedAt: time.Date(2024, 1, 2, 15, 4, 5, 0, time.UTC),
	}
	want := `<?xml version="1.0" encoding="UTF-8"?>
<vcards xmlns="urn:ietf:params:xml:ns:vcard-4.0">
  <vcard>
    <prodid><text>-//Z5//Z5 address book//EN</text></prodid>
    <uid><uri>urn:uuid:5b8c2b7e-6a0e-4a3e-9a39-0f6d2b1f0c11</uri></uid>
    <fn><text>Bob Smith</text></fn>
    <n><surname>Smith</surname><given>Bob</given><additional/><prefix/><suffix/></n>
    <tel><parameters><pref><integer>1</integer></pref><type><text>video</text></type></parameters><uri>tel:+12025550123</uri></tel>
    <tel><parameters><type><text>voice</text></type></parameters><uri>tel:+13125550199</uri></tel>
    <tel><parameters><type><text>cell</text></type></parameters><uri>sip:bob@example.com</uri></tel>
    <email><text>bob@example.com</text></email>
    <org><text>Acme; Sales</text></org>
    <note><text>Prefers ASL, mornings&#xA;&lt;in person&gt;</text></note>
    <categories><text>favorite</text></categories>
    <rev><timestamp>20240102T150405Z</timestamp></rev>
  </vcard>
</vcards>
`
	var buf bytes.Buffer
	if err := EncodeXCard(&buf, []Contact{c}); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, buf.String()); d != "" {
		t.Errorf("EncodeXCard (-want +got):\n%s", d)
	}
	var empty bytes.Buffer
	EncodeXCard(&empty, nil)
	if want := "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<vcards xmlns=\"urn:ietf:params:xml:ns:vcard-4.0\">\n</vcards>\n"; empty.String() != want {
		t.Errorf("empty book: %q", empty.String())
	}
}

// xCards as RFC 6351 and other software write them.
func TestDecodeXCardForeign(t *testing.T) {
	runDecode(t, DecodeXCard, 10, []decodeCase{
		{
			// RFC 6351 section 7 (the author's card), trimmed of what the
			// book does not keep.
			name: "rfc 6351 example",
			in: `<?xml version="1.0" encoding="UTF-8"?>
<vcards xmlns="urn:ietf:params:xml:ns:vcard-4.0">
  <vcard>
    <fn><text>Simon Perreault</text></fn>
    <n>
      <surname>Perreault</surname>
      <given>Simon</given>
      <additional/>
      <prefix/>
      <suffix>ing. jr</suffix>
      <suffix>M.Sc.</suffix>
    </n>
    <bday><date>--0203</date></bday>
    <gender><sex>M</sex></gender>
    <lang>
      <parameters><pref><integer>1</integer></pref></parameters>
      <language-tag>fr</language-tag>
    </lang>
    <org>
      <parameters><type><text>work</text></type></parameters>
      <text>Viagenie</text>
    </org>
    <adr>
      <parameters>
        <type><text>work</text></type>
        <label><text>Simon Perreault
2875 boul. Laurier, suite D2-630
Quebec, QC, Canada
G1V 2M2</text></label>
      </parameters>
      <pobox/>
      <ext/>
      <street>2875 boul. Laurier, suite D2-630</street>
      <locality>Quebec</locality>
      <region>QC</region>
      <code>G1V 2M2</code>
      <country>Canada</country>
    </adr>
    <tel>
      <parameters>
        <type><text>work</text><text>voice</text></type>
      </parameters>
      <uri>tel:+1-418-656-9254;ext=102</uri>
    </tel>
    <tel>
      <parameters>
        <type><text>work</text><text>text</text><text>voice</text><text>cell</text><text>video</text></type>
      </parameters>
      <uri>tel:+1-418-262-6501</uri>
    </tel>
    <email>
      <parameters><type><text>work</text></type></parameters>
      <text>simon.perreault@viagenie.ca</text>
    </email>
    <geo>
      <parameters><type><text>work</text></type></parameters>
      <uri>geo:46.772673,-71.282945</uri>
    </geo>
    <tz><text>-0500</text></tz>
  </vcard>
</vcards>`,
			want: []Contact{{
				Name: "Simon Perreault", GivenName: "Simon", FamilyName: "Perreault", Organization: "Viagenie",
				Number: "4182626501", Phones: []Phone{ph("work", "4186569254")}, Email: "simon.perreault@viagenie.ca",
			}},
		},
		{
			name: "prefixed namespace, lone vcard, group, extension, comments",
			in: `<?xml version="1.0"?>
<!-- exported -->
<x:vcard xmlns:x="urn:ietf:params:xml:ns:vcard-4.0" xmlns:e="http://example.com/ext">
  <x:group name="item1">
    <x:tel><x:parameters><x:type><x:text>cell</x:text></x:type></x:parameters><x:text>(202) 555-0143</x:text></x:tel>
  </x:group>
  <e:mood>happy</e:mood>
  <x:fn><x:text>Jane Doe</x:text></x:fn>
  <x:categories><x:text>Family</x:text><x:text>Starred</x:text></x:categories>
  <x:rev><x:timestamp>2023-11-05T10:20:30Z</x:timestamp></x:rev>
</x:vcard>`,
			want: []Contact{{Name: "Jane Doe", Number: "2025550143", Favorite: true,
				UpdatedAt: time.Date(2023, 11, 5, 10, 20, 30, 0, time.UTC)}},
		},
	})
}

func TestDecodeXCardErrors(t *testing.T) {
	doc := func(cards ...string) string {
		return `<vcards xmlns="urn:ietf:params:xml:ns:vcard-4.0">` + "\n" + strings.Join(cards, "\n") + "\n</vcards>"
	}
	card := func(props ...string) string { return "<vcard>\n" + strings.Join(props, "\n") + "\n</vcard>" }
	fn := func(s string) string { return "<fn><text>" + s + "</text></fn>" }
	tel := func(s string) string { return "<tel><uri>" + s + "</uri></tel>" }
	ok := card(fn("Ok"), tel("tel:+12025550123"))
	runDecodeErrors(t, DecodeXCard, []decodeErrorCase{
		{"empty", "", "vcard: vcard syntax error: no <vcards> element in input", ErrSyntax},
		{"not xml", "BEGIN:VCARD\r\n", `vcard line 1: vcard syntax error: text "BEGIN:VCARD" outside a value element`, ErrSyntax},
		{"wrong root", `<vcards/>`, `vcard line 1: vcard syntax error: the document element must be <vcards xmlns="urn:ietf:params:xml:ns:vcard-4.0">, not <vcards> without a namespace`, ErrSyntax},
		{"wrong child", doc(`<card/>`), `vcard line 2: vcard syntax error: <vcards> holds <vcard> elements, not <card> in namespace "urn:ietf:params:xml:ns:vcard-4.0"`, ErrSyntax},
		{"no cards", doc(), "vcard: vcard syntax error: no <vcard> in input", ErrSyntax},
		{"unclosed", doc(ok, "<vcard>\n"+fn("x")), "vcard card 2, line 8: vcard syntax error: element <vcard> closed by </vcards>", ErrSyntax},
		{"truncated", `<vcards xmlns="urn:ietf:params:xml:ns:vcard-4.0"><vcard><fn><text>x`, "vcard card 1, line 1: vcard syntax error: unexpected EOF", ErrSyntax},
		{"doctype", `<!DOCTYPE vcards [<!ENTITY a "b">]>` + doc(ok), `vcard line 1: vcard syntax error: <!DOCTYPE vcards [<!ENTITY a "b">]> not allowed in xCard`, ErrSyntax},
		{"entity", doc(card(fn("&a;"), tel("tel:+12025550123"))), "vcard card 1, line 3: vcard syntax error: invalid character entity &a;", ErrSyntax},
		{"nested value", doc(card("<fn><text><b>x</b></text></fn>")), "vcard card 1, line 3: vcard syntax error: <b> inside <text>, which holds text only", ErrSyntax},
		{"bad n", doc(card(fn("x"), "<n><family>x</family></n>", tel("tel:+12025550123"))), "vcard card 1, line 4: N: vcard syntax error: <family> is not a component of <n> (want surname, given, additional, prefix, suffix)", ErrSyntax},
		{"latin1", `<?xml version="1.0" encoding="ISO-8859-1"?>` + doc(ok), `vcard line 1: vcard syntax error: xml: opening charset "ISO-8859-1": encoding "ISO-8859-1" not supported; send UTF-8`, ErrSyntax},
		{"trailing", doc(ok) + "<vcards/>", `vcard line 6: vcard syntax error: <vcards> without a namespace after the document element`, ErrSyntax},
		{"bad tel", doc(ok, card(fn("Bob"), tel("tel:+12025550124"), "<tel><parameters><type><text>cell</text></type></parameters><text>call me</text></tel>")),
			`vcard card 2, line 9: TEL: "call me" is not a 10-digit NANP number, an E.164 number (+442079460000) or a sip: URI`, nil},
		{"no tel", doc(card(fn("Bob"))), "vcard card 1, line 2: TEL: missing: every card needs a videophone number (TEL)", nil},
		{"dup uid", doc(card("<uid><text>a</text></uid>", fn("A"), tel("tel:+12025550123")), card("<uid><text>a</text></uid>", fn("B"), tel("tel:+12025550124"))),
			`vcard card 2, line 8: UID: "a" repeats card 1`, nil},
		{"too many", doc(ok, ok, ok), "vcard card 3, line 10: too many vcards: more than 2", ErrTooManyCards},
		{"too many properties", doc(card(strings.Repeat("<x-a/>", maxProperties+1))), "vcard card 1, line 3: vcard syntax error: more than 500 properties in one card", ErrSyntax},
	})
}

func TestDecodeXCardTooLarge(t *testing.T) {
	var buf bytes.Buffer
	EncodeXCard(&buf, []Contact{{Name: "x", Number: "2025550123"}})
	in := buf.String()
	if _, err := DecodeXCard(strings.NewReader(in), 5, int64(len(in))); err != nil {
		t.Fatalf("exactly at the limit: %v", err)
	}
	if _, err := DecodeXCard(strings.NewReader(in+"\n"), 5, int64(len(in))); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("one byte over: %v, want ErrTooLarge", err)
	}
}

// vCard and xCard agree: a book exported as one and imported as the other
// is the same book.
func TestXCardMatchesVCard(t *testing.T) {
	book := []Contact{full(), {Name: "B", Number: "sip:b@example.com", Phones: []Phone{ph("text", "+442079460000")}}}
	var v, x bytes.Buffer
	Encode(&v, book)
	EncodeXCard(&x, book)
	fromV, err := Decode(&v, 10, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	fromX, err := DecodeXCard(&x, 10, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(fromV, fromX); d != "" {
		t.Errorf("vCard vs xCard (-vcard +xcard):\n%s", d)
	}
}

// FuzzDecodeXCard feeds arbitrary documents: never a panic or a hang, and
// whatever is accepted is valid and survives our own export and import.
func FuzzDecodeXCard(f *testing.F) {
	var buf bytes.Buffer
	EncodeXCard(&buf, []Contact{full(), {Name: "B", Number: "sip:b@example.com"}})
	f.Add(buf.String())
	f.Add(`<vcard xmlns="urn:ietf:params:xml:ns:vcard-4.0"><fn><text>x</text></fn><tel><text>2025550123</text></tel></vcard>`)
	f.Add(`<x:vcards xmlns:x="urn:ietf:params:xml:ns:vcard-4.0"><x:vcard><x:group name="g"><x:tel><x:uri>tel:+12025550123</x:uri></x:tel></x:group><x:n><x:surname>a;b</x:surname><x:given/></x:n></x:vcard></x:vcards>`)
	f.Add(`<vcards xmlns="urn:ietf:params:xml:ns:vcard-4.0"><vcard><fn><text>&#0;</text></fn></vcard></vcards>`)
	// U+FFFE and U+FFFF cannot be written back as XML.
	f.Fuzz(func(t *testing.T, in string) { fuzzDecode(t, in, EncodeXCard, DecodeXCard, xmlSafe) })
}

func xmlSafe(c Contact) bool {
	s := c.UID + c.Name + c.GivenName + c.FamilyName + c.Number + c.Email + c.Organization + c.Note
	for _, p := range c.Phones {
		s += p.Number
	}
	return !strings.ContainsAny(s, "\uFFFE\uFFFF")
}
