package webphone

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/wire/zdialwire"
)

// fakeRegistrar answers OPTIONS and REGISTER with 200 on loopback TCP and
// counts the REGISTERs and CRLF pings it reads.
type fakeRegistrar struct {
	addr      netip.AddrPort
	registers atomic.Int32
	pings     atomic.Int32
}

func startRegistrar(t *testing.T) *fakeRegistrar {
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
		tx.Respond(sipmsg.NewResponseFromRequest(req, 200, "OK", nil))
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = netip.MustParseAddrPort(l.Addr().String())
	done := make(chan struct{})
	go func() { defer close(done); srv.ServeTCP(l) }()
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
