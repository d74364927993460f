package siptest

import "testing"

// TestDigest checks the answer against RFC 2617 section 3.5's worked
// example (same user, password, nonce, cnonce and nc), so every client
// built on it computes what a server expects.
func TestDigest(t *testing.T) {
	challenge := `Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"`
	got := Digest(challenge, "Mufasa", "Circle Of Life", "GET", "/dir/index.html", "0a4f113b", 1)
	want := `Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", response="6629fae49393a05397450978507c4ef1", algorithm=MD5, cnonce="0a4f113b", opaque="5ccc069c403ebaf9f0171e9517f40e41", qop=auth, nc=00000001`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
