package sipserver

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/store"
)

// TestRequireTLS: with sip.require_tls a REGISTER over plain TCP or UDP
// is refused before any challenge; over TLS it is challenged as usual.
func TestRequireTLS(t *testing.T) {
	e := newEnv(t, nil)
	e.provision("5552340101", store.DeviceSIP, "plain", "secret-p")
	srv, ca := e.tlsServer(t, func(c *Config) { c.RequireTLS = true })

	tcp := dialTCP(t, srv.Addr())
	tcp.send(t, registerText("5552340101", "req-tls-1", 1, ""))
	m, err := tcp.read(2 * time.Second)
	if err != nil || status(m) != 403 || !strings.Contains(m.(*sipmsg.Response).Reason, "TLS Required") {
		t.Fatalf("REGISTER over TCP: %v %v, want 403 (TLS Required)", m, err)
	}
	if m.(*sipmsg.Response).GetHeader("WWW-Authenticate") != nil {
		t.Fatal("the refusal over TCP carried a challenge")
	}

	conn, err := tls.Dial("tcp", srv.TLSAddr().String(), &tls.Config{RootCAs: ca.Pool(), ServerName: "mcs1.mcs.z5.test"})
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	defer conn.Close()
	c := &rawTCP{c: conn, par: sipmsg.NewParser().NewSIPStream()}
	c.send(t, strings.Replace(registerText("5552340101", "req-tls-2", 1, ""), "SIP/2.0/TCP", "SIP/2.0/TLS", 1))
	m, err = c.read(2 * time.Second)
	if err != nil || status(m) != 401 {
		t.Fatalf("REGISTER over TLS: %v %v, want 401", m, err)
	}
}

// TestRequireSRTPIs488: with relay.require_srtp an offer of plain RTP is
// refused with 488 naming the policy, and the callee never rings.
func TestRequireSRTPIs488(t *testing.T) {
	e := newEnvOpts(t, envOptions{requireSRTP: true})
	a, b := twoPhones(t, e)
	_, err := a.invite(context.Background(), bob)
	var de *sipgo.ErrDialogResponse
	if !errors.As(err, &de) || de.Res.StatusCode != 488 || !strings.Contains(de.Res.Reason, "Encryption Required") {
		t.Fatalf("plain RTP offer: %v, want 488 (Encryption Required)", err)
	}
	if w := de.Res.GetHeader("Warning"); w == nil || !strings.Contains(w.Value(), "SRTP") {
		t.Fatalf("488 without a Warning naming SRTP: %v", de.Res)
	}
	select {
	case <-b.calls:
		t.Fatal("the callee rang for an offer the policy refuses")
	case <-time.After(300 * time.Millisecond):
	}
}

// TestRequireSRTPPlainAnswerIs488: with relay.require_srtp a callee that
// answers an SRTP offer with plain RTP is hung up, and the caller gets 488
// naming the policy rather than a server error.
func TestRequireSRTPPlainAnswerIs488(t *testing.T) {
	e := newEnvOpts(t, envOptions{requireSRTP: true})
	a, b := twoPhones(t, e)
	a.savp = true
	res := a.inviteAsync(context.Background(), bob)
	ic := b.nextCall(5 * time.Second)
	go ic.dlg.RespondSDP(b.sdp())
	r := wait(t, res, "the caller's final answer")
	var de *sipgo.ErrDialogResponse
	if !errors.As(r.err, &de) || de.Res.StatusCode != 488 || !strings.Contains(de.Res.Reason, "Encryption Required") {
		t.Fatalf("plain RTP answer to an SRTP offer: %v, want 488 (Encryption Required)", r.err)
	}
	if w := de.Res.GetHeader("Warning"); w == nil || !strings.Contains(w.Value(), "SRTP") {
		t.Fatalf("488 without a Warning naming SRTP: %v", de.Res)
	}
}
