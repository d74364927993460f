package webphone

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/pki"
	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/wire/zdialwire"
)

// fakeRegistrar answers OPTIONS and REGISTER with 200 on loopback TCP (or
// TLS) and counts the REGISTERs and CRLF pings it reads.
type fakeRegistrar struct {
	addr      netip.AddrPort
	registers atomic.Int32
	pings     atomic.Int32
	last      atomic.Pointer[seenRegister]
}

// seenRegister is what the registrar saw of the latest REGISTER.
type seenRegister struct {
	transport string // the transport it arrived on
	via       string // the Via's transport
	contact   string
	source    string // the flow's remote address
}

func startRegistrar(t *testing.T) *fakeRegistrar { return startRegistrarTLS(t, nil) }

// startRegistrarTLS serves over TLS with tc, over TCP when tc is nil.
func startRegistrarTLS(t *testing.T, tc *tls.Config) *fakeRegistrar {
	t.Helper()
	f := &fakeRegistrar{}
	ua, err := sipgo.NewUA(sipgo.WithUserAgentTransportLayerOptions(sipmsg.WithTransportLayerReadFilter(
		func(_ sipmsg.TransportReadProps, data []byte) ([]byte, error) {
			if len(data) >= 4 && len(bytes.TrimSpace(data)) == 0 {
				f.pings.Add(1)
			}
			return data, nil
		})))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	srv.OnOptions(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		tx.Respond(sipmsg.NewResponseFromRequest(req, 200, "OK", nil))
	})
	srv.OnRegister(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		f.registers.Add(1)
		seen := &seenRegister{transport: req.Transport(), source: req.Source()}
		if v := req.Via(); v != nil {
			seen.via = v.Transport
		}
		if c := req.Contact(); c != nil {
			seen.contact = c.Value()
		}
		f.last.Store(seen)
		tx.Respond(sipmsg.NewResponseFromRequest(req, 200, "OK", nil))
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = netip.MustParseAddrPort(l.Addr().String())
	done := make(chan struct{})
	if tc != nil {
		l = tls.NewListener(l, tc)
		go func() { defer close(done); srv.ServeTLS(l) }()
	} else {
		go func() { defer close(done); srv.ServeTCP(l) }()
	}
	t.Cleanup(func() { l.Close(); ua.Close(); <-done })
	return f
}

// TestKeepaliveLeavesFlowWritable: after CRLF pings whose write deadline
// has long passed, the flow still carries SIP (a refresh REGISTER), and
// closing the user agent un-registers and ends its goroutine.
func TestKeepaliveLeavesFlowWritable(t *testing.T) {
	reg := startRegistrar(t)
	g, err := New(Config{WebPhone: config.DefaultWebPhone(), Bind: netip.MustParseAddr("127.0.0.1"),
		RTP: config.PortRange{Min: 20000, Max: 39999}, Domain: "mcs.z5.test"},
		Deps{Sessions: fakeSessions{}, API: http404{}, ZDial: http404{}, SIP: func() netip.AddrPort { return reg.addr }})
	if err != nil {
		t.Fatal(err)
	}
	g.keepalive, g.pingTimeout = 10*time.Millisecond, 20*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tb := &tab{g: g, ctx: ctx, cancel: cancel, sess: store.Session{Number: "2025550102"}}
	ua, err := newSIPUA(ctx, tb, msg{SIP: &zdialwire.SIPCreds{Username: "u", Password: "p"}, License: "lic",
		Instance: "urn:uuid:00000000-0000-0000-0000-000000000001"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for reg.pings.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if reg.pings.Load() < 3 {
		t.Fatalf("%d pings arrived", reg.pings.Load())
	}
	cancel() // stop pinging, then wait past the last ping's deadline
	<-ua.done
	time.Sleep(3 * g.pingTimeout)
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	if err := ua.register(rctx, 300); err != nil {
		t.Fatalf("REGISTER after the pings: %v", err)
	}
	before := reg.registers.Load()
	ua.close()
	if reg.registers.Load() != before+1 {
		t.Errorf("close sent %d REGISTERs, want 1 (the un-register)", reg.registers.Load()-before)
	}
}

// TestRevokedSessionEndsTab: at each registration refresh the tab's MCS
// session is looked up again; while it holds the tab refreshes, once it
// is gone (signed out elsewhere, revoked) the tab ends.
func TestRevokedSessionEndsTab(t *testing.T) {
	reg := startRegistrar(t)
	g, err := New(Config{WebPhone: config.DefaultWebPhone(), Bind: netip.MustParseAddr("127.0.0.1"),
		RTP: config.PortRange{Min: 20000, Max: 39999}, Domain: "mcs.z5.test"},
		Deps{Sessions: fakeSessions{token: "good-token"}, API: http404{}, ZDial: http404{}, SIP: func() netip.AddrPort { return reg.addr }})
	if err != nil {
		t.Fatal(err)
	}
	g.refresh = 10 * time.Millisecond
	for _, token := range []string{"good-token", "revoked-token"} {
		ctx, cancel := context.WithCancel(context.Background())
		tb := &tab{g: g, ctx: ctx, cancel: cancel, sess: store.Session{Number: "2025550102"}, tokenHash: store.TokenHash(token)}
		ua, err := newSIPUA(ctx, tb, msg{SIP: &zdialwire.SIPCreds{Username: "u", Password: "p"}, License: "lic",
			Instance: "urn:uuid:00000000-0000-0000-0000-000000000001"})
		if err != nil {
			t.Fatal(err)
		}
		before := reg.registers.Load()
		deadline := time.Now().Add(10 * time.Second)
		if token == "good-token" {
			for reg.registers.Load() < before+3 && ctx.Err() == nil && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if ctx.Err() != nil || reg.registers.Load() < before+3 {
				t.Errorf("valid session: tab ended %v, %d refreshes", ctx.Err() != nil, reg.registers.Load()-before)
			}
		} else {
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Second):
				t.Error("revoked session: tab still open")
			}
		}
		cancel()
		ua.close()
	}
}

// TestRegistersOverTLS: where the node serves SIP over TLS a tab
// registers there, not on the plain listener, with TLS in its Via and
// Contact, from the media address, pinging inside TLS; the server is
// verified against the deployment CA for the MCS name, so a certificate
// of another CA, or one for another name, fails registration saying why.
// With no TLS listener the tab registers over TCP as before.
func TestRegistersOverTLS(t *testing.T) {
	deployment, err := pki.LoadOrCreateCA(t.TempDir(), "Z5 test")
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.LoadOrCreateCA(t.TempDir(), "Someone else")
	if err != nil {
		t.Fatal(err)
	}
	const mcsName = "mcs1.mcs.z5.test"
	serve := func(ca *pki.CA) *fakeRegistrar {
		cert, err := ca.Issue([]string{"lb.mcs.z5.test", "mcs.z5.test", mcsName}, []netip.Addr{netip.MustParseAddr("127.0.0.1")})
		if err != nil {
			t.Fatal(err)
		}
		return startRegistrarTLS(t, pki.ServerTLS(cert))
	}
	// The media address differs from the listener's, so the test sees the
	// flow leave from it.
	bind := netip.MustParseAddr("127.0.0.3")
	open := func(t *testing.T, plain, secure *fakeRegistrar, name string) (*sipUA, error) {
		t.Helper()
		deps := Deps{Sessions: fakeSessions{}, API: http404{}, ZDial: http404{},
			SIP: func() netip.AddrPort { return plain.addr }, SIPTLS: func() netip.AddrPort { return netip.AddrPort{} },
			SIPRoots: deployment.Pool()}
		if secure != nil {
			deps.SIPTLS = func() netip.AddrPort { return secure.addr }
		}
		g, err := New(Config{WebPhone: config.DefaultWebPhone(), Bind: bind,
			RTP: config.PortRange{Min: 20000, Max: 39999}, Domain: "mcs.z5.test", SIPName: name}, deps)
		if err != nil {
			t.Fatal(err)
		}
		g.keepalive, g.pingTimeout = 10*time.Millisecond, time.Second
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		tb := &tab{g: g, ctx: ctx, cancel: cancel, sess: store.Session{Number: "2025550102"}}
		ua, err := newSIPUA(ctx, tb, msg{SIP: &zdialwire.SIPCreds{Username: "u", Password: "p"}, License: "lic",
			Instance: "urn:uuid:00000000-0000-0000-0000-000000000001"})
		if err == nil {
			t.Cleanup(func() { cancel(); ua.close() })
		}
		return ua, err
	}

	t.Run("DeploymentCA", func(t *testing.T) {
		plain, secure := startRegistrar(t), serve(deployment)
		if _, err := open(t, plain, secure, mcsName); err != nil {
			t.Fatalf("register over TLS: %v", err)
		}
		seen := secure.last.Load()
		if seen == nil || plain.registers.Load() != 0 {
			t.Fatalf("REGISTERs: %d over TLS, %d over plain TCP; want them over TLS only", secure.registers.Load(), plain.registers.Load())
		}
		t.Logf("REGISTER over %s from %s, Via %s, Contact %s", seen.transport, seen.source, seen.via, seen.contact)
		if seen.transport != "TLS" || seen.via != "TLS" || !strings.Contains(seen.contact, "transport=tls") {
			t.Errorf("REGISTER: transport %s, Via %s, Contact %s; want TLS throughout", seen.transport, seen.via, seen.contact)
		}
		if host, _, _ := net.SplitHostPort(seen.source); host != bind.String() {
			t.Errorf("the flow comes from %s, want the media address %s", seen.source, bind)
		}
		deadline := time.Now().Add(10 * time.Second)
		for secure.pings.Load() < 2 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if secure.pings.Load() < 2 {
			t.Errorf("%d CRLF pings arrived inside TLS, want >= 2", secure.pings.Load())
		}
	})

	for _, c := range []struct {
		name, server, want string
		ca                 *pki.CA
	}{
		{"OtherCA", mcsName, "certificate signed by unknown authority", other},
		{"OtherName", "mcs9.mcs.z5.test", "mcs9.mcs.z5.test", deployment},
	} {
		t.Run(c.name, func(t *testing.T) {
			plain, secure := startRegistrar(t), serve(c.ca)
			_, err := open(t, plain, secure, c.server)
			t.Logf("error: %v", err)
			if err == nil || !strings.Contains(err.Error(), "SIP over TLS") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("register: %v; want a TLS failure naming %q", err, c.want)
			}
			if n := secure.registers.Load() + plain.registers.Load(); n != 0 {
				t.Errorf("%d REGISTERs arrived; want none (no fallback to plain TCP)", n)
			}
		})
	}

	t.Run("NoTLS", func(t *testing.T) {
		plain := startRegistrar(t)
		if _, err := open(t, plain, nil, mcsName); err != nil {
			t.Fatalf("register over TCP: %v", err)
		}
		if seen := plain.last.Load(); seen == nil || seen.transport != "TCP" || !strings.Contains(seen.contact, "transport=tcp") {
			t.Errorf("REGISTER without a TLS listener: %+v; want plain TCP", seen)
		}
	})
}
