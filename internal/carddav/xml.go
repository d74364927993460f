package carddav

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/z5vrs/z5/internal/clip"
)

// Request bodies are small XML documents; they are read into a tree of
// nodes with bounds on size, element count and depth, then inspected.
// Responses are written by xmlWriter with fixed prefixes, which keeps the
// output readable and byte-for-byte predictable in tests.

const (
	maxXMLNodes = 10000
	maxXMLDepth = 32
)

// node is one element of a request body.
type node struct {
	name     xml.Name
	attrs    []xml.Attr
	children []*node
	text     string
}

func (n *node) is(space, local string) bool { return n.name.Space == space && n.name.Local == local }

// child is the first child named space:local, or nil.
func (n *node) child(space, local string) *node {
	for _, c := range n.children {
		if c.is(space, local) {
			return c
		}
	}
	return nil
}

func (n *node) attr(local string) (string, bool) {
	for _, a := range n.attrs {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// readXML reads a request body as XML, at most max bytes. An empty body is
// (nil, nil).
func readXML(w http.ResponseWriter, r *http.Request, max int64) (*node, error) {
	if r.ContentLength > max {
		return nil, errBodyTooLarge(max)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, errBodyTooLarge(max)
		}
		return nil, badRequest("could not read the request body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	return parseXML(body)
}

func errBodyTooLarge(max int64) *davError {
	return &davError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("the request body is larger than %d bytes", max)}
}

func parseXML(body []byte) (*node, error) {
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.Strict = true
	dec.CharsetReader = func(label string, in io.Reader) (io.Reader, error) {
		if strings.EqualFold(label, "us-ascii") {
			return in, nil
		}
		return nil, fmt.Errorf("encoding %q not supported; send UTF-8", clip.String(label, 32))
	}
	var (
		stack []*node
		root  *node
		count int
	)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, badRequest("the request body is not well-formed XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if count++; count > maxXMLNodes {
				return nil, badRequest("the request body has more than %d XML elements", maxXMLNodes)
			}
			if len(stack) >= maxXMLDepth {
				return nil, badRequest("the request body nests XML deeper than %d elements", maxXMLDepth)
			}
			n := &node{name: t.Name, attrs: t.Attr}
			if len(stack) == 0 {
				if root != nil {
					return nil, badRequest("the request body has more than one document element")
				}
				root = n
			} else {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(t)
			} else if len(bytes.TrimSpace(t)) > 0 {
				return nil, badRequest("the request body has text outside its document element")
			}
		case xml.Directive:
			return nil, badRequest("DOCTYPE and other <!...> declarations are not accepted in requests")
		}
	}
	if root == nil {
		return nil, badRequest("the request body holds no XML element")
	}
	return root, nil
}

// xmlWriter builds a response document. Elements in DAV:, CardDAV and
// CalendarServer namespaces use the prefixes D, C and CS declared on the
// document element; any other namespace is declared where it is used.
type xmlWriter struct {
	b bytes.Buffer
}

var prefixes = map[string]string{nsDAV: "D", nsCardDAV: "C", nsCS: "CS", nsZ5: "Z"}

func newXMLWriter() *xmlWriter {
	x := &xmlWriter{}
	x.b.WriteString(xml.Header)
	return x
}

// tag writes the start of an element, without '>'.
func (x *xmlWriter) tag(n xml.Name, root bool) {
	x.b.WriteByte('<')
	if p, ok := prefixes[n.Space]; ok {
		x.b.WriteString(p + ":" + n.Local)
	} else if n.Space == "" {
		x.b.WriteString(n.Local)
	} else {
		x.b.WriteString("X:" + n.Local + ` xmlns:X="`)
		xml.EscapeText(&x.b, []byte(n.Space))
		x.b.WriteByte('"')
	}
	if root {
		x.b.WriteString(` xmlns:D="DAV:" xmlns:C="` + nsCardDAV + `" xmlns:CS="` + nsCS + `" xmlns:Z="` + nsZ5 + `"`)
	}
}

func (x *xmlWriter) name(n xml.Name) string {
	if p, ok := prefixes[n.Space]; ok {
		return p + ":" + n.Local
	}
	if n.Space == "" {
		return n.Local
	}
	return "X:" + n.Local
}

func (x *xmlWriter) open(n xml.Name, root bool) {
	x.tag(n, root)
	x.b.WriteByte('>')
}

func (x *xmlWriter) close(n xml.Name) {
	x.b.WriteString("</" + x.name(n) + ">")
}

func (x *xmlWriter) empty(n xml.Name, attrs ...string) {
	x.tag(n, false)
	for i := 0; i+1 < len(attrs); i += 2 {
		x.b.WriteString(" " + attrs[i] + `="`)
		xml.EscapeText(&x.b, []byte(attrs[i+1]))
		x.b.WriteByte('"')
	}
	x.b.WriteString("/>")
}

// text writes character data. Only what must be is escaped, so cards stay
// readable; CR is written as a reference, since XML parsers turn a literal
// CRLF into LF and vCard lines end in CRLF.
func (x *xmlWriter) text(s string) {
	for _, r := range s {
		switch {
		case r == '&':
			x.b.WriteString("&amp;")
		case r == '<':
			x.b.WriteString("&lt;")
		case r == '>':
			x.b.WriteString("&gt;")
		case r == '\r':
			x.b.WriteString("&#xD;")
		case r == '\n' || r == '\t' || (r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || r >= 0x10000:
			x.b.WriteRune(r)
		default:
			x.b.WriteRune('\uFFFD') // not an XML character
		}
	}
}

func (x *xmlWriter) textElem(n xml.Name, s string) {
	x.open(n, false)
	x.text(s)
	x.close(n)
}

// send writes the document as the response.
func (x *xmlWriter) send(w http.ResponseWriter, r *http.Request, status int) {
	x.b.WriteByte('\n')
	h := w.Header()
	h.Set("Content-Type", "application/xml; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(x.b.Len()))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(x.b.Bytes())
	}
}

func dav(local string) xml.Name     { return xml.Name{Space: nsDAV, Local: local} }
func carddav(local string) xml.Name { return xml.Name{Space: nsCardDAV, Local: local} }
func cs(local string) xml.Name      { return xml.Name{Space: nsCS, Local: local} }

func statusLine(code int) string {
	return "HTTP/1.1 " + strconv.Itoa(code) + " " + http.StatusText(code)
}
