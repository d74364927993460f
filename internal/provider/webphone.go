package provider

import (
	"crypto/tls"
	"errors"
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
		Relay:    n.relay,
		Accounts: n.store,
		Live:     nodeLive{n},
		Node:     n.node.Name,
		Log:      n.log.With("component", "webphone"),
	})
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
