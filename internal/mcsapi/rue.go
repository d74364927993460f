package mcsapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/z5vrs/z5/internal/store"
)

// handleRUEConfig serves the RFC 9248 section 9 provider configuration
// (docs/rfc9248.md). Without credentials it is the provider's document;
// with an MCS token it also names the subscriber: phone number, display
// name and CardDAV account. A token that is sent must be good: a RUE is
// never silently given the anonymous document instead of its own.
func (s *Service) handleRUEConfig(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.RUE == nil {
		return &apiError{status: http.StatusNotFound, code: "not_found", msg: "this node serves no RUE configuration"}
	}
	doc := s.cfg.RUE
	h := w.Header()
	h.Set("Vary", "Authorization")
	if r.Header.Get("Authorization") != "" {
		var sess store.Session
		err := s.auth(func(_ http.ResponseWriter, _ *http.Request, ss store.Session) error {
			sess = ss
			return nil
		})(w, r)
		if err != nil {
			return err
		}
		name := ""
		cu, err := s.store.Customer(r.Context(), sess.CustomerID)
		switch {
		case err == nil:
			name = cu.DisplayName
		case !errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("rue config: customer %d: %w", sess.CustomerID, err)
		}
		doc = doc.ForSubscriber(sess.Number, name)
		h.Set("Cache-Control", "private, max-age="+strconv.Itoa(int(doc.Lifetime/time.Second)))
	} else {
		h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(doc.Lifetime/time.Second)))
	}
	return writeJSON(w, r, http.StatusOK, doc)
}

// handleRUEProviders serves the RFC 9248 section 9.1 provider list naming
// this deployment.
func (s *Service) handleRUEProviders(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.RUE == nil {
		return &apiError{status: http.StatusNotFound, code: "not_found", msg: "this node serves no RUE configuration"}
	}
	w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(s.cfg.RUE.Lifetime/time.Second)))
	return writeJSON(w, r, http.StatusOK, s.cfg.RUE.Providers(s.cfg.Provider))
}
