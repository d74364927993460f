// Package pstnpeer is the "telephone network" of the dev stack and the
// tests: a SIP peer over TCP at the voice trunk's address that answers any
// INVITE with G.711 μ-law audio (a tone, sent to the address in the SDP,
// which is always the MCS relay's) and can place a call to one of our
// numbers through the MCS, as a carrier's gateway would for a hearing
// caller. It keeps a record of every call for tests to read.
package pstnpeer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/media"
)

// Config configures a peer.
type Config struct {
	// Addr is the TCP address to listen on ("127.0.0.1:5080"; port 0
	// picks one). Its IP is also where the peer's RTP sockets bind.
	Addr string
	// Status, when set, says how to answer a call to number: 0 answers,
	// any other SIP status (486 busy, 480 no answer, 603) refuses it.
	Status func(number string) int
	// Log receives one line per call; nil discards.
	Log *slog.Logger
}

// Call is the record of one call the peer answered ("in") or placed ("out").
type Call struct {
	CallID    string
	Direction string // "in" (answered) or "out" (placed through the MCS)
	From      string // user part of From
	FromName  string
	To        string // user part of the Request-URI (in) or To (out)
	// Source is where the INVITE came from (in).
	Source string
	// PAI is the P-Asserted-Identity header, Geolocation and
	// GeolocationRouting the RFC 6442 headers, as received.
	PAI, Geolocation, GeolocationRouting string
	ContentType                          string
	Body                                 []byte // the whole INVITE body (multipart/mixed for 911)
	SDP                                  []byte // the INVITE's SDP (a part of Body when multipart)
	Video                                bool   // the offer had a video stream
	Status                               int    // the final answer (in) or response (out)
	Relay                                netip.AddrPort
	Started, Answered, Ended             time.Time
	EndReason                            string
	Stats                                []media.StreamStats
}

// Peer is the telephone-network peer.
type Peer struct {
	cfg  Config
	log  *slog.Logger
	ua   *sipgo.UserAgent
	srv  *sipgo.Server
	cl   *sipgo.Client
	dsrv *sipgo.DialogServerCache
	dcli *sipgo.DialogClientCache
	ip   netip.Addr
	ln   net.Listener

	mu     sync.Mutex // guards the following
	calls  []*active
	closed bool
	wg     sync.WaitGroup
}

// active is a call's record and running media.
type active struct {
	rec   Call
	sess  *media.Session
	socks []*net.UDPConn
	done  chan struct{}
	once  sync.Once
}

// New checks cfg and builds the peer; nothing listens until Listen.
func New(cfg Config) (*Peer, error) {
	ap, err := netip.ParseAddrPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("pstnpeer: address %q: %w", cfg.Addr, err)
	}
	p := &Peer{cfg: cfg, log: cfg.Log, ip: ap.Addr()}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.ua, err = sipgo.NewUA(sipgo.WithUserAgent("Z5-telephone-network"), sipgo.WithUserAgentHostname(ap.Addr().String())); err != nil {
		return nil, fmt.Errorf("pstnpeer: %w", err)
	}
	if p.srv, err = sipgo.NewServer(p.ua, sipgo.WithServerLogger(p.log)); err != nil {
		p.ua.Close()
		return nil, fmt.Errorf("pstnpeer: %w", err)
	}
	if p.cl, err = sipgo.NewClient(p.ua, sipgo.WithClientLogger(p.log), sipgo.WithClientHostname(ap.Addr().String())); err != nil {
		p.ua.Close()
		return nil, fmt.Errorf("pstnpeer: %w", err)
	}
	return p, nil
}

// Listen binds the TCP address.
func (p *Peer) Listen() error {
	ln, err := net.Listen("tcp", p.cfg.Addr)
	if err != nil {
		return fmt.Errorf("pstnpeer: listen %s: %w", p.cfg.Addr, err)
	}
	p.ln = ln
	contact := sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", User: "pstn", Host: p.Addr().Addr().String(),
		Port: int(p.Addr().Port()), UriParams: sipmsg.NewParams()}}
	contact.Address.UriParams.Add("transport", "tcp")
	p.dsrv = sipgo.NewDialogServerCache(p.cl, contact)
	p.dcli = sipgo.NewDialogClientCache(p.cl, contact)
	p.srv.OnInvite(p.onInvite)
	p.srv.OnAck(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) { p.dsrv.ReadAck(req, tx) })
	p.srv.OnBye(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		if err := p.dsrv.ReadBye(req, tx); err == nil {
			return
		}
		if err := p.dcli.ReadBye(req, tx); err != nil {
			tx.Respond(sipmsg.NewResponseFromRequest(req, sipmsg.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		}
	})
	p.srv.OnCancel(func(*sipmsg.Request, sipmsg.ServerTransaction) {})
	p.srv.OnOptions(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		tx.Respond(sipmsg.NewResponseFromRequest(req, sipmsg.StatusOK, "OK", nil))
	})
	return nil
}

// Addr is the bound TCP address (valid after Listen).
func (p *Peer) Addr() netip.AddrPort {
	if p.ln == nil {
		return netip.AddrPort{}
	}
	return netip.MustParseAddrPort(p.ln.Addr().String())
}

// Serve answers calls until ctx ends or Close, then returns nil.
func (p *Peer) Serve(ctx context.Context) error {
	if p.ln == nil {
		return errors.New("pstnpeer: Serve before Listen")
	}
	errc := make(chan error, 1)
	go func() { errc <- p.srv.ServeTCP(p.ln) }()
	select {
	case <-ctx.Done():
		p.Close()
		<-errc
		return nil
	case err := <-errc:
		p.mu.Lock()
		closed := p.closed
		p.mu.Unlock()
		if closed {
			return nil
		}
		return fmt.Errorf("pstnpeer: %w", err)
	}
}

// Close stops listening, ends every call's media and waits for the calls'
// goroutines. Idempotent.
func (p *Peer) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	calls := append([]*active(nil), p.calls...)
	p.mu.Unlock()
	var err error
	if p.ln != nil {
		err = p.ln.Close()
	}
	for _, a := range calls {
		p.finish(a, "peer closed")
	}
	p.wg.Wait()
	p.ua.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Calls returns a copy of every call's record so far, oldest first; a
// running call's Stats are current.
func (p *Peer) Calls() []Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Call, len(p.calls))
	for i, a := range p.calls {
		out[i] = a.rec
		if a.sess != nil && a.rec.Ended.IsZero() {
			out[i].Stats = a.sess.Stats()
		}
	}
	return out
}

// track adds a call; false when the peer is closing.
func (p *Peer) track(a *active) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.calls = append(p.calls, a)
	p.wg.Add(1)
	return true
}

// finish ends a call's media once and notes why.
func (p *Peer) finish(a *active, reason string) {
	a.once.Do(func() {
		var stats []media.StreamStats
		if a.sess != nil {
			stats = a.sess.Stats()
			a.sess.Stop()
		}
		for _, s := range a.socks {
			s.Close()
		}
		p.mu.Lock()
		a.rec.Ended, a.rec.EndReason, a.rec.Stats = time.Now(), reason, stats
		rec := a.rec
		p.mu.Unlock()
		close(a.done)
		p.log.Info("telephone network: call ended", "call_id", rec.CallID, "direction", rec.Direction, "from", rec.From,
			"to", rec.To, "reason", reason, "audio_rx", rxPackets(stats))
	})
}

func rxPackets(st []media.StreamStats) uint64 {
	var n uint64
	for _, s := range st {
		n += s.PacketsReceived
	}
	return n
}

// onInvite answers a call from the MCS: 180, then 200 with PCMU audio.
func (p *Peer) onInvite(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	a := &active{done: make(chan struct{}), rec: Call{Direction: "in", CallID: req.CallID().Value(), To: req.Recipient.User,
		Started: time.Now(), Source: req.Source(), ContentType: header(req, "Content-Type"), Body: append([]byte(nil), req.Body()...),
		PAI: header(req, "P-Asserted-Identity"), Geolocation: header(req, "Geolocation"),
		GeolocationRouting: header(req, "Geolocation-Routing")}}
	if f := req.From(); f != nil {
		a.rec.From, a.rec.FromName = f.Address.User, strings.Trim(f.DisplayName, `"`)
	}
	if !p.track(a) {
		tx.Respond(sipmsg.NewResponseFromRequest(req, sipmsg.StatusServiceUnavailable, "Service Unavailable", nil))
		return
	}
	defer p.wg.Done()
	dlg, err := p.dsrv.ReadInvite(req, tx)
	if err != nil {
		tx.Respond(sipmsg.NewResponseFromRequest(req, sipmsg.StatusBadRequest, "Bad Request", nil))
		p.finish(a, "bad invite")
		return
	}
	defer dlg.Close()
	refuse := func(code int, reason, why string) {
		dlg.Respond(code, reason, nil)
		p.mu.Lock()
		a.rec.Status = code
		p.mu.Unlock()
		p.finish(a, why)
	}
	sdp, err := SDPOf(a.rec.ContentType, a.rec.Body)
	if err != nil {
		refuse(sipmsg.StatusBadRequest, "Bad Request", err.Error())
		return
	}
	p.mu.Lock()
	a.rec.SDP = sdp
	a.rec.Video = bytes.Contains(sdp, []byte("\nm=video "))
	p.mu.Unlock()
	if p.cfg.Status != nil {
		if code := p.cfg.Status(a.rec.To); code != 0 {
			refuse(code, reasonPhrase(code), fmt.Sprintf("refused %d", code))
			return
		}
	}
	dlg.Respond(sipmsg.StatusRinging, "Ringing", nil)
	rtp, rtcp, err := media.ListenRTPPair(p.ip)
	if err != nil {
		refuse(sipmsg.StatusInternalServerError, "Server Internal Error", err.Error())
		return
	}
	a.socks = []*net.UDPConn{rtp, rtcp}
	answer, neg, err := media.BuildAnswer(sdp, p.ip, port(rtp), 0)
	if err != nil || neg.Audio == nil {
		refuse(sipmsg.StatusNotAcceptableHere, "Not Acceptable Here", fmt.Sprintf("no PCMU audio in the offer: %v", err))
		return
	}
	if err := p.startMedia(a, neg.Audio, rtp, rtcp); err != nil {
		refuse(sipmsg.StatusInternalServerError, "Server Internal Error", err.Error())
		return
	}
	if err := dlg.Respond(sipmsg.StatusOK, "OK", answer, sipmsg.NewHeader("Content-Type", "application/sdp")); err != nil {
		p.finish(a, "answer failed: "+err.Error())
		return
	}
	p.mu.Lock()
	a.rec.Status, a.rec.Answered = 200, time.Now()
	p.mu.Unlock()
	p.log.Info("telephone network: answered", "call_id", a.rec.CallID, "from", a.rec.From, "to", a.rec.To, "relay", neg.Audio.Remote.String())
	select {
	case <-dlg.Context().Done():
		p.finish(a, "remote hangup")
	case <-a.done:
		// Closing: say goodbye so the MCS does not wait for media.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		dlg.Bye(ctx)
		cancel()
	}
}

// startMedia plays the tone to the relay and counts what comes back.
func (p *Peer) startMedia(a *active, sp *media.StreamParams, rtp, rtcp *net.UDPConn) error {
	src, err := media.NewPCMUSource(tone(ToneHz))
	if err != nil {
		return err
	}
	sc := media.StreamConfig{Kind: media.KindAudio, PT: sp.PT, ClockRate: sp.ClockRate, Local: rtp,
		Remote: sp.Remote, RemoteRTCP: sp.RemoteRTCP, Source: src}
	if !sp.RTCPMux {
		sc.LocalRTCP = rtcp
	}
	if !sp.Send {
		sc.Source = nil
	}
	sess, err := media.NewSession(media.SessionConfig{Streams: []media.StreamConfig{sc}, Logger: p.log})
	if err != nil {
		return err
	}
	if err := sess.Start(context.Background()); err != nil {
		return err
	}
	p.mu.Lock()
	a.sess, a.rec.Relay = sess, sp.Remote
	p.mu.Unlock()
	return nil
}

// reasonPhrase is the usual phrase of the refusals a test asks for.
func reasonPhrase(code int) string {
	switch code {
	case 404:
		return "Not Found"
	case 480:
		return "Temporarily Unavailable"
	case 486:
		return "Busy Here"
	case 503:
		return "Service Unavailable"
	case 603:
		return "Decline"
	}
	return "Refused"
}

func header(req *sipmsg.Request, name string) string {
	if h := req.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// SDPOf is the SDP of an INVITE body: the body itself, or the
// application/sdp part of a multipart/mixed body (a 911 call carries its
// location beside the SDP, RFC 6442).
func SDPOf(contentType string, body []byte) ([]byte, error) {
	parts, err := Parts(contentType, body)
	if err != nil {
		return nil, err
	}
	for _, pt := range parts {
		if pt.ContentType == "application/sdp" {
			return pt.Body, nil
		}
	}
	return nil, fmt.Errorf("no application/sdp in a %s body", contentType)
}

// Part is one body part of a message.
type Part struct {
	ContentType string // media type, lower case, no parameters
	ContentID   string // without the angle brackets
	Body        []byte
}

// Parts splits a body by its Content-Type: one part, or each part of a
// multipart body.
func Parts(contentType string, body []byte) ([]Part, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, fmt.Errorf("content type %q: %w", contentType, err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		return []Part{{ContentType: mt, Body: body}}, nil
	}
	r := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var out []Part
	for {
		part, err := r.NextRawPart()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("multipart body: %w", err)
		}
		b, err := io.ReadAll(io.LimitReader(part, 1<<20))
		if err != nil {
			return nil, fmt.Errorf("multipart body: %w", err)
		}
		pmt, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		out = append(out, Part{ContentType: pmt, ContentID: strings.Trim(part.Header.Get("Content-ID"), "<>"), Body: b})
	}
}

func port(c *net.UDPConn) int { return c.LocalAddr().(*net.UDPAddr).Port }
