package provider

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"time"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/sipserver"
	"github.com/z5vrs/z5/internal/webphone"
)

// newWebPhone builds the web phone the MCS serves on its HTTPS port in
// front of the MCS API (api). Sign-in goes to this node's ZDial when it
// has the role, else to the deployment's first ZDial node, verified
// against the deployment CA.
func (n *Node) newWebPhone(api http.Handler) (*webphone.Gateway, error) {
	cfg := n.cfg
	zd, err := n.zdialHandler()
	if err != nil {
		return nil, err
	}
	roots, err := n.webPhoneSIPRoots()
	if err != nil {
		return nil, err
	}
	// The SIP certificate from the deployment CA names the node's MCS hosts
	// and the shared names; the tabs verify it for the node's own.
	sipName := cfg.Names.LBMCS
	if len(n.node.Hosts) > 0 {
		sipName = n.node.Hosts[0]
	}
	bind := n.node.BindAddr()
	if !bind.IsValid() || bind.IsUnspecified() {
		bind = n.node.Addr()
	}
	return webphone.New(webphone.Config{
		WebPhone:  cfg.WebPhone,
		Bind:      bind,
		RTP:       cfg.Ports.RTP,
		Domain:    cfg.Names.SIPDomain,
		UserAgent: cfg.Provider.Name + " web phone",
		SIPName:   sipName,
		// The MCS API's per-source limit, counted apart from the API's.
		RateLimit:         float64(cfg.MCS.RateLimit),
		RateBurst:         cfg.MCS.RateBurst,
		MaxTrackedSources: cfg.MCS.MaxTrackedSources,
	}, webphone.Deps{
		Sessions: n.store,
		Calls:    n.store,
		API:      api,
		ZDial:    zd,
		SIP:      func() netip.AddrPort { return n.sip.Addr() },
		// With ports.sip_tls the tabs register over TLS (sip.require_tls
		// may refuse anything else).
		SIPTLS:   func() netip.AddrPort { return n.sip.TLSAddr() },
		SIPRoots: roots,
		Relay:    n.relay,
		Accounts: n.store,
		Live:     nodeLive{n},
		Node:     n.node.Name,
		Log:      n.log.With("component", "webphone"),
	})
}

// webPhoneSIPRoots are the roots the tabs verify the node's SIP
// certificate against: the deployment CA, plus the operator's own
// certificate when [sip] tls_cert replaces the CA's (the node trusts the
// certificate it serves itself, whoever issued it).
func (n *Node) webPhoneSIPRoots() (*x509.CertPool, error) {
	pool := n.ca.Pool()
	if n.cfg.Ports.SIPTLS == 0 || n.cfg.SIP.TLSCert == "" {
		return pool, nil
	}
	cert, err := sipCertificate(n.cfg, tls.Certificate{})
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("sip.tls_cert: %w", err)
	}
	pool.AddCert(leaf)
	return pool, nil
}

// nodeLive reads the node's SIP server when asked: the web phone is built
// before the SIP server is.
type nodeLive struct{ n *Node }

func (l nodeLive) Registrations() []sipserver.Registration { return l.n.sip.Registrations() }
func (l nodeLive) ActiveCalls() []sipserver.ActiveCall     { return l.n.sip.ActiveCalls() }

func (n *Node) zdialHandler() (http.Handler, error) {
	if n.zdialSrv != nil {
		return n.zdialSrv.srv.Handler, nil
	}
	for _, z := range n.cfg.Nodes() {
		if !z.Has(config.RoleZDial) {
			continue
		}
		target := net.JoinHostPort(z.Addr().String(), strconv.Itoa(n.cfg.Ports.ZDialHTTPS))
		tr := &http.Transport{
			TLSClientConfig:       &tls.Config{RootCAs: n.ca.Pool(), ServerName: n.cfg.Names.ZDial, MinVersion: tls.VersionTLS12},
			ResponseHeaderTimeout: 10 * time.Second,
			MaxIdleConnsPerHost:   4,
		}
		return &httputil.ReverseProxy{
			Rewrite: func(r *httputil.ProxyRequest) {
				r.Out.URL.Scheme, r.Out.URL.Host, r.Out.Host = "https", target, n.cfg.Names.ZDial
			},
			Transport: tr,
		}, nil
	}
	return nil, errors.New("web phone: the deployment has no zdial node to sign in with")
}
