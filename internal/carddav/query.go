package carddav

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/emersion/go-vcard"
	webdavcarddav "github.com/emersion/go-webdav/carddav"

	"github.com/z5vrs/z5/internal/clip"
)

// The CARDDAV:filter of an addressbook-query (RFC 6352 section 10.5),
// matched against cards the way the RFC defines it rather than with
// go-webdav's carddav.Filter, which compares case-sensitively and only the
// first instance of a property (a contact's second TEL would never match).

type queryFilter struct {
	allOf bool // test="allof"; default anyof
	props []propFilter
	limit int // CARDDAV:limit/nresults; 0: none
}

type propFilter struct {
	name       string // vCard property name, upper case
	allOf      bool
	notDefined bool
	texts      []textMatch
	params     []paramFilter
}

type paramFilter struct {
	name       string
	notDefined bool
	text       *textMatch
}

type textMatch struct {
	text   string
	negate bool
	match  string // equals, contains, starts-with, ends-with
	octet  bool   // collation i;octet; default i;unicode-casemap
}

// parseFilter reads an addressbook-query element's filter and limit.
func parseFilter(q *node) (queryFilter, error) {
	var f queryFilter
	fe := q.child(nsCardDAV, "filter")
	if fe == nil {
		return f, badRequest("addressbook-query needs a CARDDAV:filter element (RFC 6352 section 10.3)")
	}
	var err error
	if f.allOf, err = testAttr(fe); err != nil {
		return f, err
	}
	for _, c := range fe.children {
		if !c.is(nsCardDAV, "prop-filter") {
			continue
		}
		pf, err := parsePropFilter(c)
		if err != nil {
			return f, err
		}
		f.props = append(f.props, pf)
	}
	if l := q.child(nsCardDAV, "limit"); l != nil {
		if nr := l.child(nsCardDAV, "nresults"); nr != nil {
			n, err := strconv.Atoi(strings.TrimSpace(nr.text))
			if err != nil || n < 1 {
				return f, badRequest("CARDDAV:nresults %q: want a positive number", clip.String(nr.text, 20))
			}
			f.limit = n
		}
	}
	return f, nil
}

func testAttr(n *node) (allOf bool, err error) {
	switch v, _ := n.attr("test"); v {
	case "", "anyof":
		return false, nil
	case "allof":
		return true, nil
	default:
		return false, badRequest("test=%q: want anyof or allof", clip.String(v, 20))
	}
}

func parsePropFilter(n *node) (propFilter, error) {
	name, _ := n.attr("name")
	if name == "" {
		return propFilter{}, badRequest("CARDDAV:prop-filter needs a name attribute")
	}
	pf := propFilter{name: strings.ToUpper(name)}
	var err error
	if pf.allOf, err = testAttr(n); err != nil {
		return pf, err
	}
	for _, c := range n.children {
		switch {
		case c.is(nsCardDAV, "is-not-defined"):
			pf.notDefined = true
		case c.is(nsCardDAV, "text-match"):
			tm, err := parseTextMatch(c)
			if err != nil {
				return pf, err
			}
			pf.texts = append(pf.texts, tm)
		case c.is(nsCardDAV, "param-filter"):
			pn, _ := c.attr("name")
			if pn == "" {
				return pf, badRequest("CARDDAV:param-filter needs a name attribute")
			}
			pa := paramFilter{name: strings.ToUpper(pn), notDefined: c.child(nsCardDAV, "is-not-defined") != nil}
			if t := c.child(nsCardDAV, "text-match"); t != nil {
				tm, err := parseTextMatch(t)
				if err != nil {
					return pf, err
				}
				pa.text = &tm
			}
			pf.params = append(pf.params, pa)
		}
	}
	return pf, nil
}

func parseTextMatch(n *node) (textMatch, error) {
	tm := textMatch{text: n.text, match: "contains"}
	if v, ok := n.attr("match-type"); ok {
		switch v {
		case "equals", "contains", "starts-with", "ends-with":
			tm.match = v
		default:
			return tm, &davError{status: http.StatusBadRequest, cond: condFilter,
				msg: fmt.Sprintf("match-type %q: want equals, contains, starts-with or ends-with", clip.String(v, 20))}
		}
	}
	switch v, _ := n.attr("negate-condition"); v {
	case "", "no":
	case "yes":
		tm.negate = true
	default:
		return tm, badRequest("negate-condition %q: want yes or no", clip.String(v, 10))
	}
	switch v, _ := n.attr("collation"); v {
	case "", "i;unicode-casemap", "i;ascii-casemap":
	case "i;octet":
		tm.octet = true
	default:
		return tm, &davError{status: http.StatusForbidden, cond: condCollation,
			msg: fmt.Sprintf("collation %q is not supported; use i;unicode-casemap or i;octet", clip.String(v, 40))}
	}
	return tm, nil
}

// matches reports whether card passes the filter; an empty filter passes
// every card.
func (f queryFilter) matches(card vcard.Card) bool {
	if len(f.props) == 0 {
		return true
	}
	for _, pf := range f.props {
		ok := pf.matches(card)
		if ok && !f.allOf {
			return true
		}
		if !ok && f.allOf {
			return false
		}
	}
	return f.allOf
}

func (pf propFilter) matches(card vcard.Card) bool {
	fields := card[pf.name]
	if pf.notDefined {
		return len(fields) == 0
	}
	if len(fields) == 0 {
		return false
	}
	if len(pf.texts) == 0 && len(pf.params) == 0 {
		return true
	}
	// The filter holds when one instance of the property satisfies it.
	for _, fl := range fields {
		if pf.instance(fl) {
			return true
		}
	}
	return false
}

func (pf propFilter) instance(fl *vcard.Field) bool {
	n := 0
	tests := make([]bool, 0, len(pf.texts)+len(pf.params))
	for _, tm := range pf.texts {
		tests = append(tests, tm.matches(fl.Value))
	}
	for _, pa := range pf.params {
		tests = append(tests, pa.matches(fl.Params))
	}
	for _, t := range tests {
		if t {
			n++
		}
	}
	if pf.allOf {
		return n == len(tests)
	}
	return n > 0
}

func (pa paramFilter) matches(params vcard.Params) bool {
	vs := params[pa.name]
	if pa.notDefined {
		return len(vs) == 0
	}
	if len(vs) == 0 {
		return false
	}
	if pa.text == nil {
		return true
	}
	for _, v := range vs {
		if pa.text.matches(v) {
			return true
		}
	}
	return false
}

func (tm textMatch) matches(value string) bool {
	v, t := value, tm.text
	if !tm.octet {
		// i;unicode-casemap (RFC 5051) compares case-insensitively; simple
		// lower-casing covers what address books hold.
		v, t = strings.ToLower(v), strings.ToLower(t)
	}
	var ok bool
	switch tm.match {
	case "equals":
		ok = v == t
	case "starts-with":
		ok = strings.HasPrefix(v, t)
	case "ends-with":
		ok = strings.HasSuffix(v, t)
	default:
		ok = strings.Contains(v, t)
	}
	return ok != tm.negate
}

// fromWebDAV converts go-webdav's query to ours, for Backend callers.
func fromWebDAV(q *webdavcarddav.AddressBookQuery) queryFilter {
	var f queryFilter
	if q == nil {
		return f
	}
	f.allOf, f.limit = q.FilterTest == webdavcarddav.FilterAllOf, q.Limit
	for _, p := range q.PropFilters {
		pf := propFilter{name: strings.ToUpper(p.Name), allOf: p.Test == webdavcarddav.FilterAllOf, notDefined: p.IsNotDefined}
		for _, t := range p.TextMatches {
			pf.texts = append(pf.texts, textMatch{text: t.Text, negate: t.NegateCondition, match: cmpOr(string(t.MatchType), "contains")})
		}
		for _, pa := range p.Params {
			fp := paramFilter{name: strings.ToUpper(pa.Name), notDefined: pa.IsNotDefined}
			if pa.TextMatch != nil {
				fp.text = &textMatch{text: pa.TextMatch.Text, negate: pa.TextMatch.NegateCondition, match: cmpOr(string(pa.TextMatch.MatchType), "contains")}
			}
			pf.params = append(pf.params, fp)
		}
		f.props = append(f.props, pf)
	}
	return f
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// filterObjects returns the objects matching q, at most q.Limit, and
// whether more matched.
func filterObjects(q *webdavcarddav.AddressBookQuery, all []webdavcarddav.AddressObject) ([]webdavcarddav.AddressObject, bool, error) {
	f := fromWebDAV(q)
	var out []webdavcarddav.AddressObject
	for _, ao := range all {
		if !f.matches(ao.Card) {
			continue
		}
		if f.limit > 0 && len(out) == f.limit {
			return out, true, nil
		}
		out = append(out, ao)
	}
	return out, false, nil
}
