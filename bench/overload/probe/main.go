// Command probe plays the registered customers of an MCS while it is
// under load: one client keeps its flow alive with RFC 5626 CRLF pings
// (and refreshes its registration), two more call each other again and
// again. It prints one JSON line with what they saw.
//
//	probe --server 127.0.81.1:5060 --src 127.0.83.1 --users 2125551000,2125551001,2125551002 --duration 20s
//
// User u has password "pw-u" (bench/provision). Every request is plain
// SIP over TCP built here, digest MD5, so nothing but the MCS is measured.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/siptest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
}

// result is the probe's report.
type result struct {
	Pings        int         `json:"pings"`
	Pongs        int         `json:"pongs"`
	PingP50Ms    float64     `json:"ping_p50_ms"`
	PingP99Ms    float64     `json:"ping_p99_ms"`
	PingMaxMs    float64     `json:"ping_max_ms"`
	Refreshes    map[int]int `json:"refreshes"` // status -> count
	Calls        int         `json:"calls"`
	CallsOK      int         `json:"calls_ok"`
	SetupP50Ms   float64     `json:"setup_p50_ms"`
	SetupMaxMs   float64     `json:"setup_max_ms"`
	FlowsDropped int         `json:"flows_dropped"`
	Errors       []string    `json:"errors,omitempty"`
}

func run() error {
	server := flag.String("server", "", "MCS SIP address (TCP)")
	src := flag.String("src", "", "local address to connect from")
	users := flag.String("users", "", "three SIP users: keepalive client, caller, callee")
	domain := flag.String("domain", "mcs.z5.test", "SIP domain and realm")
	duration := flag.Duration("duration", 20*time.Second, "how long to probe")
	flag.Parse()
	us := strings.Split(*users, ",")
	if *server == "" || *src == "" || len(us) != 3 {
		return errors.New("need --server, --src and three --users")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	var res result
	res.Refreshes = map[int]int{}
	var mu sync.Mutex
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(res.Errors) < 10 {
			res.Errors = append(res.Errors, fmt.Sprintf(format, args...))
		}
	}

	dial := func(user string) (*ua, error) {
		u, err := newUA(*server, *src, user, *domain)
		if err != nil {
			return nil, err
		}
		code, err := u.register(ctx)
		if err != nil || code != 200 {
			u.c.Close()
			return nil, fmt.Errorf("register %s: %d %v", user, code, err)
		}
		return u, nil
	}
	keep, err := dial(us[0])
	if err != nil {
		return err
	}
	defer keep.c.Close()
	caller, err := dial(us[1])
	if err != nil {
		return err
	}
	defer caller.c.Close()
	callee, err := dial(us[2])
	if err != nil {
		return err
	}
	defer callee.c.Close()

	var wg sync.WaitGroup
	var rtts []float64
	wg.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		lastRefresh := time.Now()
		for ctx.Err() == nil {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if time.Since(lastRefresh) > 5*time.Second {
				lastRefresh = time.Now()
				code, err := keep.register(ctx)
				mu.Lock()
				res.Refreshes[code]++
				mu.Unlock()
				if err != nil {
					fail("refresh: %v", err)
				}
				continue
			}
			mu.Lock()
			res.Pings++
			mu.Unlock()
			d, err := keep.ping(2 * time.Second)
			if err != nil {
				fail("ping: %v", err)
				if errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "EOF") {
					mu.Lock()
					res.FlowsDropped++
					mu.Unlock()
					return
				}
				continue
			}
			mu.Lock()
			res.Pongs++
			rtts = append(rtts, float64(d.Microseconds())/1000)
			mu.Unlock()
		}
	})

	var setups []float64
	wg.Go(func() {
		for n := 1; ctx.Err() == nil; n++ {
			mu.Lock()
			res.Calls++
			mu.Unlock()
			d, err := call(ctx, caller, callee, n)
			if err != nil {
				fail("call %d: %v", n, err)
			} else {
				mu.Lock()
				res.CallsOK++
				setups = append(setups, float64(d.Microseconds())/1000)
				mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Second):
			}
		}
	})
	wg.Wait()
	res.PingP50Ms, res.PingP99Ms, res.PingMaxMs = pct(rtts, 0.5), pct(rtts, 0.99), pct(rtts, 1)
	res.SetupP50Ms, res.SetupMaxMs = pct(setups, 0.5), pct(setups, 1)
	return json.NewEncoder(os.Stdout).Encode(res)
}

func pct(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// ua is one registered SIP client on its own TCP flow.
type ua struct {
	c            net.Conn
	user, domain string
	local        string // host:port of the connection
	par          *sipmsg.ParserStream
	msgs         chan sipmsg.Message
	pongs        chan struct{}
	callID       string
	cseq         int
	nc           int
	wmu          sync.Mutex
}

func newUA(server, src, user, domain string) (*ua, error) {
	d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", server)
	if err != nil {
		return nil, err
	}
	u := &ua{c: c, user: user, domain: domain, local: c.LocalAddr().String(), par: sipmsg.NewParser().NewSIPStream(),
		msgs: make(chan sipmsg.Message, 16), pongs: make(chan struct{}, 16), callID: "probe-reg-" + user}
	go u.read()
	return u, nil
}

// read splits the stream into pongs (a bare CRLF between messages) and
// SIP messages.
func (u *ua) read() {
	defer close(u.msgs)
	buf := make([]byte, 65536)
	var pending []byte
	for {
		n, err := u.c.Read(buf)
		if err != nil {
			return
		}
		pending = append(pending, buf[:n]...)
		for len(pending) >= 2 && pending[0] == '\r' && pending[1] == '\n' {
			pending = pending[2:]
			select {
			case u.pongs <- struct{}{}:
			default:
			}
		}
		if len(pending) == 0 {
			continue
		}
		perr := u.par.ParseSIPStream(pending, func(m sipmsg.Message) { u.msgs <- m })
		pending = nil
		if perr != nil && !errors.Is(perr, sipmsg.ErrParseSipPartial) {
			return
		}
	}
}

func (u *ua) send(s string) error {
	u.wmu.Lock()
	defer u.wmu.Unlock()
	u.c.SetWriteDeadline(time.Now().Add(3 * time.Second))
	_, err := u.c.Write([]byte(s))
	return err
}

func (u *ua) next(timeout time.Duration) (sipmsg.Message, error) {
	select {
	case m, ok := <-u.msgs:
		if !ok {
			return nil, net.ErrClosed
		}
		return m, nil
	case <-time.After(timeout):
		return nil, errors.New("timeout")
	}
}

// response waits for the final response to (callID, method).
func (u *ua) response(callID string, method string, timeout time.Duration) (*sipmsg.Response, error) {
	deadline := time.Now().Add(timeout)
	for {
		m, err := u.next(time.Until(deadline))
		if err != nil {
			return nil, err
		}
		if r, ok := m.(*sipmsg.Response); ok && r.CallID().Value() == callID && string(r.CSeq().MethodName) == method && r.StatusCode >= 200 {
			return r, nil
		}
	}
}

func (u *ua) ping(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	if err := u.send("\r\n\r\n"); err != nil {
		return 0, err
	}
	select {
	case <-u.pongs:
		return time.Since(start), nil
	case <-time.After(timeout):
		return 0, errors.New("no pong")
	}
}

func (u *ua) contact() string {
	return "<sip:" + u.user + "@" + u.local + ";transport=tcp>"
}

func branch() string { return fmt.Sprintf("z9hG4bKprobe%d", time.Now().UnixNano()) }

func (u *ua) registerText(auth string) string {
	u.cseq++
	lines := []string{
		"REGISTER sip:" + u.domain + " SIP/2.0",
		"Via: SIP/2.0/TCP " + u.local + ";branch=" + branch() + ";rport",
		"Max-Forwards: 70",
		"From: <sip:" + u.user + "@" + u.domain + ">;tag=r" + u.user,
		"To: <sip:" + u.user + "@" + u.domain + ">",
		"Call-ID: " + u.callID,
		fmt.Sprintf("CSeq: %d REGISTER", u.cseq),
		"Contact: " + u.contact(),
		"Expires: 600",
	}
	if auth != "" {
		lines = append(lines, "Authorization: "+auth)
	}
	return strings.Join(append(lines, "Content-Length: 0"), "\r\n") + "\r\n\r\n"
}

// register registers (answering the challenge) and returns the final
// status.
func (u *ua) register(ctx context.Context) (int, error) {
	if err := u.send(u.registerText("")); err != nil {
		return 0, err
	}
	r, err := u.response(u.callID, "REGISTER", 5*time.Second)
	if err != nil {
		return 0, err
	}
	if r.StatusCode != 401 {
		return r.StatusCode, nil
	}
	u.nc++
	auth := siptest.Digest(r.GetHeader("WWW-Authenticate").Value(), u.user, "pw-"+u.user, "REGISTER", "sip:"+u.domain, "pr0be", u.nc)
	if err := u.send(u.registerText(auth)); err != nil {
		return 0, err
	}
	r, err = u.response(u.callID, "REGISTER", 5*time.Second)
	if err != nil {
		return 0, err
	}
	return r.StatusCode, nil
}

func sdp(addr string) string {
	host, _, _ := net.SplitHostPort(addr)
	return "v=0\r\no=- 1 1 IN IP4 " + host + "\r\ns=-\r\nc=IN IP4 " + host + "\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
}

// call places one call from a to b through the MCS: INVITE, b answers
// 200, ACK, BYE; it returns the time from INVITE to the 200.
func call(ctx context.Context, a, b *ua, n int) (time.Duration, error) {
	callID := fmt.Sprintf("probe-call-%d-%d", n, time.Now().UnixNano())
	body := sdp(a.local)
	inv := strings.Join([]string{
		"INVITE sip:" + b.user + "@" + a.domain + " SIP/2.0",
		"Via: SIP/2.0/TCP " + a.local + ";branch=" + branch() + ";rport",
		"Max-Forwards: 70",
		"From: <sip:" + a.user + "@" + a.domain + ">;tag=ca" + fmt.Sprint(n),
		"To: <sip:" + b.user + "@" + a.domain + ">",
		"Call-ID: " + callID,
		"CSeq: 1 INVITE",
		"Contact: " + a.contact(),
		"Content-Type: application/sdp",
		fmt.Sprintf("Content-Length: %d", len(body)),
	}, "\r\n") + "\r\n\r\n" + body
	start := time.Now()
	if err := a.send(inv); err != nil {
		return 0, err
	}
	// The callee answers the INVITE the MCS forwards.
	var in *sipmsg.Request
	for in == nil {
		m, err := b.next(5 * time.Second)
		if err != nil {
			return 0, fmt.Errorf("callee: %w", err)
		}
		if r, ok := m.(*sipmsg.Request); ok && r.Method == sipmsg.INVITE && r.CallID().Value() == callID {
			in = r
		}
	}
	answer := sipmsg.NewResponseFromRequest(in, 200, "OK", []byte(sdp(b.local)))
	answer.To().Params.Add("tag", "cb"+fmt.Sprint(n))
	answer.AppendHeader(sipmsg.NewHeader("Contact", b.contact()))
	answer.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	if err := b.send(answer.String()); err != nil {
		return 0, err
	}
	ok, err := a.response(callID, "INVITE", 5*time.Second)
	if err != nil {
		return 0, fmt.Errorf("caller: %w", err)
	}
	setup := time.Since(start)
	if ok.StatusCode != 200 {
		return 0, fmt.Errorf("INVITE answered %d %s", ok.StatusCode, ok.Reason)
	}
	route := ""
	if rr := ok.GetHeader("Record-Route"); rr != nil {
		route = "Route: " + rr.Value() + "\r\n"
	}
	target := "sip:" + b.user + "@" + b.local + ";transport=tcp"
	if c := ok.Contact(); c != nil {
		target = c.Address.String()
	}
	inDialog := func(method string, seq int) string {
		return "%s " + target + " SIP/2.0\r\n" +
			"Via: SIP/2.0/TCP " + a.local + ";branch=" + branch() + ";rport\r\n" + route +
			"Max-Forwards: 70\r\n" +
			"From: <sip:" + a.user + "@" + a.domain + ">;tag=ca" + fmt.Sprint(n) + "\r\n" +
			"To: " + ok.To().Value() + "\r\n" +
			"Call-ID: " + callID + "\r\n" +
			fmt.Sprintf("CSeq: %d %s\r\n", seq, method) +
			"Content-Length: 0\r\n\r\n"
	}
	if err := a.send(fmt.Sprintf(inDialog("ACK", 1), "ACK")); err != nil {
		return 0, err
	}
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
	if err := a.send(fmt.Sprintf(inDialog("BYE", 2), "BYE")); err != nil {
		return 0, err
	}
	// The callee answers the BYE (after the ACK the MCS forwarded).
	for {
		m, err := b.next(5 * time.Second)
		if err != nil {
			return 0, fmt.Errorf("callee BYE: %w", err)
		}
		if r, ok := m.(*sipmsg.Request); ok && r.Method == sipmsg.BYE && r.CallID().Value() == callID {
			if err := b.send(sipmsg.NewResponseFromRequest(r, 200, "OK", nil).String()); err != nil {
				return 0, err
			}
			break
		}
	}
	if r, err := a.response(callID, "BYE", 5*time.Second); err != nil || r.StatusCode != 200 {
		return 0, fmt.Errorf("BYE: %v %v", r, err)
	}
	return setup, nil
}
