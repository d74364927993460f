// Package siptest holds what raw SIP clients in tests and load generators
// share, so each speaks the protocol the same way.
package siptest

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"strings"
)

// Digest answers a 401 challenge for method on uri (RFC 2617 MD5 with
// qop=auth), with client nonce cnonce and nonce count nc, as the value of an
// Authorization header.
func Digest(challenge, user, pass, method, uri, cnonce string, nc int) string {
	param := func(k string) string {
		_, rest, ok := strings.Cut(challenge, k+`="`)
		if !ok {
			return ""
		}
		v, _, _ := strings.Cut(rest, `"`)
		return v
	}
	h := func(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
	realm, nonce, opaque := param("realm"), param("nonce"), param("opaque")
	ncs := fmt.Sprintf("%08x", nc)
	resp := h(h(user+":"+realm+":"+pass) + ":" + nonce + ":" + ncs + ":" + cnonce + ":auth:" + h(method+":"+uri))
	return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=MD5, cnonce="%s", opaque="%s", qop=auth, nc=%s`,
		user, realm, nonce, uri, resp, cnonce, opaque, ncs)
}
