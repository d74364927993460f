package webphone

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/sipdialog"
	"github.com/z5vrs/z5/internal/sipreg"
	"github.com/z5vrs/z5/internal/wire/zdialwire"
)

const (
	registerExpires = 300 // seconds asked for
	// keepaliveEvery is the CRLF ping on the flow (RFC 5626 §4.4.1), well
	// inside the registrar's idle limit; pingWriteTimeout bounds its write.
	keepaliveEvery   = 25 * time.Second
	pingWriteTimeout = 5 * time.Second
	sipTimeout       = 10 * time.Second
)

// sipUA is a tab's SIP side: one flow to the node's own SIP listener (TLS
// when the node serves it, else TCP), registered with the tab's device
// credentials.
type sipUA struct {
	t        *tab
	ua       *sipgo.UserAgent
	cl       *sipgo.Client
	srv      *sipgo.Server
	dcli     *sipgo.DialogClientCache
	dsrv     *sipgo.DialogServerCache
	server   netip.AddrPort
	network  string // sipgo's transport name: "tls" or "tcp"
	creds    zdialwire.SIPCreds
	number   string
	license  string
	instance string

	mu      sync.Mutex // guards the following
	contact sipmsg.ContactHeader
	callID  string
	cseq    uint32

	done chan struct{} // closed when maintain ends
}

func newSIPUA(ctx context.Context, t *tab, auth msg) (*sipUA, error) {
	s := &sipUA{t: t, creds: *auth.SIP, number: t.sess.Number, license: auth.License,
		instance: auth.Instance, callID: sipmsg.GenerateTagN(24), done: make(chan struct{})}
	if s.creds.Domain == "" {
		s.creds.Domain = t.g.cfg.Domain
	}
	uaOpts := []sipgo.UserAgentOption{sipgo.WithUserAgent(t.g.cfg.UserAgent)}
	s.network, s.server = "tcp", t.g.deps.SIP()
	// Where the node serves SIP over TLS the tab uses it, never plain TCP:
	// the registrar may require TLS, and the SDES keys ride this flow.
	if addr, tc := sipTLS(t.g.cfg, t.g.deps); tc != nil {
		s.network, s.server = "tls", addr
		uaOpts = append(uaOpts, sipgo.WithUserAgenTLSConfig(tc))
	}
	if !s.server.IsValid() {
		return nil, fmt.Errorf("the SIP listener is not up")
	}
	var err error
	if s.ua, err = sipgo.NewUA(uaOpts...); err != nil {
		return nil, err
	}
	log := t.g.log.With("component", "webphone-sip", "number", s.number)
	// The flow leaves from the media address: the relay takes media only
	// from a call's signalling address.
	if s.cl, err = sipgo.NewClient(s.ua, sipgo.WithClientLogger(log),
		sipgo.WithClientConnectionAddr(net.JoinHostPort(t.g.cfg.Bind.String(), "0"))); err != nil {
		s.ua.Close()
		return nil, err
	}
	if s.srv, err = sipgo.NewServer(s.ua, sipgo.WithServerLogger(log)); err != nil {
		s.ua.Close()
		return nil, err
	}
	s.routes()
	rctx, cancel := context.WithTimeout(ctx, sipTimeout)
	defer cancel()
	if err := s.ping(rctx); err != nil {
		s.ua.Close()
		if s.network == "tls" {
			return nil, fmt.Errorf("SIP over TLS to %s (%s): %w", s.server, t.g.cfg.SIPName, err)
		}
		return nil, err
	}
	if err := s.register(rctx, registerExpires); err != nil {
		s.ua.Close()
		return nil, err
	}
	go s.maintain(ctx)
	return s, nil
}

// sipTLS is the node's SIP TLS listener and the client TLS configuration
// of the tabs' flows to it, nil when the node serves no TLS: the node's
// certificate is verified against the deployment's roots for the MCS
// name, not the IP address the flow dials.
func sipTLS(cfg Config, deps Deps) (netip.AddrPort, *tls.Config) {
	if deps.SIPTLS == nil {
		return netip.AddrPort{}, nil
	}
	addr := deps.SIPTLS()
	if !addr.IsValid() {
		return netip.AddrPort{}, nil
	}
	return addr, &tls.Config{RootCAs: deps.SIPRoots, ServerName: cfg.SIPName, MinVersion: tls.VersionTLS12}
}

func (s *sipUA) routes() {
	contact := sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", User: "z5"}}
	s.dcli = sipgo.NewDialogClientCache(s.cl, contact)
	s.dsrv = sipgo.NewDialogServerCache(s.cl, contact)
	s.srv.OnInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) { s.t.incoming(s, req, tx) })
	s.srv.OnAck(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) { s.dsrv.ReadAck(req, tx) })
	s.srv.OnBye(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		if err := s.dcli.ReadBye(req, tx); err == nil {
			return
		}
		if err := s.dsrv.ReadBye(req, tx); err != nil {
			tx.Respond(sipmsg.NewResponseFromRequest(req, sipmsg.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		}
	})
	s.srv.OnCancel(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {})
	s.srv.OnOptions(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		tx.Respond(sipmsg.NewResponseFromRequest(req, sipmsg.StatusOK, "OK", nil))
	})
	s.srv.OnInfo(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		tx.Respond(sipmsg.NewResponseFromRequest(req, sipmsg.StatusOK, "OK", nil))
	})
}

func (s *sipUA) newRequest(method sipmsg.RequestMethod, ruri sipmsg.Uri) *sipmsg.Request {
	req := sipmsg.NewRequest(method, ruri)
	req.SetTransport(strings.ToUpper(s.network))
	req.SetDestination(s.server.String())
	from := &sipmsg.FromHeader{Address: sipmsg.Uri{Scheme: "sip", User: s.number, Host: s.creds.Domain}, Params: sipmsg.NewParams()}
	from.Params.Add("tag", sipmsg.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sipmsg.ToHeader{Address: ruri})
	return req
}

// ping opens the flow with OPTIONS and learns our address on it for the
// Contact.
func (s *sipUA) ping(ctx context.Context) error {
	req := s.newRequest(sipmsg.OPTIONS, sipmsg.Uri{Scheme: "sip", Host: s.server.Addr().String(), Port: int(s.server.Port())})
	res, err := s.cl.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("OPTIONS: %w", err)
	}
	if res.StatusCode >= 300 && res.StatusCode != sipmsg.StatusUnauthorized && res.StatusCode != sipmsg.StatusProxyAuthRequired {
		return fmt.Errorf("OPTIONS: %d %s", res.StatusCode, res.Reason)
	}
	via := req.Via()
	c := sipreg.Contact(s.number, via.Host, via.Port, s.network, s.instance)
	s.mu.Lock()
	s.contact = c
	s.mu.Unlock()
	return nil
}

func (s *sipUA) currentContact() sipmsg.ContactHeader {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.contact.Clone()
}

// register sends REGISTER (answering the digest challenge); expires 0
// un-registers.
func (s *sipUA) register(ctx context.Context, expires int) error {
	s.mu.Lock()
	s.cseq++
	cseq := s.cseq
	s.mu.Unlock()
	contact := s.currentContact()
	req := s.newRequest(sipmsg.REGISTER, sipmsg.Uri{Scheme: "sip", Host: s.creds.Domain})
	sipreg.Fill(req, sipreg.Binding{Number: s.number, Domain: s.creds.Domain, CallID: s.callID, CSeq: cseq,
		Contact: contact, Expires: expires, License: s.license})
	res, last, err := sipreg.Send(ctx, s.cl, req, sipgo.DigestAuth{Username: s.creds.Username, Password: s.creds.Password})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.cseq = max(s.cseq, last)
	s.mu.Unlock()
	if res.StatusCode != sipmsg.StatusOK {
		return fmt.Errorf("REGISTER: %d %s", res.StatusCode, res.Reason)
	}
	return nil
}

// maintain refreshes the registration and pings the flow until ctx ends;
// a failed refresh, or a session that no longer holds, ends the tab.
func (s *sipUA) maintain(ctx context.Context) {
	defer close(s.done)
	refresh := time.NewTicker(s.t.g.refresh)
	defer refresh.Stop()
	ping := time.NewTicker(s.t.g.keepalive)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ping.C:
			if err := s.crlf(); err != nil {
				s.t.g.log.Info("web phone flow lost", "number", s.number, "error", err)
				s.t.fail("the connection to the phone service was lost; reload the page")
				s.t.cancel()
				return
			}
		case <-refresh.C:
			if !s.t.stillValid(ctx) {
				s.t.g.log.Info("web phone session ended", "number", s.number)
				s.t.fail("your session has ended; sign in again")
				s.t.cancel()
				return
			}
			rctx, cancel := context.WithTimeout(ctx, sipTimeout)
			err := s.register(rctx, registerExpires)
			cancel()
			if err != nil && ctx.Err() == nil {
				s.t.g.log.Info("web phone refresh failed", "number", s.number, "error", err)
				s.t.fail("the phone lost its registration; reload the page")
				s.t.cancel()
				return
			}
		}
	}
}

func (s *sipUA) crlf() error {
	conn, err := s.ua.TransportLayer().GetConnection(s.network, s.server.String())
	if err != nil || conn == nil {
		return fmt.Errorf("no connection to %s", s.server)
	}
	w, ok := conn.(net.Conn)
	if !ok {
		return fmt.Errorf("connection to %s cannot write raw bytes", s.server)
	}
	// On a TLS flow the ping goes inside TLS (RFC 5626 §4.4.1). The
	// deadline is the connection's, not this write's: clear it after,
	// or every later SIP message on the flow fails with a timeout.
	w.SetWriteDeadline(time.Now().Add(s.t.g.pingTimeout))
	_, err = w.Write([]byte("\r\n\r\n"))
	w.SetWriteDeadline(time.Time{})
	return err
}

// close stops maintain (its ctx ended with the tab), un-registers and
// releases the flow.
func (s *sipUA) close() {
	<-s.done
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.register(ctx, 0)
	s.ua.Close()
}

// invite places a call over the flow and returns the session once
// answered; onProgress sees provisional responses.
func (s *sipUA) invite(ctx context.Context, target string, offer []byte, extra sipmsg.Header, onProgress func(int)) (*sipgo.DialogClientSession, error) {
	ruri := sipmsg.Uri{Scheme: "sip", User: target, Host: s.creds.Domain}
	req := s.newRequest(sipmsg.INVITE, ruri)
	req.AppendHeader(sipmsg.NewHeader("Route", fmt.Sprintf("<sip:%s;transport=%s;lr>", s.server, s.network)))
	contact := s.currentContact()
	req.AppendHeader(&contact)
	req.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	req.AppendHeader(sipmsg.NewHeader("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO"))
	if extra != nil {
		req.AppendHeader(extra)
	}
	req.SetBody(offer)
	sess, err := s.dcli.WriteInvite(ctx, req)
	if err != nil {
		return nil, err
	}
	err = sipdialog.WaitAnswer(ctx, sess, sipgo.AnswerOptions{
		Username: s.creds.Username, Password: s.creds.Password,
		OnResponse: func(res *sipmsg.Response) error {
			if res.IsProvisional() {
				onProgress(int(res.StatusCode))
			}
			return nil
		},
	})
	if err != nil {
		sess.Close()
		return nil, err
	}
	if err := sess.Ack(ctx); err != nil {
		sess.Close()
		return nil, fmt.Errorf("ACK: %w", err)
	}
	return sess, nil
}

// userOf is the user part of a From header, or "".
func userOf(req *sipmsg.Request) (user, name string) {
	if f := req.From(); f != nil {
		return f.Address.User, strings.Trim(f.DisplayName, `"`)
	}
	return "", ""
}
