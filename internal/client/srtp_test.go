package client

import "testing"

// TestSRTPPolicy: SRTP is offered by default exactly when signalling is
// TLS, and the modes parse from their names.
func TestSRTPPolicy(t *testing.T) {
	tests := []struct {
		mode    string
		network string
		want    bool
	}{
		{"auto", "tls", true},
		{"", "tls", true},
		{"auto", "tcp", false},
		{"off", "tls", false},
		{"on", "tcp", true},
		{"require", "tcp", true},
		{"REQUIRE", "tls", true},
	}
	for _, tt := range tests {
		m, err := ParseSRTPMode(tt.mode)
		if err != nil {
			t.Fatalf("%q: %v", tt.mode, err)
		}
		p := &Phone{network: tt.network}
		if got := p.offersSRTP(m); got != tt.want {
			t.Errorf("mode %q over %s: offers SRTP %t, want %t", tt.mode, tt.network, got, tt.want)
		}
	}
	if _, err := ParseSRTPMode("maybe"); err == nil {
		t.Error("unknown mode accepted")
	}
}
