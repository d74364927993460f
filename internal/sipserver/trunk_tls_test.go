package sipserver

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/acd"
	"github.com/z5vrs/z5/internal/pki"
)

// TestTrunkTLS: with transport=tls the second leg reaches the gateway
// over TLS when its certificate is signed by [trunk] ca for the expected
// name (server_name, else the address's IP); a certificate of another CA
// or for another name fails the leg with 503 (Voice Trunk Not Trusted),
// a Warning, and z5_trunk_failures_total{reason="tls"}.
func TestTrunkTLS(t *testing.T) {
	carrier, err := pki.LoadOrCreateCA(t.TempDir(), "carrier")
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := pki.LoadOrCreateCA(t.TempDir(), "stranger")
	if err != nil {
		t.Fatal(err)
	}
	caFile := func(ca *pki.CA) string {
		p := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(p, ca.CertPEM(), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	loop := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	for i, tc := range []struct {
		name       string
		signer     *pki.CA
		names      []string
		ips        []netip.Addr
		trust      *pki.CA
		serverName string
		ok         bool
	}{
		{"the carrier's certificate for its IP", carrier, nil, loop, carrier, "", true},
		{"the carrier's certificate for server_name", carrier, []string{"gw.carrier.test"}, nil, carrier, "gw.carrier.test", true},
		{"a certificate of another CA", stranger, nil, loop, carrier, "", false},
		{"a certificate for another name", carrier, []string{"other.carrier.test"}, nil, carrier, "gw.carrier.test", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, err := tc.signer.Issue(tc.names, tc.ips)
			if err != nil {
				t.Fatal(err)
			}
			tr := newFakeTrunkTLS(t, false, pki.ServerTLS(cert))
			e := relayEnv(t, nil, func(c *Config) {
				c.Trunk.Address = "sip:" + tr.addr + ";transport=tls"
				c.Trunk.CA = caFile(tc.trust)
				c.Trunk.ServerName = tc.serverName
			})
			caID := "800" + string(rune('1'+i))
			st := station(t, e, caID, acd.Ready)
			a := caller(t, e, "5552340001", "alice")
			q := a.callQueued(t, hearing)
			first := answerCall(t, st, st.nextCall(5*time.Second), q.done, "the interpreter's answer")
			res := wait(t, st.secondLeg(hearing, q.callID), "the second leg")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			defer first.sess.Bye(ctx)
			if !tc.ok {
				if statusOf(res.err) != 503 || !strings.Contains(res.err.Error(), "Not Trusted") {
					t.Fatalf("second leg to an untrusted gateway: %v, want 503 (Voice Trunk Not Trusted)", res.err)
				}
				if n := metricValue(e, "z5_trunk_failures_total", "reason", "tls"); n != 1 {
					t.Errorf("z5_trunk_failures_total{reason=tls} = %v, want 1", n)
				}
				select {
				case inv := <-tr.invites:
					t.Errorf("an INVITE reached the untrusted gateway: %v", inv)
				default:
				}
				return
			}
			if res.err != nil {
				t.Fatalf("second leg over TLS: %v", res.err)
			}
			inv := wait(t, tr.invites, "the INVITE at the gateway")
			if via := header(inv, "Via"); !strings.HasPrefix(via, "SIP/2.0/TLS ") {
				t.Errorf("the gateway's INVITE has Via %q, want SIP/2.0/TLS", via)
			}
			if u := inv.From().Address.User; u != "5552340001" {
				t.Errorf("From user %q, want the deaf user's number", u)
			}
			if n := metricValue(e, "z5_trunk_failures_total", "reason", "tls"); n != 0 {
				t.Errorf("z5_trunk_failures_total{reason=tls} = %v, want 0", n)
			}
			res.sess.Bye(ctx)
			waitFor(t, "conversation recorded", func() bool {
				rec, _ := e.st.Call(context.Background(), q.callID)
				return !rec.ConversationStart.IsZero() && !rec.ConversationEnd.IsZero()
			})
		})
	}
}
