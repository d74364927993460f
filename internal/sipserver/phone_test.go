package sipserver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
)

// phone is a SIP endpoint built on sipgo for the integration tests: it
// registers over its own TCP (or UDP) flow, places and receives calls, and
// owns a UDP socket for RTP.
type phone struct {
	t         *testing.T
	number    string
	user      string
	pass      string
	transport string
	server    netip.AddrPort
	// flushed waits until the server's location writer has written what
	// a REGISTER queued, so a test reads the row as another node would.
	flushed func(ctx context.Context) error

	ua   *sipgo.UserAgent
	cli  *sipgo.Client
	srv  *sipgo.Server
	dcli *sipgo.DialogClientCache
	dsrv *sipgo.DialogServerCache

	contact sipmsg.ContactHeader
	rtp     *net.UDPConn
	savp    bool // offer and answer SRTP (RTP/SAVP with a=crypto)
	calls   chan *incoming
	byes    chan *sipmsg.Request
	cancels chan *sipmsg.Request

	mu      sync.Mutex // guards the following
	callID  string
	cseq    uint32
	license string
}

// incoming is an INVITE the test decides about.
type incoming struct {
	req  *sipmsg.Request
	tx   sipmsg.ServerTransaction
	dlg  *sipgo.DialogServerSession
	done chan struct{} // closed by the test when it has answered
}

func (ic *incoming) finish() { close(ic.done) }

func newPhone(t *testing.T, e *env, number, user, pass string) *phone {
	return newPhoneOver(t, e, number, user, pass, "TCP")
}

func newPhoneOver(t *testing.T, e *env, number, user, pass, transport string) *phone {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("test-"+user), sipgo.WithUserAgentHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	rtp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &phone{
		t: t, number: number, user: user, pass: pass, transport: transport, server: e.addr,
		ua: ua, cli: cli, srv: srv, rtp: rtp,
		calls: make(chan *incoming, 4), byes: make(chan *sipmsg.Request, 4), cancels: make(chan *sipmsg.Request, 4),
		callID: "reg-" + randomToken(8),
	}
	p.flushed = func(ctx context.Context) error { return e.srv.reg.w.sync(ctx) }
	params := sipmsg.NewParams()
	params.Add("transport", strings.ToLower(transport))
	p.contact = sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", User: number, Host: "127.0.0.1", Port: 5999, UriParams: params}}
	p.dcli = sipgo.NewDialogClientCache(cli, p.contact)
	p.dsrv = sipgo.NewDialogServerCache(cli, p.contact)
	srv.OnInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		dlg, err := p.dsrv.ReadInvite(req, tx)
		if err != nil {
			tx.Respond(sipmsg.NewResponseFromRequest(req, 500, err.Error(), nil))
			return
		}
		ic := &incoming{req: req, tx: tx, dlg: dlg, done: make(chan struct{})}
		tx.OnCancel(func(r *sipmsg.Request) { p.cancels <- r })
		p.calls <- ic
		select {
		case <-ic.done:
		case <-tx.Done():
		}
	})
	srv.OnAck(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) { p.dsrv.ReadAck(req, tx) })
	srv.OnInfo(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		tx.Respond(sipmsg.NewResponseFromRequest(req, 200, "OK", nil))
	})
	srv.OnBye(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		p.byes <- req
		if err := p.dsrv.ReadBye(req, tx); err == nil {
			return
		}
		if err := p.dcli.ReadBye(req, tx); err != nil {
			tx.Respond(sipmsg.NewResponseFromRequest(req, 481, "No Dialog", nil))
		}
	})
	t.Cleanup(func() {
		ua.Close()
		rtp.Close()
	})
	return p
}

// request builds a request to the server over the phone's transport.
func (p *phone) request(method sipmsg.RequestMethod, ruri sipmsg.Uri) *sipmsg.Request {
	req := sipmsg.NewRequest(method, ruri)
	req.SetTransport(p.transport)
	req.SetDestination(p.server.String())
	// An outbound-proxy Route: requests sipgo builds later (CANCEL) keep
	// it, where they would lose the destination set above.
	params := sipmsg.NewParams()
	params.Add("transport", strings.ToLower(p.transport))
	params.Add("lr", "")
	req.AppendHeader(&sipmsg.RouteHeader{Address: sipmsg.Uri{Scheme: "sip", Host: p.server.Addr().String(), Port: int(p.server.Port()), UriParams: params}})
	from := &sipmsg.FromHeader{Address: sipmsg.Uri{Scheme: "sip", User: p.number, Host: testDomain}, Params: sipmsg.NewParams()}
	from.Params.Add("tag", sipmsg.GenerateTagN(10))
	req.AppendHeader(from)
	return req
}

// register sends REGISTER (answering the challenge) and returns the final
// response.
func (p *phone) register(expires int, extra ...sipmsg.Header) *sipmsg.Response {
	p.t.Helper()
	res, err := p.tryRegister(expires, extra...)
	if err != nil {
		p.t.Fatalf("%s: REGISTER: %v", p.user, err)
	}
	return res
}

func (p *phone) tryRegister(expires int, extra ...sipmsg.Header) (*sipmsg.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := p.registerRequest(expires, extra...)
	res, err := p.cli.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode == 401 {
		res, err = p.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: p.user, Password: p.pass})
		p.mu.Lock()
		p.cseq = req.CSeq().SeqNo
		p.mu.Unlock()
	}
	if err == nil && res.StatusCode == 200 {
		err = p.flushed(ctx)
	}
	return res, err
}

func (p *phone) registerRequest(expires int, extra ...sipmsg.Header) *sipmsg.Request {
	p.mu.Lock()
	p.cseq++
	cseq, callID, lic := p.cseq, p.callID, p.license
	p.mu.Unlock()
	req := p.request(sipmsg.REGISTER, sipmsg.Uri{Scheme: "sip", Host: testDomain})
	req.AppendHeader(&sipmsg.ToHeader{Address: sipmsg.Uri{Scheme: "sip", User: p.number, Host: testDomain}})
	cid := sipmsg.CallIDHeader(callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sipmsg.CSeqHeader{SeqNo: cseq, MethodName: sipmsg.REGISTER})
	c := p.contact
	req.AppendHeader(&c)
	req.AppendHeader(sipmsg.NewHeader("Expires", strconv.Itoa(expires)))
	if lic != "" {
		req.AppendHeader(sipmsg.NewHeader("X-Z5-License", lic))
	}
	for _, h := range extra {
		req.AppendHeader(h)
	}
	return req
}

// sdp is an audio offer or answer pointing at the phone's RTP socket.
func (p *phone) sdp() []byte {
	port := p.rtp.LocalAddr().(*net.UDPAddr).Port
	profile, crypto := "RTP/AVP", ""
	if p.savp {
		profile, crypto = "RTP/SAVP", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:w8PDw8PDw8PDw8PDw8PDw8PDw8PDw8PDw8PDw8PD\r\n"
	}
	return []byte(fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d %s 0\r\na=rtpmap:0 PCMU/8000\r\n%sa=sendrecv\r\n", port, profile, crypto))
}

// invite calls a number and waits for the final answer.
func (p *phone) invite(ctx context.Context, target string) (*sipgo.DialogClientSession, error) {
	sess, err := p.dcli.WriteInvite(ctx, p.inviteRequest(target, p.sdp()))
	if err != nil {
		return nil, err
	}
	if err := sess.WaitAnswer(ctx, sipgo.AnswerOptions{Username: p.user, Password: p.pass}); err != nil {
		sess.Close()
		return nil, err
	}
	return sess, nil
}

// inviteRequest is an INVITE from p to target offering body, with extra
// headers.
func (p *phone) inviteRequest(target string, body []byte, extra ...sipmsg.Header) *sipmsg.Request {
	req := p.request(sipmsg.INVITE, sipmsg.Uri{Scheme: "sip", User: target, Host: testDomain})
	req.AppendHeader(&sipmsg.ToHeader{Address: sipmsg.Uri{Scheme: "sip", User: target, Host: testDomain}})
	c := p.contact
	req.AppendHeader(&c)
	req.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	for _, h := range extra {
		req.AppendHeader(h)
	}
	req.SetBody(body)
	return req
}

// nextCall waits for an incoming INVITE.
func (p *phone) nextCall(timeout time.Duration) *incoming {
	p.t.Helper()
	select {
	case ic := <-p.calls:
		return ic
	case <-time.After(timeout):
		p.t.Fatalf("%s: no incoming call within %s", p.user, timeout)
	}
	return nil
}

// mediaAddr reads the connection address and audio port of an SDP body.
func mediaAddr(sdp []byte) netip.AddrPort {
	var ip netip.Addr
	var port uint16
	for _, l := range strings.Split(string(sdp), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "c=IN IP4 ") {
			ip, _ = netip.ParseAddr(strings.TrimPrefix(l, "c=IN IP4 "))
		}
		if strings.HasPrefix(l, "m=audio ") {
			f := strings.Fields(l)
			n, _ := strconv.Atoi(f[1])
			port = uint16(n)
		}
	}
	return netip.AddrPortFrom(ip, port)
}
