package carddav

import (
	"cmp"
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-vcard"

	"github.com/z5vrs/z5/internal/addressbook"
	"github.com/z5vrs/z5/internal/clip"
	"github.com/z5vrs/z5/internal/httpcond"
	"github.com/z5vrs/z5/internal/store"
)

// prop is one live property of a resource.
type prop struct {
	// write writes the property's content; req is the requested element
	// (address-data carries attributes and children). nil: empty.
	write func(x *xmlWriter, req *node) error
	// hidden properties are left out of DAV:allprop, as RFC 6352 and RFC
	// 6578 ask of the computed ones.
	hidden bool
}

type props map[xml.Name]prop

// propReq is what a PROPFIND or REPORT asks of each resource.
type propReq struct {
	all   bool    // DAV:allprop (or an empty PROPFIND)
	names bool    // DAV:propname
	props []*node // the children of DAV:prop, in request order
}

// parsePropReq reads DAV:prop, DAV:allprop or DAV:propname under el.
func parsePropReq(el *node) (propReq, bool) {
	if p := el.child(nsDAV, "prop"); p != nil {
		return propReq{props: p.children}, true
	}
	if el.child(nsDAV, "allprop") != nil {
		return propReq{all: true}, true
	}
	if el.child(nsDAV, "propname") != nil {
		return propReq{names: true}, true
	}
	return propReq{}, false
}

// addressDataReq is the CARDDAV:address-data element of a request, if any.
func (pr propReq) addressDataReq() *node {
	for _, n := range pr.props {
		if n.is(nsCardDAV, "address-data") {
			return n
		}
	}
	return nil
}

// depth is a Depth header: 0, 1 or infinity (-1).
func parseDepth(v string, def int) (int, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "":
		return def, nil
	case "0":
		return 0, nil
	case "1":
		return 1, nil
	case "infinity":
		return -1, nil
	}
	return 0, badRequest("Depth: %q; want 0, 1 or infinity", clip.String(v, 16))
}

func (h *Handler) propfind(w http.ResponseWriter, r *http.Request, res resource) error {
	depth, err := parseDepth(r.Header.Get("Depth"), -1)
	if err != nil {
		return err
	}
	root, err := readXML(w, r, h.cfg.MaxBody)
	if err != nil {
		return err
	}
	req := propReq{all: true} // RFC 4918 section 9.1: an empty body is allprop
	if root != nil {
		if !root.is(nsDAV, "propfind") {
			return badRequest("a PROPFIND body is a DAV:propfind element, not {%s}%s", clip.String(root.name.Space, 64), clip.String(root.name.Local, 32))
		}
		var ok bool
		if req, ok = parsePropReq(root); !ok {
			return badRequest("DAV:propfind needs a DAV:prop, DAV:allprop or DAV:propname element")
		}
	}
	// address-data is for REPORT only (RFC 6352 section 10.4): objects
	// here do not have it, so a PROPFIND asking for it gets a 404 propstat.
	ctx := r.Context()
	x := newXMLWriter()
	x.open(dav("multistatus"), true)
	href := res.path()
	if res.kind == kindRoot {
		href = r.URL.EscapedPath() // "/" or "/dav/": answer for what was asked
	}
	switch res.kind {
	case kindRoot:
		err = writeResponse(x, href, h.rootProps(res.ownerFrom(ctx)), req)
	case kindPrincipal:
		err = writeResponse(x, href, h.principalProps(res.owner), req)
	case kindHome:
		err = writeResponse(x, href, h.homeProps(res.owner), req)
		if err == nil && depth != 0 {
			err = h.writeBook(ctx, x, res.owner, req, depth == -1)
		}
	case kindBook:
		err = h.writeBook(ctx, x, res.owner, req, depth != 0)
	case kindObject:
		var c store.Contact
		if c, err = h.backend.contact(ctx, res.owner, res.id); err == nil {
			err = writeResponse(x, ObjectPath(c.Owner, c.ID), h.objectProps(c, false), req)
		}
	}
	if err != nil {
		return err
	}
	x.close(dav("multistatus"))
	x.send(w, r, http.StatusMultiStatus)
	return nil
}

// owner of the root is the logged-in number.
func (res resource) ownerFrom(ctx context.Context) string {
	n, _ := OwnerFrom(ctx)
	return n
}

func (h *Handler) writeBook(ctx context.Context, x *xmlWriter, owner string, req propReq, members bool) error {
	if err := writeResponse(x, BookPath(owner), h.bookProps(ctx, owner), req); err != nil {
		return err
	}
	if !members {
		return nil
	}
	cs, err := h.store.ListContacts(ctx, owner)
	if err != nil {
		return fmt.Errorf("list contacts of %s: %w", owner, err)
	}
	for _, c := range cs {
		if err := writeResponse(x, ObjectPath(c.Owner, c.ID), h.objectProps(c, false), req); err != nil {
			return err
		}
	}
	return nil
}

// writeResponse writes one DAV:response with a propstat per status.
func writeResponse(x *xmlWriter, href string, ps props, req propReq) error {
	x.open(dav("response"), false)
	x.textElem(dav("href"), href)
	var found, missing []*node
	switch {
	case req.names || req.all:
		names := make([]xml.Name, 0, len(ps))
		for n, p := range ps {
			if req.names || !p.hidden {
				names = append(names, n)
			}
		}
		slices.SortFunc(names, func(a, b xml.Name) int {
			return cmp.Or(strings.Compare(a.Space, b.Space), strings.Compare(a.Local, b.Local))
		})
		for _, n := range names {
			found = append(found, &node{name: n})
		}
	default:
		for _, n := range req.props {
			if _, ok := ps[n.name]; ok {
				found = append(found, n)
			} else {
				missing = append(missing, n)
			}
		}
	}
	if len(found) > 0 || len(missing) == 0 {
		x.open(dav("propstat"), false)
		x.open(dav("prop"), false)
		for _, n := range found {
			p := ps[n.name]
			if req.names || p.write == nil {
				x.empty(n.name)
				continue
			}
			x.open(n.name, false)
			if err := p.write(x, n); err != nil {
				return err
			}
			x.close(n.name)
		}
		x.close(dav("prop"))
		x.textElem(dav("status"), statusLine(http.StatusOK))
		x.close(dav("propstat"))
	}
	if len(missing) > 0 {
		x.open(dav("propstat"), false)
		x.open(dav("prop"), false)
		for _, n := range missing {
			x.empty(n.name)
		}
		x.close(dav("prop"))
		x.textElem(dav("status"), statusLine(http.StatusNotFound))
		x.close(dav("propstat"))
	}
	x.close(dav("response"))
	return nil
}

// Property writers shared by several resources.

func hrefProp(path string) prop {
	return prop{write: func(x *xmlWriter, _ *node) error {
		x.textElem(dav("href"), path)
		return nil
	}}
}

func textProp(s string) prop {
	return prop{write: func(x *xmlWriter, _ *node) error {
		x.text(s)
		return nil
	}}
}

func resourceType(names ...xml.Name) prop {
	return prop{write: func(x *xmlWriter, _ *node) error {
		for _, n := range names {
			x.empty(n)
		}
		return nil
	}}
}

// privileges is DAV:current-user-privilege-set (RFC 3744 section 5.4):
// clients such as DAVx5 treat a book without write privileges as
// read-only.
func privileges(names ...string) prop {
	return prop{hidden: true, write: func(x *xmlWriter, _ *node) error {
		for _, n := range names {
			x.open(dav("privilege"), false)
			x.empty(dav(n))
			x.close(dav("privilege"))
		}
		return nil
	}}
}

func (h *Handler) common(owner string) props {
	return props{
		dav("current-user-principal"):     hrefProp(PrincipalPath(owner)),
		dav("current-user-privilege-set"): privileges("read", "read-current-user-privilege-set"),
		dav("supported-report-set"):       prop{hidden: true, write: func(*xmlWriter, *node) error { return nil }},
		dav("resourcetype"):               resourceType(dav("collection")),
		carddav("addressbook-home-set"):   {hidden: true, write: hrefProp(HomePath(owner)).write},
		dav("principal-collection-set"):   {hidden: true, write: hrefProp(PathRoot + "principals/").write},
	}
}

func (h *Handler) rootProps(owner string) props { return h.common(owner) }

func (h *Handler) principalProps(owner string) props {
	ps := h.common(owner)
	ps[dav("resourcetype")] = resourceType(dav("collection"), dav("principal"))
	ps[dav("principal-URL")] = hrefProp(PrincipalPath(owner))
	ps[dav("displayname")] = textProp(owner)
	return ps
}

func (h *Handler) homeProps(owner string) props {
	ps := h.common(owner)
	ps[dav("displayname")] = textProp("Address books of " + owner)
	ps[dav("owner")] = hrefProp(PrincipalPath(owner))
	return ps
}

func (h *Handler) bookProps(ctx context.Context, owner string) props {
	ps := h.common(owner)
	ab := h.backend.book(owner)
	rev := func() (int64, error) { return h.backend.bookRev(ctx, owner) }
	ps[dav("resourcetype")] = resourceType(dav("collection"), carddav("addressbook"))
	ps[dav("displayname")] = textProp(ab.Name)
	ps[dav("owner")] = hrefProp(PrincipalPath(owner))
	ps[carddav("addressbook-description")] = textProp(ab.Description)
	ps[dav("current-user-privilege-set")] = privileges("read", "read-current-user-privilege-set", "write", "write-content", "bind", "unbind")
	ps[carddav("supported-address-data")] = prop{hidden: true, write: func(x *xmlWriter, _ *node) error {
		for _, t := range ab.SupportedAddressData {
			x.empty(carddav("address-data-type"), "content-type", t.ContentType, "version", t.Version)
		}
		return nil
	}}
	ps[carddav("max-resource-size")] = prop{hidden: true, write: textProp(strconv.FormatInt(ab.MaxResourceSize, 10)).write}
	ps[dav("supported-report-set")] = prop{hidden: true, write: func(x *xmlWriter, _ *node) error {
		for _, rep := range []xml.Name{carddav("addressbook-query"), carddav("addressbook-multiget"), dav("sync-collection")} {
			x.open(dav("supported-report"), false)
			x.open(dav("report"), false)
			x.empty(rep)
			x.close(dav("report"))
			x.close(dav("supported-report"))
		}
		return nil
	}}
	ps[dav("sync-token")] = prop{hidden: true, write: func(x *xmlWriter, _ *node) error {
		n, err := rev()
		if err != nil {
			return err
		}
		x.text(syncToken(owner, n))
		return nil
	}}
	ps[cs("getctag")] = prop{hidden: true, write: func(x *xmlWriter, _ *node) error {
		n, err := rev()
		if err != nil {
			return err
		}
		x.text(strconv.FormatInt(n, 10))
		return nil
	}}
	return ps
}

// objectProps are a contact's properties; address-data only in a REPORT.
func (h *Handler) objectProps(c store.Contact, report bool) props {
	ps := props{
		dav("resourcetype"):               resourceType(),
		dav("getetag"):                    textProp(httpcond.VersionETag(c.Version)),
		dav("getcontenttype"):             textProp(addressbook.ContentType),
		dav("current-user-principal"):     hrefProp(PrincipalPath(c.Owner)),
		dav("current-user-privilege-set"): privileges("read", "read-current-user-privilege-set", "write", "write-content"),
		dav("getcontentlength"): {write: func(x *xmlWriter, _ *node) error {
			b, err := render(c, v3)
			if err != nil {
				return err
			}
			x.text(strconv.Itoa(len(b)))
			return nil
		}},
	}
	if !c.UpdatedAt.IsZero() {
		ps[dav("getlastmodified")] = textProp(c.UpdatedAt.UTC().Format(http.TimeFormat))
	}
	if report {
		ps[carddav("address-data")] = prop{hidden: true, write: func(x *xmlWriter, req *node) error {
			version, names := addressDataVersion(req), addressDataProps(req)
			card := addressbook.ToVCard(c)
			if version == v3 {
				card = toV3(card)
			}
			if names != nil {
				card = partial(card, names)
			}
			var buf strings.Builder
			if err := addressbook.WriteCard(&buf, card); err != nil {
				return fmt.Errorf("render contact %s/%s: %w", c.Owner, c.ID, err)
			}
			x.text(buf.String())
			return nil
		}}
	}
	return ps
}

// addressDataVersion is the vCard version an address-data element asks
// for; RFC 6352 section 10.4 makes 3.0 the default.
func addressDataVersion(req *node) string {
	if req != nil {
		if v, ok := req.attr("version"); ok && v == v4 {
			return v4
		}
	}
	return v3
}

// addressDataProps are the vCard properties an address-data element
// limits the card to (CARDDAV:prop children); nil means all.
func addressDataProps(req *node) []string {
	if req == nil || req.child(nsCardDAV, "allprop") != nil {
		return nil
	}
	var names []string
	for _, c := range req.children {
		if c.is(nsCardDAV, "prop") {
			if n, ok := c.attr("name"); ok {
				names = append(names, strings.ToUpper(n))
			}
		}
	}
	return names
}

// partial keeps VERSION and the named properties of card (RFC 6352
// section 10.4.2).
func partial(card vcard.Card, names []string) vcard.Card {
	out := vcard.Card{vcard.FieldVersion: card[vcard.FieldVersion]}
	for _, n := range names {
		if f, ok := card[n]; ok {
			out[n] = f
		}
	}
	return out
}

// checkAddressData refuses an address-data request we cannot convert to.
func checkAddressData(req *node) error {
	if req == nil {
		return nil
	}
	ct, _ := req.attr("content-type")
	v, hasV := req.attr("version")
	if (ct != "" && ct != vcard.MIMEType) || (hasV && v != v3 && v != v4) {
		return &davError{status: http.StatusForbidden, cond: condConversion,
			msg: fmt.Sprintf("address-data as %q version %q is not served; ask for text/vcard version 3.0 or 4.0", clip.String(ct, 40), clip.String(v, 10))}
	}
	return nil
}

// proppatch refuses every change: the book's properties are the server's.
func (h *Handler) proppatch(w http.ResponseWriter, r *http.Request, res resource) error {
	root, err := readXML(w, r, h.cfg.MaxBody)
	if err != nil {
		return err
	}
	if root == nil || !root.is(nsDAV, "propertyupdate") {
		return badRequest("a PROPPATCH body is a DAV:propertyupdate element")
	}
	x := newXMLWriter()
	x.open(dav("multistatus"), true)
	x.open(dav("response"), false)
	x.textElem(dav("href"), res.path())
	x.open(dav("propstat"), false)
	x.open(dav("prop"), false)
	for _, op := range root.children {
		if p := op.child(nsDAV, "prop"); p != nil && (op.is(nsDAV, "set") || op.is(nsDAV, "remove")) {
			for _, n := range p.children {
				x.empty(n.name)
			}
		}
	}
	x.close(dav("prop"))
	x.textElem(dav("status"), statusLine(http.StatusForbidden))
	x.close(dav("propstat"))
	x.open(dav("error"), false)
	x.empty(condProtected)
	x.close(dav("error"))
	x.textElem(dav("responsedescription"), "the properties of this address book are set by the server and cannot be changed")
	x.close(dav("response"))
	x.close(dav("multistatus"))
	x.send(w, r, http.StatusMultiStatus)
	return nil
}

// syncToken is the RFC 6578 token of owner's book at rev.
func syncToken(owner string, rev int64) string {
	return SyncTokenPrefix + owner + "/" + strconv.FormatInt(rev, 10)
}
