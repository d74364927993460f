package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/z5vrs/z5/internal/relay"
)

// The ng control protocol (rtpengine's): a UDP datagram "COOKIE DICT",
// answered with "COOKIE DICT" carrying result=ok or result=error with an
// error-reason. offer hands over the caller's SDP and returns the one for
// the callee; answer hands over the callee's and returns the one for the
// caller; delete ends the call.

// ngClient sends commands one at a time.
type ngClient struct {
	conn *net.UDPConn
	n    int
	buf  []byte
}

// dialNG talks to the relay at addr from local, the address the relay
// takes for the clients' signalling address.
func dialNG(addr string, local netip.Addr) (*ngClient, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("ng address %q: %w", addr, err)
	}
	c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)), net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, fmt.Errorf("ng dial %s: %w", addr, err)
	}
	return &ngClient{conn: c, buf: make([]byte, 65536)}, nil
}

func (c *ngClient) Close() error { return c.conn.Close() }

// do sends cmd and waits for the reply with the same cookie.
func (c *ngClient) do(cmd map[string]any) (map[string]any, error) {
	c.n++
	// rtpengine caches replies by cookie for a while to answer
	// retransmissions: cookies must not repeat across runs.
	cookie := strconv.Itoa(os.Getpid()) + "_" + strconv.Itoa(c.n)
	msg, err := bencode([]byte(cookie+" "), cmd)
	if err != nil {
		return nil, err
	}
	for attempt := 0; attempt < 3; attempt++ {
		if _, err := c.conn.Write(msg); err != nil {
			return nil, fmt.Errorf("ng %s: send: %w", cmd["command"], err)
		}
		c.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			n, err := c.conn.Read(c.buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // resend
				}
				return nil, fmt.Errorf("ng %s: receive: %w", cmd["command"], err)
			}
			ck, body, ok := bytes.Cut(c.buf[:n], []byte(" "))
			if !ok || string(ck) != cookie {
				continue // a late reply to an earlier attempt
			}
			d, err := decodeDict(body)
			if err != nil {
				return nil, fmt.Errorf("ng %s: reply: %w", cmd["command"], err)
			}
			if d["result"] != "ok" && d["result"] != "pong" {
				return nil, fmt.Errorf("ng %s: %v: %v", cmd["command"], d["result"], d["error-reason"])
			}
			return d, nil
		}
	}
	return nil, fmt.Errorf("ng %s: no reply after 3 attempts", cmd["command"])
}

// ngServer exposes relay.Relay over the ng protocol, so the load generator
// drives the MCS relay and rtpengine the same way, each in its own process.
type ngServer struct {
	r   *relay.Relay
	log *slog.Logger

	mu    sync.Mutex // guards the following
	calls map[string]*relay.Call
}

func (s *ngServer) serve(ctx context.Context, conn *net.UDPConn) error {
	go func() { <-ctx.Done(); conn.Close() }()
	buf := make([]byte, 65536)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("ng read: %w", err)
		}
		ck, body, ok := bytes.Cut(buf[:n], []byte(" "))
		if !ok {
			continue
		}
		reply := s.handle(body, from.Addr())
		out, err := bencode(append([]byte(nil), append(ck, ' ')...), reply)
		if err != nil {
			return err
		}
		if _, err := conn.WriteToUDPAddrPort(out, from); err != nil {
			s.log.Warn("ng reply", "error", err)
		}
	}
}

func (s *ngServer) handle(body []byte, signalIP netip.Addr) map[string]any {
	fail := func(err error) map[string]any {
		return map[string]any{"result": "error", "error-reason": err.Error()}
	}
	d, err := decodeDict(body)
	if err != nil {
		return fail(err)
	}
	cmd, _ := d["command"].(string)
	id, _ := d["call-id"].(string)
	sdp, _ := d["sdp"].(string)
	switch cmd {
	case "ping":
		return map[string]any{"result": "pong"}
	case "offer", "answer":
		s.mu.Lock()
		c := s.calls[id]
		if c == nil && cmd == "offer" {
			c = s.r.NewCall(id, nil)
			s.calls[id] = c
		}
		s.mu.Unlock()
		if c == nil {
			return fail(fmt.Errorf("answer for unknown call %q", id))
		}
		side := relay.SideA
		if cmd == "answer" {
			side = relay.SideB
		}
		out, err := c.RewriteSDP(side, []byte(sdp), signalIP)
		if err != nil {
			return fail(err)
		}
		if cmd == "answer" {
			c.Answered()
		}
		return map[string]any{"result": "ok", "sdp": string(out)}
	case "delete":
		s.mu.Lock()
		c := s.calls[id]
		delete(s.calls, id)
		s.mu.Unlock()
		if c == nil {
			return fail(fmt.Errorf("delete of unknown call %q", id))
		}
		c.Close()
		return map[string]any{"result": "ok"}
	}
	return fail(fmt.Errorf("unsupported command %q", cmd))
}
