package sipserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/z5vrs/z5/internal/config"
)

// TLS to the voice trunk ([trunk] address or a route with transport=tls).
// The MCS dials the gateway, verifies its certificate against [trunk] ca
// (else the system's roots) for [trunk] server_name (else the address's
// IP), and hands the connection to sipgo through a listener of its own
// served as TLS, as peers.dial does for TCP: sipgo then sends the leg's
// requests over it and reads the gateway's, every message inspected by
// the flowConn like any client's.

// errTrunkTLS marks a trunk connection whose TLS handshake failed: the
// gateway's certificate is not trusted or not for its name, or the
// gateway does not speak TLS (z5_trunk_failures_total{reason="tls"}).
var errTrunkTLS = errors.New("TLS handshake with the trunk failed")

// trunkTLS is the TLS side of the trunk links: the client configuration
// (loaded at the first TLS dial) and the listener sipgo serves them from.
type trunkTLS struct {
	once sync.Once
	cfg  *tls.Config
	err  error // the CA file could not be loaded
	l    *peerListener
}

// trunkTLSConfig is the client configuration for the gateway at host.
func (s *Server) trunkTLSConfig(host netip.Addr) (*tls.Config, error) {
	tt := s.trunkTLS
	tt.once.Do(func() {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.cfg.Trunk.CA != "" {
			b, err := os.ReadFile(s.cfg.Trunk.CA)
			if err != nil {
				tt.err = fmt.Errorf("trunk.ca: %w", err)
				return
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(b) {
				tt.err = fmt.Errorf("trunk.ca %s: no PEM certificate in it", s.cfg.Trunk.CA)
				return
			}
			cfg.RootCAs = pool
		}
		tt.cfg = cfg
		tt.l = &peerListener{in: make(chan peerHandoff), done: s.ctx.Done(), addr: s.trunkTLSAddr}
		s.goAsync(func() {
			if err := s.sip.ServeTLS(tt.l); err != nil && !errors.Is(err, net.ErrClosed) {
				s.log.Warn("trunk TLS connections: reader stopped", "error", err)
			}
		})
	})
	if tt.err != nil {
		return nil, tt.err
	}
	cfg := tt.cfg.Clone()
	// server_name names the [trunk] address's gateway; a route elsewhere
	// (the PSAP) is verified for its own address.
	cfg.ServerName = host.String()
	if u, err := config.ParseTrunkURI(s.cfg.Trunk.Address); err == nil && u.Host.Addr() == host && s.cfg.Trunk.ServerName != "" {
		cfg.ServerName = s.cfg.Trunk.ServerName
	}
	return cfg, nil
}

// trunkTLSAddr is the address Via and Record-Route name on a TLS trunk
// flow: our TLS listener, else the TCP one.
func (s *Server) trunkTLSAddr() netip.AddrPort {
	if a := s.TLSAddr(); a.IsValid() {
		return a
	}
	return s.Addr()
}

// dialTrunkTLS connects to the gateway at addr over TLS and hands the
// connection to sipgo.
func (s *Server) dialTrunkTLS(ctx context.Context, addr netip.AddrPort) (*flowConn, error) {
	cfg, err := s.trunkTLSConfig(addr.Addr())
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: peerDialTimeout}
	if ip := s.Addr().Addr(); ip.IsValid() && !ip.IsUnspecified() {
		d.LocalAddr = &net.TCPAddr{IP: ip.AsSlice()}
	}
	raw, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, cfg)
	hctx, cancel := context.WithTimeout(ctx, peerDialTimeout)
	err = tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("%w (%s, server name %q): %w", errTrunkTLS, addr, cfg.ServerName, err)
	}
	fc := s.t.newFlowConn(tc, "TLS")
	fc.extendBinding(time.Now().Add(peerIdle))
	taken := make(chan struct{})
	select {
	case s.trunkTLS.l.in <- peerHandoff{c: fc, taken: taken}:
	case <-s.ctx.Done():
		fc.Close()
		return nil, net.ErrClosed
	}
	select {
	case <-taken:
	case <-s.ctx.Done():
		return nil, net.ErrClosed // Close closes every flow, this one too
	}
	return fc, nil
}
