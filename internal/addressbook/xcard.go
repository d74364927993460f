package addressbook

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/emersion/go-vcard"

	"github.com/z5vrs/z5/internal/clip"
)

// xCard (RFC 6351) is vCard 4.0 written as XML; RFC 9248 section 7 uses it
// to import and export a relay user's contact list. A contact maps to the
// same properties as in ToVCard, each written the xCard way:
//
//	<vcards xmlns="urn:ietf:params:xml:ns:vcard-4.0">
//	  <vcard>
//	    <uid><uri>urn:uuid:...</uri></uid>
//	    <fn><text>Bob Smith</text></fn>
//	    <n><surname>Smith</surname><given>Bob</given><additional/><prefix/><suffix/></n>
//	    <tel><parameters><pref><integer>1</integer></pref><type><text>video</text></type></parameters><uri>tel:+12025550123</uri></tel>
//	    ...
//	  </vcard>
//	</vcards>
//
// Reading goes through the same path as vCard: the XML is turned into a
// vcard.Card and mapped by FromVCard, so both formats accept exactly the
// same contacts and report problems the same way (*Error with card, line
// and property). Properties a contact has no field for are ignored, as RFC
// 6351 section 5 asks of unknown elements.

// XCardNamespace is the XML namespace of xCard elements.
const XCardNamespace = "urn:ietf:params:xml:ns:vcard-4.0"

// XCardContentType is the media type of EncodeXCard's output.
const XCardContentType = "application/vcard+xml; charset=utf-8"

// nComponents are the elements of a structured N, in vCard order.
var nComponents = []string{"surname", "given", "additional", "prefix", "suffix"}

// EncodeXCard writes contacts as one xCard document.
func EncodeXCard(w io.Writer, contacts []Contact) error {
	bw := bufio.NewWriter(w)
	bw.WriteString(xml.Header)
	bw.WriteString(`<vcards xmlns="` + XCardNamespace + `">` + "\n")
	for _, c := range contacts {
		if err := writeXCard(bw, ToVCard(c)); err != nil {
			return err
		}
	}
	bw.WriteString("</vcards>\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write xcard: %w", err)
	}
	return nil
}

func writeXCard(w *bufio.Writer, card vcard.Card) error {
	keys := make([]string, 0, len(card))
	for k := range card {
		if k != vcard.FieldVersion { // xCard is always 4.0 and has no VERSION
			keys = append(keys, k)
		}
	}
	sortProperties(keys)
	w.WriteString("  <vcard>\n")
	for _, k := range keys {
		if !validName(k) {
			return fmt.Errorf("write xcard: property name %q", k)
		}
		name := strings.ToLower(k)
		for _, f := range card[k] {
			if f == nil {
				continue
			}
			w.WriteString("    <" + name + ">")
			if err := writeXParams(w, k, f.Params); err != nil {
				return err
			}
			writeXValue(w, k, f)
			w.WriteString("</" + name + ">\n")
		}
	}
	w.WriteString("  </vcard>\n")
	return nil
}

func writeXParams(w *bufio.Writer, prop string, params vcard.Params) error {
	names := make([]string, 0, len(params))
	for k, vs := range params {
		if len(vs) > 0 && !strings.EqualFold(k, vcard.ParamValue) { // VALUE is the value element's name
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return nil
	}
	slices.Sort(names)
	w.WriteString("<parameters>")
	for _, k := range names {
		if !validName(k) {
			return fmt.Errorf("write xcard: %s: parameter name %q", prop, k)
		}
		name := strings.ToLower(k)
		typ := "text"
		if strings.EqualFold(k, vcard.ParamPreferred) {
			typ = "integer"
		}
		w.WriteString("<" + name + ">")
		for _, v := range params[k] {
			writeXText(w, typ, v)
		}
		w.WriteString("</" + name + ">")
	}
	w.WriteString("</parameters>")
	return nil
}

// writeXValue writes a property's value with the value element RFC 6351
// gives it. Compound and list values get one element per component or item.
func writeXValue(w *bufio.Writer, prop string, f *vcard.Field) {
	switch prop {
	case vcard.FieldName:
		comps := splitCompound(f.Value)
		for i, el := range nComponents {
			v := ""
			if i < len(comps) {
				v = comps[i]
			}
			writeXText(w, el, v)
		}
	case vcard.FieldOrganization:
		for _, c := range splitCompound(f.Value) {
			writeXText(w, "text", c)
		}
	case vcard.FieldCategories:
		for _, c := range strings.Split(f.Value, ",") {
			writeXText(w, "text", c)
		}
	case vcard.FieldRevision:
		writeXText(w, "timestamp", f.Value)
	case vcard.FieldUID:
		if isURI(f.Value) {
			writeXText(w, "uri", f.Value)
		} else {
			writeXText(w, "text", f.Value)
		}
	default:
		if strings.EqualFold(f.Params.Get(vcard.ParamValue), "uri") {
			writeXText(w, "uri", f.Value)
		} else {
			writeXText(w, "text", f.Value)
		}
	}
}

// writeXText writes <el>v</el>. Characters XML cannot carry at all
// (U+FFFE, U+FFFF) come out as U+FFFD.
func writeXText(w *bufio.Writer, el, v string) {
	if v == "" {
		w.WriteString("<" + el + "/>")
		return
	}
	w.WriteString("<" + el + ">")
	xml.EscapeText(w, []byte(v))
	w.WriteString("</" + el + ">")
}

// isURI reports whether s starts with a URI scheme (RFC 3986 section 3.1).
func isURI(s string) bool {
	i := strings.IndexByte(s, ':')
	if i < 1 || i == len(s)-1 {
		return false
	}
	for j := 0; j < i; j++ {
		c := s[j]
		alpha := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !alpha && (j == 0 || !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return !strings.ContainsAny(s, " \t\r\n")
}

// DecodeXCard reads an xCard document (a <vcards> element holding <vcard>
// elements, or a lone <vcard>) into contacts, normalized and validated like
// Decode, with the same limits and the same *Error for what is wrong.
func DecodeXCard(r io.Reader, maxCards int, maxBytes int64) ([]Contact, error) {
	cards, err := readXCards(r, maxCards, maxBytes)
	if err != nil {
		return nil, err
	}
	return mapCards(cards)
}

// ReadXCards reads xCard into vcard.Cards (VERSION 4.0 set) without mapping
// them to contacts.
func ReadXCards(r io.Reader, maxCards int, maxBytes int64) ([]vcard.Card, error) {
	pcs, err := readXCards(r, maxCards, maxBytes)
	if err != nil {
		return nil, err
	}
	return cardsOf(pcs), nil
}

// mapCards maps parsed cards to contacts, pinning errors to card, line and
// property, and refuses a UID that repeats.
func mapCards(cards []parsedCard) ([]Contact, error) {
	out := make([]Contact, 0, len(cards))
	uids := make(map[string]int)
	for i, pc := range cards {
		c, err := FromVCard(pc.card)
		if err != nil {
			e := &Error{Card: i + 1, Line: pc.line, Err: err}
			if pe, ok := errors.AsType[*PropertyError](err); ok {
				e.Property, e.Err = pe.Property, pe.Err
				if ls := pc.lines[pe.Property]; pe.Index < len(ls) {
					e.Line = ls[pe.Index]
				}
			}
			return nil, e
		}
		if c.UID != "" {
			if j, dup := uids[c.UID]; dup {
				e := &Error{Card: i + 1, Line: pc.line, Property: "UID", Err: fmt.Errorf("%q repeats card %d", clip.String(c.UID, 40), j)}
				if ls := pc.lines["UID"]; len(ls) > 0 {
					e.Line = ls[0]
				}
				return nil, e
			}
			uids[c.UID] = i + 1
		}
		out = append(out, c)
	}
	return out, nil
}

// xValue is one value element of a property: its name and text.
type xValue struct {
	el   string
	text string
}

// xReader walks an xCard document token by token, keeping line numbers.
type xReader struct {
	dec     *xml.Decoder
	tokLine int // line where the last token next returned starts
}

// line is where the last token read by next starts.
func (x *xReader) line() int { return x.tokLine }

func (x *xReader) syntax(card int, format string, args ...any) error {
	return &Error{Card: card, Line: x.line(), Err: fmt.Errorf("%w: %s", ErrSyntax, fmt.Sprintf(format, args...))}
}

// next returns the next start or end element, skipping comments,
// processing instructions and blank text; other text outside a value is an
// error.
func (x *xReader) next(card int) (xml.Token, error) {
	for {
		x.tokLine, _ = x.dec.InputPos()
		tok, err := x.dec.Token()
		if err == io.EOF {
			return nil, io.EOF
		}
		if err != nil {
			return nil, x.xmlError(card, err)
		}
		switch t := tok.(type) {
		case xml.StartElement, xml.EndElement:
			return t, nil
		case xml.CharData:
			if trimmed := bytes.TrimLeft(t, " \t\r\n"); len(trimmed) > 0 {
				x.tokLine += bytes.Count(t[:len(t)-len(trimmed)], []byte("\n"))
				return nil, x.syntax(card, "text %q outside a value element", clip.String(string(bytes.TrimSpace(t)), 40))
			}
		case xml.Directive:
			// A DOCTYPE could declare entities; xCard needs none.
			return nil, x.syntax(card, "<!%s> not allowed in xCard", clip.String(string(t), 40))
		}
	}
}

func (x *xReader) xmlError(card int, err error) error {
	// encoding/xml quotes the offending input in its message: keep the
	// echo short and valid UTF-8.
	msg := func(m string) string { return strings.ToValidUTF8(clip.String(m, 120), "\uFFFD") }
	if se, ok := errors.AsType[*xml.SyntaxError](err); ok {
		return &Error{Card: card, Line: se.Line, Err: fmt.Errorf("%w: %s", ErrSyntax, msg(se.Msg))}
	}
	return &Error{Card: card, Line: x.line(), Err: fmt.Errorf("%w: %s", ErrSyntax, msg(err.Error()))}
}

// text reads the character data of a simple element up to its end; a child
// element is an error.
func (x *xReader) text(card int, start xml.StartElement) (string, error) {
	var b strings.Builder
	for {
		tok, err := x.dec.Token()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", x.xmlError(card, err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			b.Write(t)
		case xml.EndElement:
			return b.String(), nil
		case xml.StartElement:
			return "", x.syntax(card, "<%s> inside <%s>, which holds text only", clip.String(t.Name.Local, 40), clip.String(start.Name.Local, 40))
		}
	}
}

func readXCards(r io.Reader, maxCards int, maxBytes int64) ([]parsedCard, error) {
	data, err := readLimited(r, maxBytes, "xcard")
	if err != nil {
		return nil, err
	}
	x := &xReader{dec: xml.NewDecoder(bytes.NewReader(data))}
	x.dec.Strict = true
	// Only UTF-8 (and US-ASCII, a subset): no charset conversion.
	x.dec.CharsetReader = func(label string, in io.Reader) (io.Reader, error) {
		if strings.EqualFold(label, "us-ascii") {
			return in, nil
		}
		return nil, fmt.Errorf("encoding %q not supported; send UTF-8", clip.String(label, 40))
	}

	tok, err := x.next(0)
	if err == io.EOF {
		return nil, &Error{Err: fmt.Errorf("%w: no <vcards> element in input", ErrSyntax)}
	}
	if err != nil {
		return nil, err
	}
	root, ok := tok.(xml.StartElement)
	if !ok || root.Name.Space != XCardNamespace || (root.Name.Local != "vcards" && root.Name.Local != "vcard") {
		return nil, x.syntax(0, "the document element must be <vcards xmlns=%q>, not %s", XCardNamespace, describe(tok))
	}
	var cards []parsedCard
	readCard := func(start xml.StartElement) error {
		if len(cards) >= maxCards {
			return &Error{Card: len(cards) + 1, Line: x.line(), Err: fmt.Errorf("%w: more than %d", ErrTooManyCards, maxCards)}
		}
		pc, err := x.card(len(cards)+1, start)
		if err != nil {
			return err
		}
		cards = append(cards, pc)
		return nil
	}
	if root.Name.Local == "vcard" {
		if err := readCard(root); err != nil {
			return nil, err
		}
	} else {
		for {
			tok, err := x.next(0)
			if err != nil {
				if err == io.EOF {
					return nil, x.syntax(0, "</vcards> missing")
				}
				return nil, err
			}
			if _, end := tok.(xml.EndElement); end {
				break
			}
			start := tok.(xml.StartElement)
			if start.Name.Space != XCardNamespace || start.Name.Local != "vcard" {
				return nil, x.syntax(0, "<vcards> holds <vcard> elements, not %s", describe(start))
			}
			if err := readCard(start); err != nil {
				return nil, err
			}
		}
	}
	if tok, err := x.next(0); err != io.EOF {
		if err != nil {
			return nil, err
		}
		return nil, x.syntax(0, "%s after the document element", describe(tok))
	}
	if len(cards) == 0 {
		return nil, &Error{Err: fmt.Errorf("%w: no <vcard> in input", ErrSyntax)}
	}
	return cards, nil
}

// card reads one <vcard> element's properties into a card.
func (x *xReader) card(num int, start xml.StartElement) (parsedCard, error) {
	pc := parsedCard{card: make(vcard.Card), line: x.line(), lines: make(map[string][]int)}
	pc.card.SetValue(vcard.FieldVersion, "4.0")
	nprop := 0
	depth := 0 // inside <group> elements
	for {
		tok, err := x.next(num)
		if err != nil {
			if err == io.EOF {
				return pc, &Error{Card: num, Line: pc.line, Err: fmt.Errorf("%w: </vcard> missing", ErrSyntax)}
			}
			return pc, err
		}
		if _, end := tok.(xml.EndElement); end {
			if depth == 0 {
				return pc, nil
			}
			depth--
			continue
		}
		el := tok.(xml.StartElement)
		if el.Name.Space == XCardNamespace && el.Name.Local == "group" && depth == 0 {
			depth++ // RFC 6351 section 3.3: properties of a group
			continue
		}
		if nprop++; nprop > maxProperties {
			return pc, &Error{Card: num, Line: x.line(), Err: fmt.Errorf("%w: more than %d properties in one card", ErrSyntax, maxProperties)}
		}
		line := x.line()
		if el.Name.Space != XCardNamespace {
			// An extension element in another namespace: ignored.
			if err := x.dec.Skip(); err != nil {
				return pc, x.xmlError(num, err)
			}
			continue
		}
		prop := strings.ToUpper(el.Name.Local)
		if !validName(prop) {
			return pc, x.syntax(num, "element <%s> is not a vCard property name", clip.String(el.Name.Local, 40))
		}
		params, values, err := x.property(num, el)
		if err != nil {
			return pc, err
		}
		f, err := fieldFromX(prop, params, values)
		if err != nil {
			return pc, &Error{Card: num, Line: line, Property: prop, Err: fmt.Errorf("%w: %v", ErrSyntax, err)}
		}
		if f == nil || prop == vcard.FieldVersion {
			continue
		}
		pc.card.Add(prop, f)
		pc.lines[prop] = append(pc.lines[prop], line)
	}
}

// property reads a property element: its <parameters> and value elements.
func (x *xReader) property(num int, start xml.StartElement) (vcard.Params, []xValue, error) {
	var params vcard.Params
	var values []xValue
	for {
		tok, err := x.next(num)
		if err != nil {
			if err == io.EOF {
				err = x.syntax(num, "</%s> missing", clip.String(start.Name.Local, 40))
			}
			return nil, nil, err
		}
		if _, end := tok.(xml.EndElement); end {
			return params, values, nil
		}
		el := tok.(xml.StartElement)
		if el.Name.Space != XCardNamespace {
			if err := x.dec.Skip(); err != nil {
				return nil, nil, x.xmlError(num, err)
			}
			continue
		}
		if el.Name.Local == "parameters" {
			if params, err = x.parameters(num); err != nil {
				return nil, nil, err
			}
			continue
		}
		v, err := x.text(num, el)
		if err != nil {
			return nil, nil, err
		}
		values = append(values, xValue{el: el.Name.Local, text: v})
	}
}

// parameters reads <parameters>: each child names a parameter and holds
// its values as value elements.
func (x *xReader) parameters(num int) (vcard.Params, error) {
	params := make(vcard.Params)
	for {
		tok, err := x.next(num)
		if err != nil {
			if err == io.EOF {
				err = x.syntax(num, "</parameters> missing")
			}
			return nil, err
		}
		if _, end := tok.(xml.EndElement); end {
			return params, nil
		}
		p := tok.(xml.StartElement)
		name := strings.ToUpper(p.Name.Local)
		if p.Name.Space != XCardNamespace || !validName(name) {
			if err := x.dec.Skip(); err != nil {
				return nil, x.xmlError(num, err)
			}
			continue
		}
		for {
			tok, err := x.next(num)
			if err != nil {
				if err == io.EOF {
					err = x.syntax(num, "</%s> missing", clip.String(p.Name.Local, 40))
				}
				return nil, err
			}
			if _, end := tok.(xml.EndElement); end {
				break
			}
			v, err := x.text(num, tok.(xml.StartElement))
			if err != nil {
				return nil, err
			}
			params.Add(name, v)
		}
	}
}

// fieldFromX builds the vcard.Field for a property read from xCard, in
// go-vcard's conventions (see codec.go): compound values joined by ';' with
// components escaped, lists joined by ','. It returns nil for a property
// without a value.
func fieldFromX(prop string, params vcard.Params, values []xValue) (*vcard.Field, error) {
	if params == nil {
		params = make(vcard.Params)
	}
	f := &vcard.Field{Params: params}
	switch prop {
	case vcard.FieldName:
		comps := make([]string, len(nComponents))
		for _, v := range values {
			i := slices.Index(nComponents, v.el)
			if i < 0 {
				return nil, fmt.Errorf("<%s> is not a component of <n> (want %s)", clip.String(v.el, 40), strings.Join(nComponents, ", "))
			}
			if comps[i] != "" {
				comps[i] += ","
			}
			comps[i] += escapeComponent(v.text)
		}
		f.Value = strings.Join(comps, ";")
		return f, nil
	case vcard.FieldOrganization:
		parts := make([]string, 0, len(values))
		for _, v := range values {
			parts = append(parts, escapeComponent(v.text))
		}
		if len(parts) == 0 {
			return nil, nil
		}
		f.Value = strings.Join(parts, ";")
		return f, nil
	case vcard.FieldCategories:
		parts := make([]string, 0, len(values))
		for _, v := range values {
			parts = append(parts, v.text)
		}
		if len(parts) == 0 {
			return nil, nil
		}
		f.Value = strings.Join(parts, ",")
		return f, nil
	}
	if len(values) == 0 {
		return nil, nil
	}
	// A simple property has one value; a structured one we do not map
	// (ADR, GENDER...) is kept as its first component.
	v := values[0]
	f.Value = v.text
	if v.el == "uri" {
		f.Params.Set(vcard.ParamValue, "uri")
	}
	return f, nil
}

func describe(tok xml.Token) string {
	switch t := tok.(type) {
	case xml.StartElement:
		if t.Name.Space == "" {
			return fmt.Sprintf("<%s> without a namespace", clip.String(t.Name.Local, 40))
		}
		return fmt.Sprintf("<%s> in namespace %q", clip.String(t.Name.Local, 40), clip.String(t.Name.Space, 40))
	case xml.EndElement:
		return fmt.Sprintf("</%s>", clip.String(t.Name.Local, 40))
	}
	return "text"
}
