package carddav

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-vcard"

	"github.com/z5vrs/z5/internal/addressbook"
	"github.com/z5vrs/z5/internal/clip"
	"github.com/z5vrs/z5/internal/httpcond"
	"github.com/z5vrs/z5/internal/store"
)

// vCard versions a client may ask for. RFC 6352 section 6.1 makes 3.0 the
// one every server must serve, and the default of CARDDAV:address-data
// (section 10.4); 4.0 is what we store and export elsewhere.
const (
	v3 = "3.0"
	v4 = "4.0"
)

// vcardTypes are the media types accepted in a PUT: RFC 6350's, the older
// x- form and vCard 3.0's text/directory.
var vcardTypes = []string{"text/vcard", "text/x-vcard", "text/directory"}

// render writes contact c as a vCard of the given version.
func render(c store.Contact, version string) ([]byte, error) {
	card := addressbook.ToVCard(c)
	if version == v3 {
		card = toV3(card)
	}
	var buf bytes.Buffer
	if err := addressbook.WriteCard(&buf, card); err != nil {
		return nil, fmt.Errorf("render contact %s/%s: %w", c.Owner, c.ID, err)
	}
	return buf.Bytes(), nil
}

// toV3 rewrites a 4.0 card from ToVCard as vCard 3.0 (RFC 2426): TEL has
// no VALUE=uri there, so tel: URIs become the E.164 number they hold and
// SIP URIs plain text, and PREF=1 becomes TYPE=pref.
func toV3(card vcard.Card) vcard.Card {
	card.SetValue(vcard.FieldVersion, v3)
	for _, f := range card[vcard.FieldTelephone] {
		if strings.EqualFold(f.Params.Get(vcard.ParamValue), "uri") {
			f.Value = strings.TrimPrefix(f.Value, "tel:")
			delete(f.Params, vcard.ParamValue)
		}
		if f.Params.Get(vcard.ParamPreferred) != "" {
			delete(f.Params, vcard.ParamPreferred)
			f.Params.Add(vcard.ParamType, "pref")
		}
	}
	return card
}

// acceptVersion picks the vCard version of a GET from its Accept header:
// 4.0 when asked for by a version parameter, else 3.0.
func acceptVersion(accept string) string {
	for part := range strings.SplitSeq(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || (mt != "text/vcard" && mt != "text/*" && mt != "*/*") {
			continue
		}
		if params["version"] == v4 {
			return v4
		}
	}
	return v3
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request, res resource) error {
	if res.kind != kindObject {
		return &davError{status: http.StatusMethodNotAllowed, allow: allowed(res.kind),
			msg: "this is a collection; list it with PROPFIND or REPORT, or export the book from /api/v1/contacts.vcf"}
	}
	c, err := h.backend.contact(r.Context(), res.owner, res.id)
	if err != nil {
		return err
	}
	etag := httpcond.VersionETag(c.Version)
	hd := w.Header()
	hd.Set("Cache-Control", "private, no-cache")
	hd.Set("Vary", "Accept")
	if !httpcond.NoneMatch(r, etag) {
		hd.Set("ETag", etag)
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	body, err := render(c, acceptVersion(r.Header.Get("Accept")))
	if err != nil {
		return err
	}
	hd.Set("Content-Type", addressbook.ContentType)
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	hd.Set("ETag", etag)
	if !c.UpdatedAt.IsZero() {
		hd.Set("Last-Modified", c.UpdatedAt.UTC().Format(http.TimeFormat))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return nil
}

// put stores one vCard. The stored contact keeps only what the address
// book models (see addressbook.ToVCard), so the answer carries no ETag:
// RFC 6352 section 6.3.2.3 forbids one when the stored resource differs
// from what was sent, and clients then fetch it.
func (h *Handler) put(w http.ResponseWriter, r *http.Request, res resource) error {
	if res.kind != kindObject {
		return &davError{status: http.StatusMethodNotAllowed, allow: allowed(res.kind),
			msg: "PUT a vCard to a resource inside the address book, e.g. " + BookPath(res.owner) + "<name>.vcf"}
	}
	if msg := checkName(res.id); msg != "" {
		return &davError{status: http.StatusForbidden, msg: msg}
	}
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !slices.Contains(vcardTypes, mt) {
		return &davError{status: http.StatusUnsupportedMediaType, cond: condSupportedData,
			msg: fmt.Sprintf("Content-Type %q is not accepted; send text/vcard (vCard 3.0 or 4.0)", clip.String(ct, 64))}
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return &davError{status: http.StatusUnsupportedMediaType, cond: condSupportedData,
			msg: fmt.Sprintf("charset %q is not accepted; send UTF-8", clip.String(cs, 32))}
	}
	max := h.cfg.MaxBody
	tooLarge := &davError{status: http.StatusRequestEntityTooLarge, cond: condMaxSize,
		msg: fmt.Sprintf("the vCard is larger than %d bytes, the most one contact may take", max)}
	if r.ContentLength > max {
		return tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return tooLarge
		}
		return badRequest("could not read the request body: %v", err)
	}
	cards, err := addressbook.ReadCards(bytes.NewReader(body), 1, max)
	if err != nil {
		msg := err.Error()
		if errors.Is(err, addressbook.ErrTooManyCards) {
			msg = "a contact resource holds exactly one vCard (RFC 6352 section 5.1); import many at once at /api/v1/contacts.vcf"
		}
		return &davError{status: http.StatusForbidden, cond: condValidData, msg: msg}
	}
	c, created, err := h.backend.putCard(r.Context(), res, cards[0],
		conditions{ifMatch: r.Header.Get("If-Match"), ifNoneMatch: r.Header.Get("If-None-Match")})
	if err != nil {
		return err
	}
	h.log.Debug("carddav put", "number", res.owner, "contact_id", c.ID, "version", c.Version, "created", created)
	w.Header().Set("Cache-Control", "no-store")
	if created {
		w.Header().Set("Location", ObjectPath(res.owner, res.id))
		w.WriteHeader(http.StatusCreated)
		return nil
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request, res resource) error {
	if res.kind != kindObject {
		return &davError{status: http.StatusForbidden, msg: "only contacts can be deleted, not " + res.path()}
	}
	if err := h.backend.deleteContact(r.Context(), res, r.Header.Get("If-Match")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// checkName says what is wrong with a new resource's name, which becomes
// the contact's id in the JSON API too; "" when nothing is.
func checkName(id string) string {
	if !utf8.ValidString(id) {
		return "resource names must be UTF-8"
	}
	for _, r := range id {
		if r == '\\' || r == utf8.RuneError || unicode.IsControl(r) || unicode.IsSpace(r) {
			return fmt.Sprintf("resource name %q has a character %q this address book does not allow in names; name it e.g. <uuid>.vcf", clip.String(id, 64), r)
		}
	}
	return ""
}
