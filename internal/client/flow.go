package client

import (
	"net/netip"
	"slices"
	"time"
)

// The client's SIP timing defaults, all in one place. A zero field of
// FlowOptions takes the default here.
//
// The keepalive is sized for failover, not for NAT bindings: a node that
// hangs (its kernel still holds the TCP connection, nothing answers) is
// noticed between PongTimeout and PingInterval+PongTimeout after it hangs,
// and the client re-registers at the next MCS straight after. Pings go out
// every 80-100% of PingInterval; each costs three packets (CRLFCRLF, the
// CRLF pong, an ACK), about 162 bytes at the IP layer over IPv4.
const (
	DefaultPingInterval   = 4 * time.Second
	DefaultPongTimeout    = 3 * time.Second
	DefaultAttemptTimeout = 5 * time.Second
	DefaultHealthTimeout  = time.Second

	// flowCheck: a flow the MCS closed (a crash or restart resets the TCP
	// connection) is noticed this fast, without waiting for a ping.
	flowCheck = 250 * time.Millisecond
	// firstBackoff and maxBackoff pace re-registration rounds that find
	// no MCS at all.
	firstBackoff = 500 * time.Millisecond
	maxBackoff   = 30 * time.Second
	// registerTTL is the registration lifetime asked for (seconds).
	registerTTL = 600
	// pingWriteTimeout bounds writing one ping into the connection.
	pingWriteTimeout = 5 * time.Second
	// unregisterTimeout bounds the REGISTER Expires: 0 sent at Close.
	unregisterTimeout = 3 * time.Second
	// roundTimeout bounds one pass over every MCS address.
	roundTimeout = 20 * time.Second
)

// FlowOptions time how a phone watches its connection to the MCS (an RFC
// 5626 flow, kept alive by CRLF pings, §4.4.1) and how fast it leaves a
// node that stops answering.
type FlowOptions struct {
	// PingInterval is how often a CRLF ping goes out on the flow.
	PingInterval time.Duration
	// PongTimeout: a flow that delivers nothing this long after a ping is
	// dead, and the client re-registers elsewhere.
	PongTimeout time.Duration
	// AttemptTimeout bounds one registration attempt at one MCS address
	// (OPTIONS, REGISTER and its digest retry): what a node that accepts
	// TCP but never answers costs before the next one is tried.
	AttemptTimeout time.Duration
	// HealthTimeout bounds the lookup of the health-filtered MCS name
	// (lb.mcs) before a failover: it only orders the candidates, so a
	// nameserver hung with the node must not hold the failover up.
	HealthTimeout time.Duration
}

func (f FlowOptions) withDefaults() FlowOptions {
	set := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	set(&f.PingInterval, DefaultPingInterval)
	set(&f.PongTimeout, DefaultPongTimeout)
	set(&f.AttemptTimeout, DefaultAttemptTimeout)
	set(&f.HealthTimeout, DefaultHealthTimeout)
	return f
}

// kaAction is what the flow watch does next.
type kaAction int

const (
	kaWait kaAction = iota // nothing due yet
	kaPing                 // send a CRLF ping now
	kaPong                 // the outstanding ping was answered
	kaDead                 // the flow is dead: fail over
)

// keepalive decides the flow watch's next step at now. pingSent is when
// the outstanding ping went out (zero: none is), nextPing when the next one
// is due, lastData when the flow last delivered any bytes: a pong or any
// message after the ping proves the node alive. It also returns when to
// look again. One ping is outstanding at a time, so a PongTimeout longer
// than PingInterval still ends in a verdict.
func keepalive(now, pingSent, nextPing, lastData time.Time, f FlowOptions) (kaAction, time.Time) {
	if !pingSent.IsZero() {
		switch {
		case !lastData.Before(pingSent):
			return kaPong, nextPing
		case now.Sub(pingSent) >= f.PongTimeout:
			return kaDead, time.Time{}
		default:
			return kaWait, pingSent.Add(f.PongTimeout)
		}
	}
	if now.Before(nextPing) {
		return kaWait, nextPing
	}
	return kaPing, now.Add(f.PongTimeout)
}

// pingGap is the time to the next ping: between 80% and 100% of the
// interval, drawn afresh each time (RFC 5626 §4.4.1), so clients that
// registered together (after a failover, all of a node's) do not ping in
// step. u is uniform in [0, 1).
func pingGap(interval time.Duration, u float64) time.Duration {
	return interval - time.Duration(u*0.2*float64(interval))
}

// target is one MCS address to register with, and the name it came from.
type target struct {
	host string
	addr netip.Addr
}

// failoverOrder lists every address of hosts once, in the order to try
// them: those the provider's DNS lists as healthy (the lb.mcs name) first,
// then the others, keeping the hosts' order within each group. avoid, the
// node whose flow just failed, goes last whatever DNS says: DNS learns of a
// hung node only dead_after later, and a hung node's kernel still accepts
// TCP, so trying it first would cost a whole attempt.
func failoverOrder(hosts []string, addrs map[string][]netip.Addr, healthy []netip.Addr, avoid netip.Addr) []target {
	var out []target
	seen := map[netip.Addr]bool{}
	for _, h := range hosts {
		for _, a := range addrs[h] {
			if !seen[a] {
				seen[a] = true
				out = append(out, target{h, a})
			}
		}
	}
	rank := func(t target) int {
		switch {
		case avoid.IsValid() && t.addr == avoid:
			return 2
		case slices.Contains(healthy, t.addr):
			return 0
		default:
			return 1
		}
	}
	slices.SortStableFunc(out, func(a, b target) int { return rank(a) - rank(b) })
	return out
}
