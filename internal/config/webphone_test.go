package config

import (
	"testing"
	"time"
)

// TestWebPhoneDefaultsAndBounds: the defaults are valid and each bound is
// refused just outside its range.
func TestWebPhoneDefaultsAndBounds(t *testing.T) {
	var w WebPhone
	w.applyDefaults()
	if errs := w.validate(); len(errs) != 0 {
		t.Fatalf("defaults invalid: %v", errs)
	}
	if w.MaxTabsPerNumber != 4 || w.MaxMessage != 64<<10 || w.IdleTimeout != 90*time.Second {
		t.Errorf("defaults %+v", w)
	}
	for _, tc := range []struct {
		key string
		set func(*WebPhone)
	}{
		{"webphone.max_tabs", func(w *WebPhone) { w.MaxTabs = -1 }},
		{"webphone.max_tabs_per_number", func(w *WebPhone) { w.MaxTabsPerNumber = 65 }},
		{"webphone.max_message", func(w *WebPhone) { w.MaxMessage = 100 }},
		{"webphone.auth_timeout", func(w *WebPhone) { w.AuthTimeout = time.Hour }},
		{"webphone.idle_timeout", func(w *WebPhone) { w.IdleTimeout = time.Second }},
	} {
		v := w
		tc.set(&v)
		errs := v.validate()
		if len(errs) != 1 || errs[0].Key != tc.key {
			t.Errorf("%s: errors %v", tc.key, errs)
		}
	}
}
