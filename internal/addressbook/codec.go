package addressbook

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-vcard"

	"github.com/z5vrs/z5/internal/clip"
)

// The text/vcard wire form (RFC 6350 section 3), written and read here
// rather than by go-vcard's Encoder and Decoder: we need line folding,
// complete escaping, line numbers in errors and input limits that hold
// against hostile uploads (go-vcard unfolds in quadratic time and skips
// lines it cannot parse without a word).
//
// Values in a vcard.Card follow go-vcard's conventions: escapes resolved,
// list properties (CATEGORIES, NICKNAME) joined by ',', and compound
// properties (N, ADR, ORG, GENDER, CLIENTPIDMAP) joined by ';' with a ';'
// or '\' inside a component kept escaped as "\;" or "\\".

const (
	foldAt = 75 // octets per physical line, excluding CRLF (RFC 6350 3.2)
	// maxProperties bounds one card: real cards carry a few dozen, and
	// every property costs memory.
	maxProperties = 500
)

// ContentType is the media type of Encode's output.
const ContentType = "text/vcard; charset=utf-8"

var compound = map[string]bool{"N": true, "ADR": true, "ORG": true, "GENDER": true, "CLIENTPIDMAP": true}

var list = map[string]bool{"CATEGORIES": true, "NICKNAME": true}

// propertyOrder puts the properties people read first; the rest follow
// sorted, so output is deterministic.
var propertyOrder = []string{"VERSION", "PRODID", "KIND", "UID", "FN", "N", "NICKNAME", "TEL", "EMAIL", "IMPP", "ORG", "TITLE", "NOTE", "CATEGORIES", "REV"}

// Encode writes contacts as vCard 4.0, CRLF line ends, folded at 75 octets.
func Encode(w io.Writer, contacts []Contact) error {
	bw := bufio.NewWriter(w)
	for _, c := range contacts {
		if err := writeCard(bw, ToVCard(c)); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write vcard: %w", err)
	}
	return nil
}

// WriteCard writes one card in the wire form. The card must have VERSION.
func WriteCard(w io.Writer, card vcard.Card) error {
	bw := bufio.NewWriter(w)
	if err := writeCard(bw, card); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write vcard: %w", err)
	}
	return nil
}

// sortProperties orders property names as propertyOrder lists them, the
// others after them by name.
func sortProperties(keys []string) {
	slices.SortFunc(keys, func(a, b string) int {
		ia, ib := slices.Index(propertyOrder, a), slices.Index(propertyOrder, b)
		switch {
		case ia >= 0 && ib >= 0:
			return ia - ib
		case ia >= 0:
			return -1
		case ib >= 0:
			return 1
		}
		return strings.Compare(a, b)
	})
}

func writeCard(w *bufio.Writer, card vcard.Card) error {
	if card.Value(vcard.FieldVersion) == "" {
		return errors.New("write vcard: VERSION missing")
	}
	keys := make([]string, 0, len(card))
	for k := range card {
		keys = append(keys, k)
	}
	sortProperties(keys)
	w.WriteString("BEGIN:VCARD\r\n")
	var line strings.Builder
	for _, k := range keys {
		if !validName(k) {
			return fmt.Errorf("write vcard: property name %q", k)
		}
		fields := card[k]
		if k == vcard.FieldVersion {
			fields = fields[:1]
		}
		for _, f := range fields {
			if f == nil {
				continue
			}
			line.Reset()
			if f.Group != "" {
				if !validName(f.Group) {
					return fmt.Errorf("write vcard: %s: group name %q", k, f.Group)
				}
				line.WriteString(f.Group)
				line.WriteByte('.')
			}
			line.WriteString(k)
			if err := writeParams(&line, k, f.Params); err != nil {
				return err
			}
			line.WriteByte(':')
			line.WriteString(escapeValue(k, f))
			writeFolded(w, line.String())
		}
	}
	_, err := w.WriteString("END:VCARD\r\n")
	if err != nil {
		return fmt.Errorf("write vcard: %w", err)
	}
	return nil
}

func writeParams(b *strings.Builder, prop string, params vcard.Params) error {
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		vs := params[k]
		if len(vs) == 0 {
			continue
		}
		if !validName(k) {
			return fmt.Errorf("write vcard: %s: parameter name %q", prop, k)
		}
		b.WriteByte(';')
		b.WriteString(k)
		b.WriteByte('=')
		for i, v := range vs {
			if i > 0 {
				b.WriteByte(',')
			}
			writeParamValue(b, v)
		}
	}
	return nil
}

// writeParamValue quotes a value holding a delimiter and applies RFC 6868
// caret escapes for what quoting cannot carry.
func writeParamValue(b *strings.Builder, v string) {
	quote := strings.ContainsAny(v, ";:,\"^\n\r")
	if !quote {
		b.WriteString(v)
		return
	}
	b.WriteByte('"')
	for _, r := range v {
		switch r {
		case '^':
			b.WriteString("^^")
		case '\n':
			b.WriteString("^n")
		case '"':
			b.WriteString("^'")
		case '\r':
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}

// escapeValue is the inverse of unescapeValue for property prop.
func escapeValue(prop string, f *vcard.Field) string {
	v := f.Value
	if strings.EqualFold(f.Params.Get(vcard.ParamValue), "uri") && !strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == '\\' || r == 0x7f }) {
		// URIs are not escaped (RFC 6350 section 4: escaping applies to text).
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			if compound[prop] {
				// Already escaped per component (see the package notes).
				b.WriteByte('\\')
				if i+1 < len(v) && (v[i+1] == '\\' || v[i+1] == ';') {
					i++
					b.WriteByte(v[i])
				} else {
					b.WriteByte('\\')
				}
				continue
			}
			b.WriteString(`\\`)
		case '\r':
			if i+1 < len(v) && v[i+1] == '\n' {
				i++
			}
			b.WriteString(`\n`)
		case '\n':
			b.WriteString(`\n`)
		case ',':
			if list[prop] {
				b.WriteByte(',')
			} else {
				b.WriteString(`\,`)
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// writeFolded writes one content line, folded so that no physical line
// exceeds foldAt octets and no UTF-8 sequence is split.
func writeFolded(w *bufio.Writer, line string) {
	limit := foldAt
	for len(line) > limit {
		cut := limit
		for cut > 1 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		w.WriteString(line[:cut])
		w.WriteString("\r\n ")
		line = line[cut:]
		limit = foldAt - 1
	}
	w.WriteString(line)
	w.WriteString("\r\n")
}

// Decode reads vCard 3.0 and 4.0 cards (one or many, as exported by
// address books) into contacts, normalized and validated. It reads at most
// maxBytes bytes and maxCards cards; errors are *Error naming the card, line
// and property.
func Decode(r io.Reader, maxCards int, maxBytes int64) ([]Contact, error) {
	cards, err := readCards(r, maxCards, maxBytes)
	if err != nil {
		return nil, err
	}
	return mapCards(cards)
}

// ReadCards reads vCard 3.0 and 4.0 cards without mapping them to contacts,
// with the same limits and errors as Decode.
func ReadCards(r io.Reader, maxCards int, maxBytes int64) ([]vcard.Card, error) {
	pcs, err := readCards(r, maxCards, maxBytes)
	if err != nil {
		return nil, err
	}
	return cardsOf(pcs), nil
}

// cardsOf are the cards of pcs.
func cardsOf(pcs []parsedCard) []vcard.Card {
	out := make([]vcard.Card, len(pcs))
	for i, pc := range pcs {
		out[i] = pc.card
	}
	return out
}

// readLimited reads all of r, what names the format in errors; more than
// maxBytes is ErrTooLarge.
func readLimited(r io.Reader, maxBytes int64, what string) ([]byte, error) {
	if maxBytes < 0 {
		maxBytes = 0
	}
	limit := maxBytes
	if limit < 1<<62 {
		limit++ // one byte more tells "too large" from "exactly the limit"
	}
	data, err := io.ReadAll(io.LimitReader(r, limit))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if int64(len(data)) > maxBytes {
		return nil, &Error{Err: fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxBytes)}
	}
	return data, nil
}

type parsedCard struct {
	card  vcard.Card
	line  int              // line of BEGIN:VCARD
	lines map[string][]int // property -> line of each occurrence
}

func readCards(r io.Reader, maxCards int, maxBytes int64) ([]parsedCard, error) {
	data, err := readLimited(r, maxBytes, "vcard")
	if err != nil {
		return nil, err
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))

	var (
		cards []parsedCard
		cur   *parsedCard
		nprop int
	)
	syntax := func(line int, format string, args ...any) error {
		e := &Error{Line: line, Err: fmt.Errorf("%w: %s", ErrSyntax, fmt.Sprintf(format, args...))}
		if cur != nil {
			e.Card = len(cards) + 1
		}
		return e
	}
	lr := lineReader{s: string(data)}
	for {
		l, num, err := lr.next()
		if err != nil {
			return nil, syntax(num, "%v", err)
		}
		if num == 0 {
			break
		}
		if !utf8.ValidString(l) {
			return nil, syntax(num, "not valid UTF-8")
		}
		group, name, params, raw, err := parseContentLine(l)
		if err != nil {
			return nil, syntax(num, "%v", err)
		}
		switch name {
		case "BEGIN":
			if !strings.EqualFold(raw, "VCARD") {
				return nil, syntax(num, "BEGIN:%s, want BEGIN:VCARD", clip.String(raw, 40))
			}
			if cur != nil {
				return nil, syntax(num, "BEGIN:VCARD inside a card (END:VCARD missing before it?)")
			}
			if len(cards) >= maxCards {
				return nil, &Error{Card: len(cards) + 1, Line: num, Err: fmt.Errorf("%w: more than %d", ErrTooManyCards, maxCards)}
			}
			cur = &parsedCard{card: make(vcard.Card), line: num, lines: make(map[string][]int)}
			nprop = 0
			continue
		case "END":
			if cur == nil {
				return nil, syntax(num, "END:%s without BEGIN:VCARD", clip.String(raw, 40))
			}
			if !strings.EqualFold(raw, "VCARD") {
				return nil, syntax(num, "END:%s, want END:VCARD", clip.String(raw, 40))
			}
			if err := checkVersion(cur); err != nil {
				err.Card = len(cards) + 1
				return nil, err
			}
			cards = append(cards, *cur)
			cur = nil
			continue
		}
		if cur == nil {
			return nil, syntax(num, "%s outside BEGIN:VCARD ... END:VCARD", clip.String(name, 40))
		}
		if nprop++; nprop > maxProperties {
			return nil, &Error{Card: len(cards) + 1, Line: num, Err: fmt.Errorf("%w: more than %d properties in one card", ErrSyntax, maxProperties)}
		}
		if enc := params.Get("ENCODING"); strings.EqualFold(enc, "QUOTED-PRINTABLE") {
			return nil, &Error{Card: len(cards) + 1, Line: num, Property: name, Err: fmt.Errorf("%w: ENCODING=QUOTED-PRINTABLE is vCard 2.1; export as vCard 3.0 or 4.0", ErrSyntax)}
		}
		cur.card.Add(name, &vcard.Field{Value: unescapeValue(name, raw), Params: params, Group: group})
		cur.lines[name] = append(cur.lines[name], num)
	}
	if cur != nil {
		return nil, &Error{Card: len(cards) + 1, Line: cur.line, Err: fmt.Errorf("%w: END:VCARD missing", ErrSyntax)}
	}
	if len(cards) == 0 {
		return nil, &Error{Err: fmt.Errorf("%w: no BEGIN:VCARD in input", ErrSyntax)}
	}
	return cards, nil
}

func checkVersion(pc *parsedCard) *Error {
	vs := pc.card[vcard.FieldVersion]
	if len(vs) == 0 {
		return &Error{Line: pc.line, Property: "VERSION", Err: fmt.Errorf("%w: missing", ErrSyntax)}
	}
	switch v := strings.TrimSpace(vs[0].Value); v {
	case "3.0", "4.0":
		return nil
	default:
		return &Error{Line: pc.lines["VERSION"][0], Property: "VERSION", Err: fmt.Errorf("%w: %q not supported, want 3.0 or 4.0", ErrSyntax, clip.String(v, 40))}
	}
}

// lineReader yields unfolded content lines in linear time.
type lineReader struct {
	s    string
	pos  int
	line int // physical lines consumed
}

func (lr *lineReader) phys() string {
	i := strings.IndexByte(lr.s[lr.pos:], '\n')
	var l string
	if i < 0 {
		l, lr.pos = lr.s[lr.pos:], len(lr.s)
	} else {
		l, lr.pos = lr.s[lr.pos:lr.pos+i], lr.pos+i+1
	}
	lr.line++
	return strings.TrimSuffix(l, "\r")
}

func (lr *lineReader) continues() bool {
	return lr.pos < len(lr.s) && (lr.s[lr.pos] == ' ' || lr.s[lr.pos] == '\t')
}

// next returns the next logical line and the number of its first physical
// line, or num 0 at the end of input.
func (lr *lineReader) next() (l string, num int, err error) {
	for lr.pos < len(lr.s) {
		l := lr.phys()
		num := lr.line
		if strings.TrimSpace(l) == "" {
			continue
		}
		if l[0] == ' ' || l[0] == '\t' {
			return "", num, errors.New("folded continuation line without a property before it")
		}
		if !lr.continues() {
			return l, num, nil
		}
		var b strings.Builder
		b.WriteString(l)
		for lr.continues() {
			b.WriteString(lr.phys()[1:])
		}
		return b.String(), num, nil
	}
	return "", 0, nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// parseContentLine splits [group "."] name *(";" param) ":" value (RFC 6350
// section 3.3). Names are upper-cased; a parameter without "=" is taken as
// a TYPE value, as vCard 2.1 and much 3.0 software writes "TEL;CELL:".
func parseContentLine(l string) (group, name string, params vcard.Params, value string, err error) {
	end := strings.IndexAny(l, ";:")
	if end < 0 {
		return "", "", nil, "", fmt.Errorf("%q has no ':'", clip.String(l, 40))
	}
	name = l[:end]
	if g, n, ok := strings.Cut(name, "."); ok {
		group, name = g, n
		if !validName(group) {
			return "", "", nil, "", fmt.Errorf("group name %q: want letters, digits and '-'", clip.String(group, 40))
		}
	}
	if !validName(name) {
		return "", "", nil, "", fmt.Errorf("property name %q: want letters, digits and '-'", clip.String(name, 40))
	}
	name = strings.ToUpper(name)
	rest := l[end:]
	for rest != "" && rest[0] == ';' {
		rest = rest[1:]
		i := strings.IndexAny(rest, "=;:")
		if i < 0 {
			return "", "", nil, "", fmt.Errorf("%s: parameters have no ':' after them", name)
		}
		pname := rest[:i]
		if pname == "" {
			if rest[i] == '=' {
				return "", "", nil, "", fmt.Errorf("%s: parameter without a name", name)
			}
			rest = rest[i:]
			continue
		}
		if !validName(pname) {
			return "", "", nil, "", fmt.Errorf("%s: parameter name %q: want letters, digits and '-'", name, clip.String(pname, 40))
		}
		if params == nil {
			params = make(vcard.Params)
		}
		if rest[i] != '=' {
			params.Add(vcard.ParamType, pname)
			rest = rest[i:]
			continue
		}
		pname = strings.ToUpper(pname)
		rest = rest[i+1:]
		for {
			var v string
			if rest != "" && rest[0] == '"' {
				j := strings.IndexByte(rest[1:], '"')
				if j < 0 {
					return "", "", nil, "", fmt.Errorf("%s: parameter %s: unterminated quoted value", name, pname)
				}
				v, rest = rest[1:1+j], rest[2+j:]
			} else {
				j := strings.IndexAny(rest, ",;:\"")
				if j < 0 {
					return "", "", nil, "", fmt.Errorf("%s: parameters have no ':' after them", name)
				}
				if rest[j] == '"' {
					return "", "", nil, "", fmt.Errorf("%s: parameter %s: stray '\"'", name, pname)
				}
				v, rest = rest[:j], rest[j:]
			}
			if pname == vcard.ParamType {
				// TYPE="work,voice" is written for TYPE=work,voice.
				for t := range strings.SplitSeq(v, ",") {
					params.Add(pname, t)
				}
			} else {
				params.Add(pname, caretDecode(v))
			}
			if rest == "" || rest[0] != ',' {
				break
			}
			rest = rest[1:]
		}
		if rest == "" || (rest[0] != ';' && rest[0] != ':') {
			return "", "", nil, "", fmt.Errorf("%s: parameter %s: want ';' or ':' after its value", name, pname)
		}
	}
	if rest == "" || rest[0] != ':' {
		return "", "", nil, "", fmt.Errorf("%s: no ':' before the value", name)
	}
	return group, name, params, rest[1:], nil
}

// caretDecode resolves RFC 6868 parameter escapes.
func caretDecode(v string) string {
	if !strings.Contains(v, "^") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '^' && i+1 < len(v) {
			switch v[i+1] {
			case '^':
				b.WriteByte('^')
				i++
				continue
			case 'n', 'N':
				b.WriteByte('\n')
				i++
				continue
			case '\'':
				b.WriteByte('"')
				i++
				continue
			}
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// unescapeValue resolves the backslash escapes of a property value; for a
// compound property "\\" and "\;" stay escaped so components can be told
// apart (see the package notes). Unknown escapes are kept as written.
func unescapeValue(prop, v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	keep := compound[prop]
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '\\' || i+1 == len(v) {
			b.WriteByte(c)
			continue
		}
		i++
		switch n := v[i]; n {
		case 'n', 'N':
			b.WriteByte('\n')
		case ',':
			b.WriteByte(',')
		case ';', '\\':
			if keep {
				b.WriteByte('\\')
			}
			b.WriteByte(n)
		default:
			b.WriteByte('\\')
			b.WriteByte(n)
		}
	}
	return b.String()
}
