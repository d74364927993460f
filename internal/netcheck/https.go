package netcheck

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// tlsState is the trust anchor every HTTPS and SIP-TLS probe verifies
// against: the profile's CA, never the system roots.
type tlsState struct {
	pool *x509.CertPool
}

func (c *checker) loadCA() error {
	pool, err := c.p.CAPool()
	if err != nil {
		return fmt.Errorf("netcheck: %w", err)
	}
	c.tls.pool = pool
	return nil
}

// tlsConfig verifies the server as name, the role's DNS name.
func (c *checker) tlsConfig(name string) *tls.Config {
	return &tls.Config{RootCAs: c.tls.pool, ServerName: name, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
}

// stage says how far an HTTPS exchange got, so a failure is blamed on the
// right thing: the rule (connect), a middlebox (TLS) or the server (HTTP).
type stage int

const (
	stageConnect stage = iota
	stageTLS
	stageHTTP
)

// httpsExchange is one request to the role name on a fixed address.
type httpsExchange struct {
	status  int
	header  http.Header
	body    []byte
	elapsed time.Duration
	stage   stage // where err happened
	err     error
}

// doHTTPS dials dest itself (never the system resolver), verifies the
// certificate as name, and sends one HTTP/1.1 request, all within the
// probe timeout.
func (c *checker) doHTTPS(ctx context.Context, dest netip.AddrPort, name, method, path, token string) httpsExchange {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	start := time.Now()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", dest.String())
	if err != nil {
		return httpsExchange{elapsed: time.Since(start), stage: stageConnect, err: err}
	}
	defer raw.Close()
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	conn := tls.Client(raw, c.tlsConfig(name))
	if err := conn.HandshakeContext(ctx); err != nil {
		return httpsExchange{elapsed: time.Since(start), stage: stageTLS, err: err}
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+hostPort(name, dest.Port())+path, nil)
	if err != nil {
		return httpsExchange{stage: stageHTTP, err: err}
	}
	req.Header.Set("User-Agent", c.opts.UserAgent)
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Close = true
	if err := req.Write(conn); err != nil {
		return httpsExchange{elapsed: time.Since(start), stage: stageHTTP, err: err}
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return httpsExchange{elapsed: time.Since(start), stage: stageHTTP, err: err}
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	ex := httpsExchange{status: res.StatusCode, header: res.Header, body: body, elapsed: time.Since(start), stage: stageHTTP}
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		ex.err = err
	}
	return ex
}

func hostPort(host string, port uint16) string {
	if port == 443 {
		return host
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// probeHTTPS checks an HTTPS rule: connect, TLS verified against the
// profile's CA with the role name, GET /healthz.
func (c *checker) probeHTTPS(ctx context.Context, r Rule) Result {
	dest := netip.AddrPortFrom(r.Dest, uint16(r.Ports.Min))
	ex := c.doHTTPS(ctx, dest, r.Name, http.MethodGet, "/healthz", "")
	switch {
	case ex.err != nil && ex.stage == stageConnect:
		return result(r, StatusBlocked, ex.elapsed, "TCP to "+dest.String()+": "+why(ex.err, c.opts.Timeout))
	case ex.err != nil && ex.stage == stageTLS:
		return tlsFailure(r, ex.elapsed, ex.err, c.opts.Timeout)
	case ex.err != nil:
		return result(r, StatusDegraded, ex.elapsed, "TLS works, but the HTTPS request failed: "+why(ex.err, c.opts.Timeout))
	case ex.status != http.StatusOK:
		return result(r, StatusDegraded, ex.elapsed, fmt.Sprintf("TLS works, but /healthz answered %d %s", ex.status, http.StatusText(ex.status)))
	}
	return c.timed(r, ex.elapsed, "TLS verified as "+r.Name+", /healthz 200")
}

// probeTLS checks SIP over TLS: connect and a verified handshake.
func (c *checker) probeTLS(ctx context.Context, r Rule) Result {
	dest := netip.AddrPortFrom(r.Dest, uint16(r.Ports.Min))
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	start := time.Now()
	cfg := c.tlsConfig(r.Name)
	cfg.NextProtos = nil
	var nd net.Dialer
	raw, err := nd.DialContext(ctx, "tcp", dest.String())
	if err != nil {
		return result(r, StatusBlocked, time.Since(start), "TCP to "+dest.String()+": "+why(err, c.opts.Timeout))
	}
	defer raw.Close()
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		return tlsFailure(r, time.Since(start), err, c.opts.Timeout)
	}
	return c.timed(r, time.Since(start), "TLS verified as "+r.Name)
}

// tlsFailure is a blocked result for a failed handshake: a plain block
// adds the rule, an interception asks for an exemption instead.
func tlsFailure(r Rule, elapsed time.Duration, err error, timeout time.Duration) Result {
	detail, intercepted := tlsWhy(err, timeout)
	res := result(r, StatusBlocked, elapsed, detail)
	if intercepted {
		// TCP got through, so the rule itself is there: the remedy is
		// not another rule.
		res.Add, res.AddNft = "", ""
		res.Fix = fmt.Sprintf("exempt %s (%s) from TLS inspection or interception: the client trusts only the provider's CA", r.Dest, r.Name)
	}
	return res
}
