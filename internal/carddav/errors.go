package carddav

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/emersion/go-webdav"

	"github.com/z5vrs/z5/internal/clip"
)

// XML namespaces.
const (
	nsDAV     = "DAV:"
	nsCardDAV = "urn:ietf:params:xml:ns:carddav"
	nsCS      = "http://calendarserver.org/ns/"
	// nsZ5 holds the human-readable <message> of DAV:error bodies.
	nsZ5 = "http://z5.invalid/ns/dav"
)

// Preconditions and postconditions (RFC 4918 section 16) we report.
var (
	condValidData       = xml.Name{Space: nsCardDAV, Local: "valid-address-data"}
	condSupportedData   = xml.Name{Space: nsCardDAV, Local: "supported-address-data"}
	condConversion      = xml.Name{Space: nsCardDAV, Local: "supported-address-data-conversion"}
	condMaxSize         = xml.Name{Space: nsCardDAV, Local: "max-resource-size"}
	condNoUIDConflict   = xml.Name{Space: nsCardDAV, Local: "no-uid-conflict"}
	condFilter          = xml.Name{Space: nsCardDAV, Local: "supported-filter"}
	condCollation       = xml.Name{Space: nsCardDAV, Local: "supported-collation"}
	condValidSyncToken  = xml.Name{Space: nsDAV, Local: "valid-sync-token"}
	condSupportedReport = xml.Name{Space: nsDAV, Local: "supported-report"}
	condQuota           = xml.Name{Space: nsDAV, Local: "quota-not-exceeded"}
	condProtected       = xml.Name{Space: nsDAV, Local: "cannot-modify-protected-property"}
)

// davError is an error with its HTTP answer. With a condition, the body is
// a DAV:error element naming it; otherwise plain text.
type davError struct {
	status int
	cond   xml.Name // zero: none
	href   string   // inside the condition (no-uid-conflict)
	allow  string   // Allow header for 405
	msg    string
}

func (e *davError) Error() string { return strconv.Itoa(e.status) + " " + e.msg }

// Unwrap exposes go-webdav's HTTP error, so Backend errors keep their
// status when the Backend is served by go-webdav's own handler.
func (e *davError) Unwrap() error { return webdav.NewHTTPError(e.status, errors.New(e.msg)) }

func notFound(format string, args ...any) *davError {
	return &davError{status: http.StatusNotFound, msg: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *davError {
	return &davError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

var errInternal = &davError{status: http.StatusInternalServerError, msg: "the server failed to handle the request; try again later"}

// writeError answers with err. An error that is not a *davError is a
// server fault: logged, and answered without its text.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	de, ok := errors.AsType[*davError](err)
	if !ok {
		h.log.Error("carddav request failed", "method", r.Method, "path", clip.String(r.URL.Path, 80), "error", err)
		de = errInternal
	}
	hd := w.Header()
	if de.allow != "" {
		hd.Set("Allow", de.allow)
	}
	if de.status == http.StatusUnauthorized {
		hd.Add("WWW-Authenticate", `Basic realm="Z5 address book", charset="UTF-8"`)
		hd.Add("WWW-Authenticate", `Bearer realm="mcs"`)
	}
	hd.Set("Cache-Control", "no-store")
	if de.cond == (xml.Name{}) {
		body := de.msg + "\n"
		hd.Set("Content-Type", "text/plain; charset=utf-8")
		hd.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(de.status)
		if r.Method != http.MethodHead {
			_, _ = w.Write([]byte(body))
		}
		return
	}
	x := newXMLWriter()
	x.open(xml.Name{Space: nsDAV, Local: "error"}, true)
	if de.href != "" {
		x.open(de.cond, false)
		x.textElem(xml.Name{Space: nsDAV, Local: "href"}, de.href)
		x.close(de.cond)
	} else {
		x.empty(de.cond)
	}
	x.textElem(xml.Name{Space: nsZ5, Local: "message"}, de.msg)
	x.close(xml.Name{Space: nsDAV, Local: "error"})
	x.send(w, r, de.status)
}
