package sipserver

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"
)

// Digest toward the voice trunk: a gateway configured with [trunk]
// username/password challenges our INVITE (401 or 407); the leg is sent
// once more with credentials in a new transaction of the same fork, so the
// station never sees the challenge (RFC 3261 §22.2, §22.3).

// trunkCredentials answers a challenge: the header to add and its value.
// cnonce is the client nonce (random in use; fixed in tests).
func trunkCredentials(res *sipmsg.Response, method, uri, user, pass, cnonce string) (name, value string, err error) {
	hdr, name := "WWW-Authenticate", "Authorization"
	if res.StatusCode == 407 {
		hdr, name = "Proxy-Authenticate", "Proxy-Authorization"
	}
	h := res.GetHeader(hdr)
	if h == nil {
		return "", "", fmt.Errorf("trunk digest: %d without %s", res.StatusCode, hdr)
	}
	ch, err := parseDigestParams(h.Value())
	if err != nil {
		return "", "", fmt.Errorf("trunk digest: %w", err)
	}
	hf, ok := digestHash(ch["algorithm"])
	if !ok || ch["nonce"] == "" {
		return "", "", errors.New("trunk digest: unsupported algorithm or no nonce")
	}
	ha1 := hexHash(hf, user, ch["realm"], pass)
	var b strings.Builder
	fmt.Fprintf(&b, `Digest username="%s", realm="%s", nonce="%s", uri="%s"`, user, ch["realm"], ch["nonce"], uri)
	qops := strings.Split(ch["qop"], ",")
	auth := false
	for _, q := range qops {
		auth = auth || strings.TrimSpace(q) == "auth"
	}
	if auth {
		const nc = "00000001"
		fmt.Fprintf(&b, `, response="%s", qop=auth, nc=%s, cnonce="%s"`,
			digestResponse(hf, ha1, ch["nonce"], nc, cnonce, "auth", method, uri), nc, cnonce)
	} else {
		// RFC 2069 compatibility: no qop.
		fmt.Fprintf(&b, `, response="%s"`, hexHash(hf, ha1, ch["nonce"], hexHash(hf, method, uri)))
	}
	if a := ch["algorithm"]; a != "" {
		fmt.Fprintf(&b, `, algorithm=%s`, a)
	}
	if o, ok := ch["opaque"]; ok {
		fmt.Fprintf(&b, `, opaque="%s"`, o)
	}
	return name, b.String(), nil
}

// retryWithAuth sends a challenged fork to the trunk again with
// credentials; false when it cannot (no credentials, tried once already).
func (s *Server) retryWithAuth(c *call, f *fork, res *sipmsg.Response) bool {
	if !c.trunkAuth || res.StatusCode != 401 && res.StatusCode != 407 {
		return false
	}
	f.mu.Lock()
	tried := f.authTried
	f.authTried = true
	req := f.req
	f.mu.Unlock()
	if tried {
		return false
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	name, value, err := trunkCredentials(res, string(req.Method), req.Recipient.String(),
		s.cfg.Trunk.Username, s.cfg.Trunk.Password, hex.EncodeToString(rnd[:]))
	if err != nil {
		s.log.Warn("trunk challenge not answered", "call_id", c.id, "error", err)
		return false
	}
	r2 := req.Clone()
	r2.AppendHeader(sipmsg.NewHeader(name, value))
	r2.CSeq().SeqNo++
	r2.RemoveHeader("Via") // ours, on top: a new transaction needs a new branch
	r2.PrependHeader(s.newVia(f.b.flow))
	t, err := s.cli.TransactionRequest(s.ctx, r2, noBuild)
	if err != nil {
		s.log.Warn("trunk leg not sent again", "call_id", c.id, "error", err)
		return false
	}
	f.mu.Lock()
	f.tx, f.req = t, r2
	f.mu.Unlock()
	s.log.Info("trunk challenge answered", "call_id", c.id, "status", res.StatusCode)
	return true
}
