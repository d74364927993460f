package netcheck

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/z5vrs/z5/internal/clip"
	"github.com/z5vrs/z5/internal/wire/rtpprobe"
)

// RTPStats are the RTP probe's measurements towards one MCS relay.
type RTPStats struct {
	Relay    netip.Addr  `json:"relay"`
	Ports    []PortStats `json:"ports"`
	Sent     int         `json:"sent"`
	Received int         `json:"received"`
	Loss     float64     `json:"loss"` // fraction 0..1
	// Jitter is RFC 3550 interarrival jitter of the client-to-relay
	// direction, the worst of the ports.
	Jitter Millis `json:"jitter_ms"`
	RTTP50 Millis `json:"rtt_p50_ms"`
	RTTP95 Millis `json:"rtt_p95_ms"`
	EModel EModel `json:"emodel"`
}

// PortStats is one relay port's share of the burst.
type PortStats struct {
	Port     int    `json:"port"`
	Sent     int    `json:"sent"`
	Received int    `json:"received"`
	Jitter   Millis `json:"jitter_ms"`
	Error    string `json:"error,omitempty"`
}

// probeSession is the MCS's answer to POST /api/v1/probe.
type probeSession struct {
	Token     string    `json:"token"`
	Ports     []int     `json:"ports"`
	ExpiresAt time.Time `json:"expires_at"`
	Relay     string    `json:"relay"`
}

// probeRTP opens a probe session on the MCS of r (HTTPS, with the client's
// MCS token) and sends a paced burst of authenticated datagrams to each
// relay port it opened; the relay echoes them.
func (c *checker) probeRTP(ctx context.Context, r Rule) Result {
	if c.opts.MCSToken == "" {
		return result(r, StatusNeedsLogin, 0, "log in (z5 login) to test it: the relay echoes probes only for a logged-in client")
	}
	api := netip.AddrPortFrom(r.Dest, uint16(c.p.Ports.MCSHTTPS))
	ex := c.doHTTPS(ctx, api, r.Name, http.MethodPost, "/api/v1/probe", c.opts.MCSToken)
	switch {
	case ex.err != nil && ex.stage != stageHTTP:
		return skipped(r, fmt.Sprintf("cannot open a probe session: HTTPS to %s failed (see its rule)", api))
	case ex.err != nil:
		return skipped(r, "cannot open a probe session: "+why(ex.err, c.opts.Timeout))
	case ex.status == http.StatusUnauthorized:
		return result(r, StatusNeedsLogin, ex.elapsed, "the MCS refused the saved token (expired or revoked): run z5 login")
	case ex.status == http.StatusTooManyRequests:
		return skipped(r, fmt.Sprintf("the MCS limits probe sessions; retry in %s s", ex.header.Get("Retry-After")))
	case ex.status != http.StatusOK:
		return skipped(r, fmt.Sprintf("the MCS cannot open a probe session: %d %s", ex.status, apiMessage(ex.body)))
	}
	var sess probeSession
	if err := json.Unmarshal(ex.body, &sess); err != nil {
		return skipped(r, "the MCS answered an unreadable probe session: "+err.Error())
	}
	key, err := base64.StdEncoding.DecodeString(sess.Token)
	if err != nil || len(key) < rtpprobe.MinKeySize || len(sess.Ports) == 0 || len(sess.Ports) > 64 {
		return skipped(r, "the MCS answered an unusable probe session")
	}
	relay, err := netip.ParseAddr(sess.Relay)
	if err != nil {
		relay = r.Dest
	}
	relay = relay.Unmap()
	start := time.Now()
	runs := c.burst(ctx, relay, sess.Ports, key)
	st := rtpStats(relay, runs)
	res := c.rtpVerdict(r, st)
	res.Elapsed = Millis(time.Since(start))
	return res
}

// apiMessage extracts the message of the MCS's JSON error body.
func apiMessage(body []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		return clip.String(e.Error.Message, 200)
	}
	return ""
}

// portRun is the burst to one relay port.
type portRun struct {
	port    int
	sent    int
	replies []echo // arrival order
	err     error
}

// echo is one reply: the client's round trip and both timestamps.
type echo struct {
	seq        uint32
	rtt        time.Duration
	sent, recv int64 // client send and relay receive clocks, Unix ns
}

// burst sends RTPPackets datagrams, RTPInterval apart, to every port at
// once (staggered within an interval), and collects echoes until a grace
// period after the last send.
func (c *checker) burst(ctx context.Context, relay netip.Addr, ports []int, key []byte) []portRun {
	runs := make([]portRun, len(ports))
	var wg sync.WaitGroup
	for i, port := range ports {
		runs[i].port = port
		if port < 1 || port > 65535 {
			runs[i].err = fmt.Errorf("port %d out of range", port)
			continue
		}
		offset := c.opts.RTPInterval * time.Duration(i) / time.Duration(len(ports))
		wg.Go(func() { c.burstPort(ctx, netip.AddrPortFrom(relay, uint16(port)), key, offset, &runs[i]) })
	}
	wg.Wait()
	return runs
}

func (c *checker) burstPort(ctx context.Context, dst netip.AddrPort, key []byte, offset time.Duration, run *portRun) {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		run.err = err
		return
	}
	defer conn.Close()
	n := c.opts.RTPPackets
	grace := max(500*time.Millisecond, 4*c.opts.RTPInterval)
	base := time.Now()
	deadline := base.Add(offset + time.Duration(n-1)*c.opts.RTPInterval + grace)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetReadDeadline(deadline)
	// sentAt[seq] is the send time since base, written by the sender and
	// read by the receiver; 0 means not sent.
	sentAt := make([]atomic.Int64, n)
	var refused atomic.Bool
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		buf := make([]byte, rtpprobe.MaxSize+1)
		seen := make([]bool, n)
		for len(run.replies) < n {
			m, err := conn.Read(buf)
			if err != nil {
				if errors.Is(err, syscall.ECONNREFUSED) {
					refused.Store(true)
					continue
				}
				return // deadline or closed
			}
			now := time.Since(base)
			p, err := rtpprobe.Parse(buf[:m], key, rtpprobe.KindReply)
			if err != nil || int(p.Seq) >= n || seen[p.Seq] {
				continue
			}
			at := sentAt[p.Seq].Load()
			if at == 0 {
				continue
			}
			seen[p.Seq] = true
			run.replies = append(run.replies, echo{seq: p.Seq, rtt: now - time.Duration(at), sent: p.Sent, recv: p.Received})
		}
	}()
	t := time.NewTimer(offset)
	defer t.Stop()
	for seq := range n {
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		if ctx.Err() != nil {
			break
		}
		now := time.Now()
		pkt, err := rtpprobe.Request(uint32(seq), now, c.opts.RTPSize, key)
		if err != nil {
			run.err = err
			break
		}
		sentAt[seq].Store(max(int64(now.Sub(base)), 1))
		if _, err := conn.Write(pkt); err != nil && errors.Is(err, syscall.ECONNREFUSED) {
			refused.Store(true)
		}
		run.sent++
		t.Reset(time.Until(base.Add(offset + time.Duration(seq+1)*c.opts.RTPInterval)))
	}
	if run.sent < c.opts.RTPPackets {
		conn.SetReadDeadline(time.Now().Add(grace))
	}
	<-recvDone
	if refused.Load() && len(run.replies) == 0 && run.err == nil {
		run.err = syscall.ECONNREFUSED
	}
}

// rtpStats computes loss, RFC 3550 jitter, RTT percentiles and the E-model.
func rtpStats(relay netip.Addr, runs []portRun) *RTPStats {
	st := &RTPStats{Relay: relay}
	var rtts []time.Duration
	var worst time.Duration
	for _, run := range runs {
		ps := PortStats{Port: run.port, Sent: run.sent, Received: len(run.replies)}
		if run.err != nil && len(run.replies) == 0 {
			ps.Error = why(run.err, 0)
		}
		j := jitter(run.replies)
		ps.Jitter = Millis(j)
		worst = max(worst, j)
		for _, e := range run.replies {
			rtts = append(rtts, e.rtt)
		}
		st.Sent += run.sent
		st.Received += len(run.replies)
		st.Ports = append(st.Ports, ps)
	}
	if st.Sent > 0 {
		st.Loss = 1 - float64(st.Received)/float64(st.Sent)
	}
	st.Jitter = Millis(worst)
	slices.Sort(rtts)
	st.RTTP50 = Millis(percentile(rtts, 50))
	st.RTTP95 = Millis(percentile(rtts, 95))
	st.EModel = Estimate(time.Duration(st.RTTP50), worst, st.Loss)
	return st
}

// jitter is RFC 3550 section 6.4.1's interarrival jitter over replies in
// arrival order: D(i,j) = (Rj - Ri) - (Sj - Si) with S the client's send
// time and R the relay's receive time (their clocks' offset cancels), and
// J += (|D| - J)/16.
func jitter(es []echo) time.Duration {
	var j float64
	for i := 1; i < len(es); i++ {
		d := float64((es[i].recv - es[i-1].recv) - (es[i].sent - es[i-1].sent))
		j += (abs(d) - j) / 16
	}
	return time.Duration(j)
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// percentile is the nearest-rank percentile p (0-100] of sorted ds.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// rtpVerdict judges the burst: no echo at all is a blocked range; silent
// ports among answering ones mean the rule covers only part of the range;
// otherwise quality decides ok or degraded.
func (c *checker) rtpVerdict(r Rule, st *RTPStats) Result {
	add := r
	add.Dest = st.Relay
	var silent, answered []string
	for _, p := range st.Ports {
		if p.Received == 0 {
			silent = append(silent, portString(p.Port))
		} else {
			answered = append(answered, portString(p.Port))
		}
	}
	var res Result
	switch {
	case len(answered) == 0:
		res = result(add, StatusBlocked, 0, fmt.Sprintf("no echo from any of %d relay ports (%s) at %s: outbound UDP %s to the relay is blocked",
			len(st.Ports), strings.Join(silent, ", "), st.Relay, r.Ports))
		if len(st.Ports) > 0 && st.Ports[0].Error != "" {
			res.Detail += " (" + st.Ports[0].Error + ")"
		}
	case len(silent) > 0:
		res = result(add, StatusBlocked, 0, fmt.Sprintf("relay ports %s echoed but %s did not: the rule must cover the whole range %s",
			strings.Join(answered, ", "), strings.Join(silent, ", "), r.Ports))
	default:
		t := c.opts.Thresholds
		var bad []string
		if st.Loss > t.Loss {
			bad = append(bad, fmt.Sprintf("loss %.1f%% > %.1f%%", 100*st.Loss, 100*t.Loss))
		}
		if time.Duration(st.Jitter) > t.Jitter {
			bad = append(bad, fmt.Sprintf("jitter %s > %s", st.Jitter, Millis(t.Jitter)))
		}
		if time.Duration(st.RTTP50) > t.RTT {
			bad = append(bad, fmt.Sprintf("rtt %s > %s", st.RTTP50, Millis(t.RTT)))
		}
		summary := fmt.Sprintf("%d ports echoed; loss %.1f%%, jitter %s, rtt p50 %s p95 %s",
			len(answered), 100*st.Loss, st.Jitter, st.RTTP50, st.RTTP95)
		if len(bad) > 0 {
			res = result(r, StatusDegraded, 0, summary+"; poor for video calls: "+strings.Join(bad, ", "))
		} else {
			res = result(r, StatusOK, 0, summary)
		}
	}
	if st.Relay != r.Dest {
		res.Detail += fmt.Sprintf(" (this MCS relays media from %s)", st.Relay)
	}
	res.Rule, res.Line = r, r.String()
	res.RTP = st
	return res
}
