package netcheck

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/miekg/dns"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/license"
	"github.com/z5vrs/z5/internal/mcsapi"
	"github.com/z5vrs/z5/internal/pki"
	"github.com/z5vrs/z5/internal/profile"
	"github.com/z5vrs/z5/internal/relay"
	"github.com/z5vrs/z5/internal/testenv"
	"github.com/z5vrs/z5/internal/testenv/teststore"
	"github.com/z5vrs/z5/internal/wire/algprobe"
)

// The test provider: every role on 127.0.0.1, each on its own port.
const (
	zdialName = "zdial.z5.test"
	mcsName   = "mcs1.mcs.z5.test"
	lbName    = "lb.mcs.z5.test"
	sipDomain = "mcs.z5.test"
)

var lo = netip.MustParseAddr("127.0.0.1")

// provider is a fake deployment on loopback built from real parts: a DNS
// server, ZDial and MCS HTTPS endpoints with certificates from a test CA,
// a SIP responder, the real MCS API with a real relay for the RTP probes.
type provider struct {
	t       *testing.T
	ca      *pki.CA
	ns      []netip.AddrPort
	zdial   netip.AddrPort
	mcs     netip.AddrPort
	sip     netip.AddrPort
	sipTLS  netip.AddrPort // zero when off
	rtp     config.PortRange
	token   string // a valid MCS token
	relay   *relay.Relay
	profile *profile.Profile
}

// providerOpts choose faults.
type providerOpts struct {
	udpDrop     int           // the first udpDrop nameservers drop UDP (TCP only)
	zdialBadCA  bool          // ZDial presents a certificate of another CA
	zdialClosed bool          // nothing listens on the ZDial port
	sip         sipBehaviour  // how the SIP responder answers
	noRelay     bool          // MCS API without a relay
	slowHealth  time.Duration // delay of the MCS /healthz
	sipTLS      sipTLSMode    // SIP over TLS (ports.sip_tls); off by default
}

// sipTLSMode is what answers on the profile's SIP TLS port.
type sipTLSMode int

const (
	sipTLSOff     sipTLSMode = iota // no TLS port in the profile
	sipTLSOK                        // the SIP responder over TLS, certificate from the CA for the MCS
	sipTLSClosed                    // nothing listens (a firewall rejects)
	sipTLSSilent                    // TCP accepted, no handshake (a firewall holding TLS)
	sipTLSOtherCA                   // a certificate of another CA (TLS interception)
)

type sipBehaviour int

const (
	sipEcho   sipBehaviour = iota // answers 200 with the ALG echo
	sipNoEcho                     // answers 200 without echo (older server)
	sipALG                        // echo of a request an ALG rewrote
	sipSilent                     // accepts TCP, never answers
)

func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newProvider(t *testing.T, o providerOpts) *provider {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(t.TempDir(), "Z5 test")
	if err != nil {
		t.Fatal(err)
	}
	p := &provider{t: t, ca: ca}
	for i := range 2 {
		p.ns = append(p.ns, startDNS(t, i < o.udpDrop))
	}
	// ZDial.
	zca := ca
	if o.zdialBadCA {
		if zca, err = pki.LoadOrCreateCA(t.TempDir(), "Intercepting proxy"); err != nil {
			t.Fatal(err)
		}
	}
	if o.zdialClosed {
		p.zdial = closedTCPPort(t)
	} else {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
		p.zdial = serveHTTPS(t, zca, zdialName, mux)
	}
	// MCS: the real API, over a store with one logged-in device.
	st := teststore.SQLite(t)
	_, p.token, _ = teststore.Provision(t, st, "alice", "2025550100")
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	deps := mcsapi.Deps{Store: st, LicenseKey: key, Log: testLog(t)}
	if !o.noRelay {
		p.rtp = freeRange(t, 32)
		def := config.Dev("").Relay
		p.relay, err = relay.New(relay.Config{Bind: lo, Ports: p.rtp, MediaTimeout: def.MediaTimeout,
			ProbeRate: def.ProbeRate, MaxStreams: def.MaxStreams}, relay.Deps{Log: testLog(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.relay.Close() })
		deps.Probe = p.relay
	} else {
		p.rtp = config.PortRange{Min: 10000, Max: 65535}
	}
	api, err := mcsapi.New(mcsapi.Config{LicenseTTL: time.Hour, Issuer: sipDomain, MaxContacts: 10, MaxBody: 64 << 10,
		MaxTrackedSources: 1024}, deps)
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = api
	if o.slowHealth > 0 {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				time.Sleep(o.slowHealth)
			}
			api.ServeHTTP(w, r)
		})
	}
	p.mcs = serveHTTPS(t, ca, mcsName, h)
	p.sip = startSIP(t, o.sip)
	switch o.sipTLS {
	case sipTLSOK:
		p.sipTLS = startSIPTLS(t, ca, o.sip)
	case sipTLSClosed:
		p.sipTLS = closedTCPPort(t)
	case sipTLSSilent:
		p.sipTLS = silentTCP(t)
	case sipTLSOtherCA:
		other, err := pki.LoadOrCreateCA(t.TempDir(), "Intercepting proxy")
		if err != nil {
			t.Fatal(err)
		}
		p.sipTLS = startSIPTLS(t, other, o.sip)
	}

	lk, _, _ := ed25519.GenerateKey(rand.Reader)
	p.profile = &profile.Profile{
		Version:  1,
		Provider: "Z5 test",
		Names:    profile.Names{ZDial: zdialName, LBMCS: lbName, MCS: []string{mcsName}, SIPDomain: sipDomain},
		Ports: profile.Ports{ZDialHTTPS: int(p.zdial.Port()), MCSHTTPS: int(p.mcs.Port()), SIP: int(p.sip.Port()),
			SIPTLS: int(p.sipTLS.Port()), RTP: p.rtp.String()},
		CAPEM:       string(ca.CertPEM()),
		LicenseKeys: []string{license.EncodePublicKey(lk)},
	}
	for _, ns := range p.ns {
		p.profile.Nameservers = append(p.profile.Nameservers, ns.String())
	}
	if err := p.profile.Validate(); err != nil {
		t.Fatal(err)
	}
	return p
}

// startDNS serves the provider's names on 127.0.0.1 over TCP and, unless
// dropUDP, over UDP on the same port; with dropUDP a socket holds the UDP
// port and swallows every query, as a firewall dropping them would.
func startDNS(t *testing.T, dropUDP bool) netip.AddrPort {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		if len(q.Question) == 1 && q.Question[0].Qtype == dns.TypeA {
			switch dns.CanonicalName(q.Question[0].Name) {
			case zdialName + ".", mcsName + ".", lbName + ".", sipDomain + ".":
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA,
					Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 0, 1)})
			default:
				m.Rcode = dns.RcodeNameError
			}
		}
		w.WriteMsg(m)
	})
	ln, pc := testenv.ListenTCPUDP(t)
	testenv.ServeDNS(t, &dns.Server{Listener: ln, Handler: h})
	if dropUDP {
		t.Cleanup(func() { pc.Close() })
	} else {
		testenv.ServeDNS(t, &dns.Server{PacketConn: pc, Handler: h})
	}
	return netip.MustParseAddrPort(ln.Addr().String())
}

// serveHTTPS serves h over TLS as name, with a certificate from ca.
func serveHTTPS(t *testing.T, ca *pki.CA, name string, h http.Handler) netip.AddrPort {
	t.Helper()
	cert, err := ca.Issue([]string{name}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", pki.ServerTLS(cert))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(slog.DiscardHandler, 0)}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return netip.MustParseAddrPort(ln.Addr().String())
}

// listenTCP listens on a free loopback TCP port.
func listenTCP(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// closedTCPPort is a loopback port nothing listens on (connections are
// refused).
func closedTCPPort(t *testing.T) netip.AddrPort {
	t.Helper()
	ln := listenTCP(t)
	ap := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	return ap
}

// startSIP is a tiny SIP-over-TCP responder: one response per request,
// built the way the MCS builds it, with ALGEchoReply's headers and body.
func startSIP(t *testing.T, b sipBehaviour) netip.AddrPort {
	t.Helper()
	return startSIPOn(t, b, nil)
}

// startSIPTLS is the responder over TLS, with a certificate from ca for
// the MCS name.
func startSIPTLS(t *testing.T, ca *pki.CA, b sipBehaviour) netip.AddrPort {
	t.Helper()
	cert, err := ca.Issue([]string{mcsName, lbName}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return startSIPOn(t, b, pki.ServerTLS(cert))
}

func startSIPOn(t *testing.T, b sipBehaviour, conf *tls.Config) netip.AddrPort {
	t.Helper()
	ln := listenTCP(t)
	if conf != nil {
		ln = tls.NewListener(ln, conf)
	}
	return serveListener(t, ln, func(c net.Conn) { serveSIPConn(c, b) })
}

// serveListener accepts on ln until the test ends, handing each connection
// to serve (nil: holds it open unread); then ln and every connection are
// closed and their goroutines waited for.
func serveListener(t *testing.T, ln net.Listener, serve func(net.Conn)) netip.AddrPort {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	closed := false
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed { // accepted as the test ended
				mu.Unlock()
				c.Close()
				continue
			}
			conns = append(conns, c)
			mu.Unlock()
			if serve != nil {
				wg.Go(func() { defer c.Close(); serve(c) })
			}
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}

func serveSIPConn(c net.Conn, b sipBehaviour) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	stream := sipmsg.NewParser().NewSIPStream()
	defer stream.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		stream.Write(buf[:n])
		msg, _, err := stream.ParseNext()
		if errors.Is(err, io.ErrUnexpectedEOF) {
			continue
		}
		if err != nil {
			return
		}
		req, ok := msg.(*sipmsg.Request)
		if !ok || b == sipSilent {
			continue
		}
		req.SetTransport("TCP") // as sipgo's TCP transport marks what it reads
		if b == sipALG {
			// What a SIP ALG does on the way: the client's private
			// address becomes the firewall's public one, everywhere.
			via := req.Via()
			via.Host, via.Port = "198.51.100.7", 30123
			if ct := req.Contact(); ct != nil {
				ct.Address.Host, ct.Address.Port = "198.51.100.7", 30123
			}
			req.SetBody([]byte(strings.ReplaceAll(string(req.Body()), "10.1.2.3", "198.51.100.7")))
		}
		res := sipmsg.NewResponseFromRequest(req, 200, "OK", nil)
		if b != sipNoEcho {
			if hs, body, ok := algprobe.EchoReply(req); ok {
				for _, h := range hs {
					res.AppendHeader(h)
				}
				res.SetBody(body)
			}
		}
		if _, err := c.Write([]byte(res.String())); err != nil {
			return
		}
	}
}

// freeRange finds n consecutive ports (n even, starting even) that bind on
// loopback now.
func freeRange(t *testing.T, n int) config.PortRange { return testenv.FreeUDPRange(t, lo, n) }

// options are fast probes for loopback.
func (p *provider) options(token string) Options {
	return Options{Profile: p.profile, MCSToken: token, Timeout: 400 * time.Millisecond,
		RTPPackets: 20, RTPInterval: 5 * time.Millisecond, Log: testLog(p.t)}
}

func portOf(ap netip.AddrPort) string { return strconv.Itoa(int(ap.Port())) }

// startDNSUDPSink holds a UDP port that swallows queries, with nothing on
// its TCP twin.
func startDNSUDPSink(t *testing.T) netip.AddrPort { return testenv.SilentUDP(t) }

// silentTCP accepts connections and never reads or writes on them until
// the test ends, as a firewall holding the handshake does.
func silentTCP(t *testing.T) netip.AddrPort {
	t.Helper()
	return serveListener(t, listenTCP(t), nil)
}
