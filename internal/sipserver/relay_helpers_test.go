package sipserver

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/acd"
	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/store"
)

// Relay call tests: the interpreter queue on one node, stations and
// callers as sipgo phones, the voice trunk a sipgo UAS on loopback. The
// ring timeout and wrap-up are configured short; nothing asserts how fast
// anything happens.

const testRing = time.Second

// relayEnv is an env with the interpreter center on and, when tr is not
// nil, the fake trunk as [trunk] (911 routed to it as user "911").
func relayEnv(t *testing.T, tr *fakeTrunk, mod func(*Config)) *env {
	t.Helper()
	return newEnv(t, func(c *Config) {
		c.ACD = config.ACD{RingTimeout: testRing, MaxWait: time.Minute, WrapUp: 100 * time.Millisecond}
		c.Trunk.Allow = []string{"127.0.0.2/32"}
		if tr != nil {
			c.Trunk.Address = "sip:" + tr.addr + ";transport=tcp"
			c.Trunk.Routes = []config.TrunkRoute{{Match: "911", Target: "sip:911@" + tr.addr + ";transport=tcp"}}
		}
		if mod != nil {
			mod(c)
		}
	})
}

// station provisions, registers and signs in an interpreter station.
func station(t *testing.T, e *env, caID string, state string) *phone {
	t.Helper()
	num := store.StationNumber(caID)
	ctx := context.Background()
	cu, err := e.st.CreateCustomer(ctx, store.Customer{Username: "interpreter-" + caID, Role: store.RoleInterpreter, CAID: caID})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.AddNumber(ctx, store.Number{Number: num, CustomerID: cu.ID}); err != nil {
		t.Fatal(err)
	}
	e.provision(num, store.DeviceSIP, "st"+caID, "pw-"+caID)
	p := newPhone(t, e, num, "st"+caID, "pw-"+caID)
	if res := p.register(600); res.StatusCode != 200 {
		t.Fatalf("station %s register: %d", caID, res.StatusCode)
	}
	setAgent(t, e, caID, state)
	return p
}

func setAgent(t *testing.T, e *env, caID, state string) {
	t.Helper()
	if _, err := e.st.SetAgentState(context.Background(), caID, state, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	e.srv.WakeACD()
}

func agentState(t *testing.T, e *env, caID string) acd.Agent {
	t.Helper()
	a, err := e.st.Agent(context.Background(), caID)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// caller provisions and registers a customer's phone.
func caller(t *testing.T, e *env, number, user string) *phone {
	t.Helper()
	e.provision(number, store.DeviceSIP, user, "pw-"+user)
	p := newPhone(t, e, number, user, "pw-"+user)
	if res := p.register(600); res.StatusCode != 200 {
		t.Fatalf("%s register: %d", user, res.StatusCode)
	}
	return p
}

// queuedCall is a call placed into the queue: its 182 positions as they
// come, and its outcome.
type queuedCall struct {
	callID    string
	positions chan int
	done      <-chan callResult
	cancel    context.CancelFunc
}

// callQueued places a call to target (with extra headers) and reports
// every 182 Queued.
func (p *phone) callQueued(t *testing.T, target string, extra ...sipmsg.Header) *queuedCall {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	q := &queuedCall{positions: make(chan int, 32), cancel: cancel}
	done := make(chan callResult, 1)
	q.done = done
	sess, err := p.dcli.WriteInvite(ctx, p.inviteRequest(target, p.sdp(), extra...))
	if err != nil {
		t.Fatal(err)
	}
	q.callID = sess.InviteRequest.CallID().Value()
	go func() {
		err := sess.WaitAnswer(ctx, sipgo.AnswerOptions{Username: p.user, Password: p.pass,
			OnResponse: func(res *sipmsg.Response) error {
				if res.StatusCode == 182 {
					if h := res.GetHeader("X-Z5-Queue-Position"); h != nil {
						n, _ := strconv.Atoi(h.Value())
						if !strings.Contains(res.Reason, "position "+h.Value()) {
							n = -1 // the reason phrase must say it too
						}
						q.positions <- n
					}
				}
				return nil
			}})
		if err == nil {
			err = sess.Ack(context.Background())
		}
		done <- callResult{sess, err}
	}()
	return q
}

// position waits for the next 182 Queued and checks its position.
func (q *queuedCall) position(t *testing.T, want int, what string) {
	t.Helper()
	if got := wait(t, q.positions, what); got != want {
		t.Fatalf("%s: position %d, want %d", what, got, want)
	}
}

// header is a header's value ("" when absent).
func header(m interface{ GetHeader(string) sipmsg.Header }, name string) string {
	if h := m.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// fakeTrunk is the carrier's gateway: a SIP UAS on loopback TCP that
// answers every INVITE with PCMU audio and hands it to the test.
type fakeTrunk struct {
	addr    string
	invites chan *sipmsg.Request
	// challenge: an INVITE without Proxy-Authorization gets 407 (realm
	// "carrier", nonce "n0nce").
	challenge  bool
	challenged chan struct{}
}

func newFakeTrunk(t *testing.T) *fakeTrunk {
	return newFakeTrunkOpts(t, false)
}

func newFakeTrunkOpts(t *testing.T, challenge bool) *fakeTrunk {
	t.Helper()
	return newFakeTrunkTLS(t, challenge, nil)
}

// newFakeTrunkTLS is the fake gateway over TLS with tlsConf (nil: TCP).
func newFakeTrunkTLS(t *testing.T, challenge bool, tlsConf *tls.Config) *fakeTrunk {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("fake-trunk"), sipgo.WithUserAgentHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := sipgo.NewClient(ua)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rtp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ft := &fakeTrunk{addr: l.Addr().String(), invites: make(chan *sipmsg.Request, 8), challenge: challenge,
		challenged: make(chan struct{}, 8)}
	contact := sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port,
		UriParams: sipmsg.NewParams()}}
	if tlsConf != nil {
		contact.Address.UriParams.Add("transport", "tls")
	} else {
		contact.Address.UriParams.Add("transport", "tcp")
	}
	dsrv := sipgo.NewDialogServerCache(cli, contact)
	srv.OnInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		if ft.challenge && req.GetHeader("Proxy-Authorization") == nil {
			res := sipmsg.NewResponseFromRequest(req, 407, "Proxy Authentication Required", nil)
			res.AppendHeader(sipmsg.NewHeader("Proxy-Authenticate", `Digest realm="carrier", nonce="n0nce", qop="auth", algorithm=MD5`))
			tx.Respond(res)
			ft.challenged <- struct{}{}
			return
		}
		ft.invites <- req
		dlg, err := dsrv.ReadInvite(req, tx)
		if err != nil {
			tx.Respond(sipmsg.NewResponseFromRequest(req, 500, err.Error(), nil))
			return
		}
		sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio " +
			strconv.Itoa(rtp.LocalAddr().(*net.UDPAddr).Port) + " RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
		for _, m := range strings.Split(string(req.Body()), "\n")[1:] {
			if strings.HasPrefix(m, "m=video") {
				sdp += "m=video 0 RTP/AVP 96\r\n"
			}
		}
		dlg.RespondSDP([]byte(sdp))
		<-tx.Done()
	})
	srv.OnAck(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) { dsrv.ReadAck(req, tx) })
	srv.OnBye(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		if err := dsrv.ReadBye(req, tx); err != nil {
			tx.Respond(sipmsg.NewResponseFromRequest(req, 481, "No Dialog", nil))
		}
	})
	served := make(chan struct{})
	go func() {
		defer close(served)
		if tlsConf != nil {
			srv.ServeTLS(tls.NewListener(l, tlsConf))
			return
		}
		srv.ServeTCP(l)
	}()
	t.Cleanup(func() {
		l.Close()
		ua.Close()
		rtp.Close()
		<-served
	})
	return ft
}

// secondLeg has a station place the second leg of relayCall to target.
func (p *phone) secondLeg(target, relayCall string) <-chan callResult {
	ch := make(chan callResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// Video too: the MCS must offer the trunk audio only.
		offer := append(p.sdp(), "m=video 9 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"...)
		sess, err := p.dcli.WriteInvite(ctx, p.inviteRequest(target, offer, sipmsg.NewHeader("X-Z5-Relay-Call", relayCall)))
		if err == nil {
			if err = sess.WaitAnswer(ctx, sipgo.AnswerOptions{Username: p.user, Password: p.pass}); err == nil {
				err = sess.Ack(ctx)
			}
		}
		ch <- callResult{sess, err}
	}()
	return ch
}
