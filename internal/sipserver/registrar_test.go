package sipserver

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/store"
)

func TestRegisterWithDigest(t *testing.T) {
	e := newEnv(t, nil)
	e.provision("5552340001", store.DeviceSIP, "alice", "secret-a")
	p := newPhone(t, e, "5552340001", "alice", "secret-a")

	// The challenge carries qop=auth, realm and opaque.
	ctx := context.Background()
	res, err := p.cli.Do(ctx, p.registerRequest(600))
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 401 {
		t.Fatalf("first REGISTER: %d %s, want 401", res.StatusCode, res.Reason)
	}
	var algs []string
	for _, h := range res.GetHeaders("WWW-Authenticate") {
		c := h.Value()
		if !strings.Contains(c, `qop="auth"`) || !strings.Contains(c, `realm="mcs.z5.test"`) || !strings.Contains(c, "opaque=") {
			t.Errorf("challenge %q lacks qop, realm or opaque", c)
		}
		_, alg, _ := strings.Cut(c, "algorithm=")
		alg, _, _ = strings.Cut(alg, ",")
		algs = append(algs, alg)
	}
	// A standard SIP device is offered MD5 alone (SIPp, baresip and
	// Linphone compute nothing else and fail on other challenges).
	if got := strings.Join(algs, " "); got != "MD5" {
		t.Fatalf("algorithms for a kind sip device %q", got)
	}
	// A Z5 device gets RFC 8760's order: SHA-256, SHA-512-256, MD5.
	e.provision("5552340009", store.DeviceZ5, "z5dev", "secret-z")
	z := newPhone(t, e, "5552340009", "z5dev", "secret-z")
	zres, err := z.cli.Do(ctx, z.registerRequest(600))
	if err != nil || zres.StatusCode != 401 {
		t.Fatalf("Z5 device REGISTER: %v %v", zres, err)
	}
	algs = algs[:0]
	for _, h := range zres.GetHeaders("WWW-Authenticate") {
		_, alg, _ := strings.Cut(h.Value(), "algorithm=")
		alg, _, _ = strings.Cut(alg, ",")
		algs = append(algs, alg)
	}
	if got := strings.Join(algs, " "); got != "SHA-256 SHA-512-256 MD5" {
		t.Fatalf("algorithms for a Z5 device %q", got)
	}

	res = p.register(600)
	if res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d %s", res.StatusCode, res.Reason)
	}
	c, ok := res.GetHeader("Contact").(*sipmsg.ContactHeader)
	if !ok || c.Address.User != "5552340001" {
		t.Fatalf("200 lists contact %v", res.GetHeader("Contact"))
	}
	if v, _ := c.Params.Get("expires"); v != "600" {
		t.Errorf("contact expires %q, want 600", v)
	}
	regs, err := e.st.Registrations(ctx, "5552340001", time.Now())
	if err != nil || len(regs) != 1 || regs[0].Node != "test" || !strings.HasPrefix(regs[0].FlowID, "TCP/127.0.0.1:") {
		t.Fatalf("location table: %+v %v", regs, err)
	}
	if n := metricValue(e, "z5_sip_registrations"); n != 1 {
		t.Errorf("registrations gauge %v", n)
	}
	if n := metricValue(e, "z5_sip_responses_total", "code", "401"); n != 3 {
		t.Errorf("401 responses counted %v, want 3", n)
	}
}

func TestRegisterRefusals(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxAuthFailures = 3 })
	e.provision("5552340001", store.DeviceSIP, "alice", "secret-a")
	e.provision("5552340002", store.DeviceSIP, "bob", "secret-b")

	t.Run("wrong password, then 403 after repeated failures", func(t *testing.T) {
		p := newPhone(t, e, "5552340001", "alice", "wrong")
		var codes []int
		for i := 0; i < 4; i++ {
			codes = append(codes, p.register(600).StatusCode)
		}
		if fmt.Sprint(codes) != "[401 401 403 403]" {
			t.Fatalf("codes %v, want [401 401 403 403]", codes)
		}
		if n := metricValue(e, "z5_sip_auth_failures_total", "reason", "mismatch"); n != 3 {
			t.Errorf("auth failures %v, want 3", n)
		}
	})
	t.Run("unknown user", func(t *testing.T) {
		p := newPhone(t, e, "5552340001", "mallory", "x")
		if res := p.register(600); res.StatusCode != 401 {
			t.Fatalf("%d, want 401", res.StatusCode)
		}
	})
	t.Run("another number's AOR", func(t *testing.T) {
		p := newPhone(t, e, "5552340001", "bob", "secret-b")
		if res := p.register(600); res.StatusCode != 403 {
			t.Fatalf("%d %s, want 403", res.StatusCode, res.Reason)
		}
	})
	t.Run("interval too brief", func(t *testing.T) {
		p := newPhone(t, e, "5552340002", "bob", "secret-b")
		res := p.register(1)
		if res.StatusCode != 423 || res.GetHeader("Min-Expires") == nil || res.GetHeader("Min-Expires").Value() != "2" {
			t.Fatalf("%d %v, want 423 with Min-Expires: 2", res.StatusCode, res.GetHeader("Min-Expires"))
		}
	})
}

func TestRegisterExpiresAndBindings(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxExpires = 900 })
	e.provision("5552340001", store.DeviceSIP, "alice", "secret-a")
	e.provision("5552340001", store.DeviceSIP, "alice-tablet", "secret-t")
	a := newPhone(t, e, "5552340001", "alice", "secret-a")
	tab := newPhone(t, e, "5552340001", "alice-tablet", "secret-t")
	tab.contact.Address.Port = 6000

	if res := a.register(99999); contactExpires(res, 5999) != "900" {
		t.Fatalf("expires not clamped to 900: %v", res)
	}
	res := tab.register(300)
	if n := len(res.GetHeaders("Contact")); n != 2 {
		t.Fatalf("two devices of one number: 200 lists %d contacts", n)
	}
	if got := len(e.srv.reg.lookup("5552340001")); got != 2 {
		t.Fatalf("bindings %d, want 2", got)
	}
	// Expires: 0 removes the tablet's binding only.
	if res := tab.register(0); res.StatusCode != 200 || len(res.GetHeaders("Contact")) != 1 {
		t.Fatalf("un-register: %v", res)
	}
	// Contact: * with Expires: 0 removes all of the device's bindings.
	req := a.registerRequest(0)
	req.ReplaceHeader(&sipmsg.ContactHeader{Address: sipmsg.Uri{Wildcard: true}})
	ctx := context.Background()
	r1, err := a.cli.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := a.cli.DoDigestAuth(ctx, req, r1, sipgoAuth("alice", "secret-a"))
	if err != nil || r2.StatusCode != 200 || len(r2.GetHeaders("Contact")) != 0 {
		t.Fatalf("Contact: *: %v %v", r2, err)
	}
	if err := a.flushed(ctx); err != nil {
		t.Fatal(err)
	}
	regs, _ := e.st.Registrations(ctx, "5552340001", time.Now())
	if len(regs) != 0 || len(e.srv.reg.lookup("5552340001")) != 0 {
		t.Fatalf("bindings left: %+v", regs)
	}
}

func contactExpires(res *sipmsg.Response, port int) string {
	for _, h := range res.GetHeaders("Contact") {
		if c, ok := h.(*sipmsg.ContactHeader); ok && c.Address.Port == port {
			v, _ := c.Params.Get("expires")
			return v
		}
	}
	return ""
}

func TestBindingEndsWithItsConnection(t *testing.T) {
	e := newEnv(t, nil)
	e.provision("5552340001", store.DeviceSIP, "alice", "secret-a")
	p := newPhone(t, e, "5552340001", "alice", "secret-a")
	if res := p.register(600); res.StatusCode != 200 {
		t.Fatal(res)
	}
	p.ua.Close() // the client's TCP connection goes
	waitFor(t, "binding removed", func() bool {
		regs, _ := e.st.Registrations(context.Background(), "5552340001", time.Now())
		return len(e.srv.reg.lookup("5552340001")) == 0 && len(regs) == 0
	})
}

func TestBindingExpires(t *testing.T) {
	e := newEnv(t, nil)
	e.provision("5552340001", store.DeviceSIP, "alice", "secret-a")
	p := newPhone(t, e, "5552340001", "alice", "secret-a")
	if res := p.register(2); res.StatusCode != 200 {
		t.Fatal(res)
	}
	waitFor(t, "binding expired", func() bool { return len(e.srv.reg.lookup("5552340001")) == 0 })
}

func TestRegisterOverUDPBindsTheSource(t *testing.T) {
	e := newEnv(t, nil)
	e.provision("5552340001", store.DeviceSIP, "alice", "secret-a")
	p := newPhoneOver(t, e, "5552340001", "alice", "secret-a", "UDP")
	if res := p.register(600); res.StatusCode != 200 {
		t.Fatal(res)
	}
	b := e.srv.reg.lookup("5552340001")
	if len(b) != 1 || b[0].flow.transport != "UDP" || !strings.HasPrefix(b[0].flow.dest, "127.0.0.1:") {
		t.Fatalf("binding %+v", b)
	}
}

func TestZ5DeviceNeedsLicense(t *testing.T) {
	e := newEnv(t, nil)
	dev := e.provision("5552340001", store.DeviceZ5, "z5-alice", "secret-a")
	other := e.provision("5552340002", store.DeviceZ5, "z5-bob", "secret-b")
	p := newPhone(t, e, "5552340001", "z5-alice", "secret-a")

	res := p.register(600)
	if res.StatusCode != 403 || !strings.Contains(res.Reason, "License Required") {
		t.Fatalf("without a license: %d %s", res.StatusCode, res.Reason)
	}
	p.license = e.license(other)
	if res := p.register(600); res.StatusCode != 403 || !strings.Contains(res.Reason, "License Invalid") {
		t.Fatalf("with another device's license: %d %s", res.StatusCode, res.Reason)
	}
	p.license = "garbage.token"
	if res := p.register(600); res.StatusCode != 403 || !strings.Contains(res.Reason, "License Invalid") {
		t.Fatalf("with a malformed license: %d %s", res.StatusCode, res.Reason)
	}
	p.license = e.license(dev)
	if res := p.register(600); res.StatusCode != 200 {
		t.Fatalf("with its license: %d %s", res.StatusCode, res.Reason)
	}
}

// digestHeader computes an Authorization value by hand (SHA-256).
func digestHeader(user, pass, nonce, opaque, uri, nc string) string {
	h := func(s string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(s))) }
	ha1 := h(user + ":" + testDomain + ":" + pass)
	resp := h(ha1 + ":" + nonce + ":" + nc + ":cn0nce:auth:" + h("REGISTER:"+uri))
	return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=SHA-256, cnonce="cn0nce", opaque="%s", qop=auth, nc=%s`,
		user, testDomain, nonce, uri, resp, opaque, nc)
}

func challengeParams(res *sipmsg.Response) (nonce, opaque string, stale bool) {
	v := res.GetHeader("WWW-Authenticate").Value()
	get := func(k string) string {
		_, rest, _ := strings.Cut(v, k+`="`)
		val, _, _ := strings.Cut(rest, `"`)
		return val
	}
	return get("nonce"), get("opaque"), strings.Contains(v, "stale=true")
}

func TestDigestReplayAndStaleNonce(t *testing.T) {
	clock := newFakeClock()
	e := newEnvWith(t, func(c *Config) { c.NonceTTL = time.Minute }, func(d *Deps) { d.Now = clock.Now })
	e.provision("5552340001", store.DeviceSIP, "alice", "secret-a")
	p := newPhone(t, e, "5552340001", "alice", "secret-a")
	ctx := context.Background()
	send := func(auth string) *sipmsg.Response {
		t.Helper()
		req := p.registerRequest(600)
		if auth != "" {
			req.AppendHeader(sipmsg.NewHeader("Authorization", auth))
		}
		res, err := p.cli.Do(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	nonce, opaque, _ := challengeParams(send(""))
	auth := digestHeader("alice", "secret-a", nonce, opaque, "sip:"+testDomain, "00000001")
	if res := send(auth); res.StatusCode != 200 {
		t.Fatalf("hand-made digest: %d %s", res.StatusCode, res.Reason)
	}
	// The same nonce and nc again: a replay.
	if res := send(auth); res.StatusCode != 401 {
		t.Fatalf("replayed nc: %d, want 401", res.StatusCode)
	}
	// The next nc of the same nonce is fine.
	if res := send(digestHeader("alice", "secret-a", nonce, opaque, "sip:"+testDomain, "00000002")); res.StatusCode != 200 {
		t.Fatalf("nc 2: %d", res.StatusCode)
	}
	// Past the TTL the nonce is stale: 401 with stale=true.
	clock.Advance(2 * time.Minute)
	res := send(digestHeader("alice", "secret-a", nonce, opaque, "sip:"+testDomain, "00000003"))
	if _, _, stale := challengeParams(res); res.StatusCode != 401 || !stale {
		t.Fatalf("stale nonce: %d stale=%v", res.StatusCode, stale)
	}
	// A nonce this server never issued.
	res = send(digestHeader("alice", "secret-a", "bm90LW91cnM", opaque, "sip:"+testDomain, "00000001"))
	if res.StatusCode != 401 {
		t.Fatalf("foreign nonce: %d", res.StatusCode)
	}
}

// A refresh over the same flow leaves the location-table row alone while
// its lease covers the new expiry: other nodes need to know where a
// device is, not each refresh.
func TestRefreshWritesNoRowWithinLease(t *testing.T) {
	e := newEnv(t, nil)
	e.provision("5552340031", store.DeviceSIP, "lease", "secret-l")
	p := newPhone(t, e, "5552340031", "lease", "secret-l")
	ctx := context.Background()
	row := func() store.Registration {
		t.Helper()
		regs, err := e.st.Registrations(ctx, "5552340031", time.Now())
		if err != nil || len(regs) != 1 {
			t.Fatalf("location table: %+v %v", regs, err)
		}
		return regs[0]
	}
	if res := p.register(600); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d %s", res.StatusCode, res.Reason)
	}
	first := row()
	if lease := time.Until(first.ExpiresAt); lease < 1150*time.Second || lease > 1200*time.Second {
		t.Fatalf("row lease %v after a 600 s registration, want about twice the lifetime", lease)
	}
	for range 3 {
		if res := p.register(600); res.StatusCode != 200 {
			t.Fatalf("refresh: %d %s", res.StatusCode, res.Reason)
		}
	}
	if got := row(); !got.UpdatedAt.Equal(first.UpdatedAt) || !got.ExpiresAt.Equal(first.ExpiresAt) {
		t.Fatalf("refreshes within the lease rewrote the row: %+v, was %+v", got, first)
	}
	// A lifetime beyond the lease is written.
	if res := p.register(3600); res.StatusCode != 200 {
		t.Fatalf("REGISTER 3600: %d %s", res.StatusCode, res.Reason)
	}
	if got := row(); time.Until(got.ExpiresAt) < 7100*time.Second {
		t.Fatalf("row lease %v after a 3600 s registration", time.Until(got.ExpiresAt))
	}
	// Unregistering removes the row at once.
	if res := p.register(0); res.StatusCode != 200 {
		t.Fatalf("unREGISTER: %d %s", res.StatusCode, res.Reason)
	}
	if regs, err := e.st.Registrations(ctx, "5552340031", time.Now()); err != nil || len(regs) != 0 {
		t.Fatalf("location table after unregister: %+v %v", regs, err)
	}
}
