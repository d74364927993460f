package addressbook

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-vcard"

	"github.com/z5vrs/z5/internal/clip"
)

// How a contact maps to vCard 4.0:
//
//	UID         UID
//	Name        FN
//	FamilyName  N, first component
//	GivenName   N, second component
//	Number      TEL;VALUE=uri;TYPE=video;PREF=1:tel:+12025550123 (or :sip:...)
//	Phones      TEL;VALUE=uri;TYPE=<type>:tel:+1... , one per phone, in order
//	Email       EMAIL
//	Organization ORG
//	Note        NOTE
//	Favorite    CATEGORIES:favorite
//	UpdatedAt   REV:20240102T150405Z (to the second)
//
// Owner, ID, Version and Rev are the server's bookkeeping and stay out of
// the card. On import the main number is the preferred TEL of TYPE video,
// or else the preferred TEL of any type; TEL values may be tel: URIs or
// plain text in any usual notation.

// ProductID names the software that wrote a card.
const ProductID = "-//Z5//Z5 address book//EN"

// Favorite is the CATEGORIES value marking a favorite; "favorites" and
// "starred", written by other address books, are read as it too.
const Favorite = "favorite"

const revLayout = "20060102T150405Z"

// ToVCard maps a contact to a vCard 4.0 card.
func ToVCard(c Contact) vcard.Card {
	card := make(vcard.Card)
	card.SetValue(vcard.FieldVersion, "4.0")
	card.SetValue(vcard.FieldProductID, ProductID)
	if c.UID != "" {
		card.SetValue(vcard.FieldUID, c.UID)
	}
	card.SetValue(vcard.FieldFormattedName, c.Name)
	card.SetValue(vcard.FieldName, escapeComponent(c.FamilyName)+";"+escapeComponent(c.GivenName)+";;;")
	if c.Number != "" {
		f := telField(c.Number, vcard.TypeVideo)
		f.Params.Set(vcard.ParamPreferred, "1")
		card.Add(vcard.FieldTelephone, f)
	}
	for _, p := range c.Phones {
		card.Add(vcard.FieldTelephone, telField(p.Number, p.Type))
	}
	if c.Email != "" {
		card.SetValue(vcard.FieldEmail, c.Email)
	}
	if c.Organization != "" {
		card.SetValue(vcard.FieldOrganization, escapeComponent(c.Organization))
	}
	if c.Note != "" {
		card.SetValue(vcard.FieldNote, c.Note)
	}
	if c.Favorite {
		card.SetValue(vcard.FieldCategories, Favorite)
	}
	if !c.UpdatedAt.IsZero() {
		card.SetValue(vcard.FieldRevision, c.UpdatedAt.UTC().Format(revLayout))
	}
	return card
}

// telField writes a number as a URI when it is one: tel: for NANP and
// E.164, the SIP URI itself otherwise.
func telField(number, typ string) *vcard.Field {
	f := &vcard.Field{Value: number, Params: vcard.Params{}}
	switch {
	case NumberPattern.MatchString(number):
		f.Value = "tel:+1" + number
		f.Params.Set(vcard.ParamValue, "uri")
	case e164.MatchString(number):
		f.Value = "tel:" + number
		f.Params.Set(vcard.ParamValue, "uri")
	case strings.HasPrefix(number, "sip:") || strings.HasPrefix(number, "sips:"):
		f.Params.Set(vcard.ParamValue, "uri")
	}
	if typ != "" {
		f.Params.Set(vcard.ParamType, typ)
	}
	return f
}

// FromVCard maps a card (vCard 3.0 or 4.0) to a normalized, validated
// contact. A problem is a *PropertyError naming the property.
func FromVCard(card vcard.Card) (Contact, error) {
	var c Contact
	c.UID = card.Value(vcard.FieldUID)
	if n := card.Preferred(vcard.FieldName); n != nil {
		comps := splitCompound(n.Value)
		c.FamilyName = comps[0]
		if len(comps) > 1 {
			c.GivenName = comps[1]
		}
	}
	if len(card[vcard.FieldOrganization]) > 0 {
		var parts []string
		for _, p := range splitCompound(card.Preferred(vcard.FieldOrganization).Value) {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		c.Organization = strings.Join(parts, ", ")
	}
	c.Name = strings.TrimSpace(card.PreferredValue(vcard.FieldFormattedName))
	if c.Name == "" {
		c.Name = strings.TrimSpace(c.GivenName + " " + c.FamilyName)
	}
	if c.Name == "" {
		c.Name = c.Organization
	}

	tels := card[vcard.FieldTelephone]
	main := mainTel(tels)
	telIndex := make([]int, 0, len(tels)) // phone i came from TEL telIndex[i]
	for i, f := range tels {
		if i == main {
			c.Number = NormalizeNumber(f.Value)
			continue
		}
		c.Phones = append(c.Phones, Phone{Type: phoneType(f.Params), Number: NormalizeNumber(f.Value)})
		telIndex = append(telIndex, i)
	}
	c.Email = card.PreferredValue(vcard.FieldEmail)
	var notes []string
	for _, f := range card[vcard.FieldNote] {
		notes = append(notes, f.Value)
	}
	c.Note = strings.Join(notes, "\n")
	for _, f := range card[vcard.FieldCategories] {
		for _, cat := range strings.Split(f.Value, ",") {
			switch strings.ToLower(strings.TrimSpace(cat)) {
			case Favorite, "favorites", "starred":
				c.Favorite = true
			}
		}
	}
	if rev := card.Value(vcard.FieldRevision); rev != "" {
		t, err := parseRev(rev)
		if err != nil {
			return Contact{}, &PropertyError{Property: vcard.FieldRevision, Err: err}
		}
		c.UpdatedAt = t
	}

	c = Normalize(c)
	err := Validate(c)
	if err == nil {
		return c, nil
	}
	var inv Invalid
	if !errors.As(err, &inv) || len(inv) == 0 {
		return Contact{}, err
	}
	// Name the first problem in the card's own terms.
	fe := inv[0]
	pe := &PropertyError{Err: errors.New(fe.Msg)}
	switch {
	case fe.Field == "uid":
		pe.Property = vcard.FieldUID
	case fe.Field == "name":
		pe.Property = vcard.FieldFormattedName
		if c.Name == "" {
			pe.Err = errors.New("missing: every card needs a name (FN, N or ORG)")
		}
	case fe.Field == "given_name":
		pe.Property, pe.Err = vcard.FieldName, fmt.Errorf("given name: %s", fe.Msg)
	case fe.Field == "family_name":
		pe.Property, pe.Err = vcard.FieldName, fmt.Errorf("family name: %s", fe.Msg)
	case fe.Field == "number":
		pe.Property, pe.Index = vcard.FieldTelephone, max(main, 0)
		if main < 0 {
			pe.Err = errors.New("missing: every card needs a videophone number (TEL)")
		}
	case fe.Field == "phones":
		pe.Property = vcard.FieldTelephone
		pe.Err = fmt.Errorf("%d numbers, at most %d", len(tels), MaxPhones+1)
	case strings.HasPrefix(fe.Field, "phones["):
		pe.Property = vcard.FieldTelephone
		var i int
		fmt.Sscanf(fe.Field, "phones[%d]", &i)
		if i < len(telIndex) {
			pe.Index = telIndex[i]
		}
	case fe.Field == "email":
		pe.Property = vcard.FieldEmail
	case fe.Field == "organization":
		pe.Property = vcard.FieldOrganization
	case fe.Field == "note":
		pe.Property = vcard.FieldNote
	default:
		pe.Property, pe.Err = "", fe
	}
	return Contact{}, pe
}

// mainTel picks the contact's videophone number among the TELs: the
// preferred one of TYPE video, else the preferred one overall; -1 when
// there is none.
func mainTel(tels []*vcard.Field) int {
	best, bestPref := -1, 1000
	video := false
	for i, f := range tels {
		v := f.Params.HasType(vcard.TypeVideo)
		if video && !v {
			continue
		}
		p := pref(f.Params)
		if (v && !video) || p < bestPref {
			best, bestPref, video = i, p, v
		}
	}
	return best
}

// pref is a field's preference, 1 (most) to 100 (least): PREF in vCard 4.0,
// TYPE=pref in 3.0.
func pref(p vcard.Params) int {
	if s := p.Get(vcard.ParamPreferred); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 1 && n <= 100 {
			return n
		}
	}
	if p.HasType("pref") {
		return 1
	}
	return 100
}

// phoneType maps TEL's TYPE values to one Phone.Type.
func phoneType(p vcard.Params) string {
	types := p.Types()
	for _, want := range PhoneTypes {
		for _, t := range types {
			// TYPE values may arrive comma-joined in one quoted value.
			for t := range strings.SplitSeq(t, ",") {
				t = strings.TrimSpace(t)
				switch t {
				case "textphone":
					t = "text"
				case "mobile", "iphone":
					t = "cell"
				}
				if t == want {
					return want
				}
			}
		}
	}
	return "voice"
}

func parseRev(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{revLayout, time.RFC3339, "20060102T150405-0700", "20060102T150405", "2006-01-02T15:04:05", "20060102", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a timestamp (want e.g. 20240102T150405Z)", clip.String(s, 40))
}

// escapeComponent escapes one component of a compound value (N, ORG).
func escapeComponent(s string) string {
	if !strings.ContainsAny(s, `\;`) {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, `;`, `\;`).Replace(s)
}

// splitCompound splits a compound value at unescaped ';' and resolves "\;"
// and "\\"; a lone '\' is kept, as go-vcard's Decoder leaves one there. It
// returns at least one component.
func splitCompound(v string) []string {
	var out []string
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && i+1 < len(v) && (v[i+1] == ';' || v[i+1] == '\\'):
			i++
			b.WriteByte(v[i])
		case c == ';':
			out = append(out, b.String())
			b.Reset()
		default:
			b.WriteByte(c)
		}
	}
	return append(out, b.String())
}
