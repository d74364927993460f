package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// APIError is an HTTPS API's error answer.
type APIError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
	ETag       string
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return fmt.Sprintf("%s (HTTP %d)", msg, e.Status)
}

// httpClient dials the provider's names through step 1's resolver only and
// verifies every certificate against the profile's CA.
func (c *Client) httpClient() *http.Client {
	c.mu.Lock()
	pool := c.caPool
	c.mu.Unlock()
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			addrs, r := c.lookup(ctx, host)
			if r.Err != nil {
				return nil, r.Err
			}
			var errs []error
			for _, a := range addrs {
				conn, err := dialer.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
				if err == nil {
					return conn, nil
				}
				errs = append(errs, err)
			}
			return nil, errors.Join(errs...)
		},
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 5 * time.Second,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        4,
		IdleConnTimeout:     30 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// call does one JSON request. in may be nil; out may be nil. hdr adds
// request headers; the response headers are returned.
func (c *Client) call(ctx context.Context, method, url, token string, in, out any, hdr map[string]string) (http.Header, error) {
	var body io.Reader
	ctype := ""
	switch v := in.(type) {
	case nil:
	case rawBody:
		body, ctype = bytes.NewReader(v.data), v.contentType
	default:
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body, ctype = bytes.NewReader(b), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.opts.UserAgent)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	hc := c.httpClient()
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.Header, fmt.Errorf("read %s: %w", url, err)
	}
	if resp.StatusCode == http.StatusNotModified {
		return resp.Header, nil
	}
	if resp.StatusCode >= 300 {
		ae := &APIError{Status: resp.StatusCode, ETag: resp.Header.Get("ETag")}
		var env struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(data, &env) == nil {
			ae.Code, ae.Message = env.Error.Code, env.Error.Message
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			ae.RetryAfter = time.Duration(s) * time.Second
		}
		return resp.Header, ae
	}
	if out != nil {
		switch o := out.(type) {
		case *[]byte:
			*o = data
		default:
			if err := json.Unmarshal(data, out); err != nil {
				return resp.Header, fmt.Errorf("decode %s: %w", url, err)
			}
		}
	}
	return resp.Header, nil
}

type rawBody struct {
	data        []byte
	contentType string
}

func (c *Client) zdialURL(path string) string {
	p := c.state.Profile
	return fmt.Sprintf("https://%s%s", hostPort(p.Names.ZDial, p.Ports.ZDialHTTPS), path)
}

// mcsHosts are the MCS names to try for HTTPS, in order: the load-balanced
// name (healthy nodes only), then each node's own name.
func (c *Client) mcsHosts() []string {
	p := c.state.Profile
	var hosts []string
	if p.Names.LBMCS != "" {
		hosts = append(hosts, p.Names.LBMCS)
	}
	return append(hosts, p.Names.MCS...)
}

func hostPort(host string, port int) string {
	if port == 443 {
		return host
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// callMCS tries each MCS name until one answers at the HTTP level.
func (c *Client) callMCS(ctx context.Context, method, path string, in, out any, hdr map[string]string) (http.Header, error) {
	p := c.state.Profile
	var errs []error
	failed := map[netip.Addr]bool{} // addresses that did not answer in this call
	for _, h := range c.mcsHosts() {
		addrs, r := c.lookup(ctx, h)
		if r.Err == nil && allIn(addrs, failed) {
			continue // lb.mcs and mcsN name the same nodes: one timeout each is enough
		}
		url := fmt.Sprintf("https://%s%s", hostPort(h, p.Ports.MCSHTTPS), path)
		rh, err := c.call(ctx, method, url, c.state.MCSToken, in, out, hdr)
		var ae *APIError
		if err == nil || errors.As(err, &ae) {
			return rh, err
		}
		errs = append(errs, fmt.Errorf("%s: %w", h, err))
		for _, a := range addrs {
			failed[a] = true
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func allIn(addrs []netip.Addr, set map[netip.Addr]bool) bool {
	for _, a := range addrs {
		if !set[a] {
			return false
		}
	}
	return len(addrs) > 0
}
