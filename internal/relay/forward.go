package relay

import (
	"net/netip"
	"time"
)

// component is the socket of a port pair a packet arrived on or leaves by.
type component int

const (
	compRTP  component = 0 // even port
	compRTCP component = 1 // port+1
)

func (c component) String() string {
	if c == compRTCP {
		return "rtcp"
	}
	return "rtp"
}

// kind is what a datagram looks like by its first byte (RFC 7983 section 7)
// and, for RTP/RTCP, its payload type (RFC 5761 section 4).
type kind int

const (
	kindUnknown kind = iota
	kindRTP
	kindRTCP
	kindSTUN // ICE is stripped from the SDP, but consent checks still pass
	kindZRTP
	kindDTLS // DTLS-SRTP keys are negotiated end to end, through the relay
	kindTURN
)

// classify sorts a datagram. It reads at most two bytes and never fails:
// anything it cannot place is kindUnknown.
//
//	+----------------+
//	|        [0..3] -+--> STUN
//	|      [16..19] -+--> ZRTP
//	|      [20..63] -+--> DTLS
//	|      [64..79] -+--> TURN channel
//	|    [128..191] -+--> RTP/RTCP (version 2)
//	+----------------+
//
// RTP and RTCP share a port under rtcp-mux; RTCP packet types 192-223 sit
// where RTP payload types 64-95 with the marker bit set would, which is why
// those payload types are never used for RTP.
func classify(b []byte) kind {
	if len(b) == 0 {
		return kindUnknown
	}
	// Each kind also needs its fixed header, so a stray byte is not media.
	switch c := b[0]; {
	case c <= 3:
		return shortIs(b, 20, kindSTUN)
	case c >= 16 && c <= 19:
		return shortIs(b, 12, kindZRTP)
	case c >= 20 && c <= 63:
		return shortIs(b, 13, kindDTLS)
	case c >= 64 && c <= 79:
		return shortIs(b, 4, kindTURN)
	case c >= 128 && c <= 191:
		if len(b) < 2 {
			return kindUnknown
		}
		if pt := b[1]; pt >= 192 && pt <= 223 {
			if len(b) < 8 { // header and sender SSRC
				return kindUnknown
			}
			return kindRTCP
		}
		if len(b) < 12 { // fixed RTP header
			return kindUnknown
		}
		return kindRTP
	}
	return kindUnknown
}

// shortIs is k when b holds at least n bytes.
func shortIs(b []byte, n int, k kind) kind {
	if len(b) < n {
		return kindUnknown
	}
	return k
}

// verdict is what becomes of a datagram.
type verdict int

const (
	verdictForward   verdict = iota
	verdictStranger          // source may not latch, or is not the latched address
	verdictNoPeer            // the other side has no address yet (no SDP, hold)
	verdictDisabled          // the stream's m-line has port 0
	verdictMalformed         // not RTP, RTCP or a known multiplexed protocol
	numVerdicts
)

func (v verdict) String() string {
	return [...]string{"forward", "stranger", "no_peer", "disabled", "malformed"}[v]
}

// endpoint is one side's address for one component.
type endpoint struct {
	sdp     netip.AddrPort // from the side's SDP; invalid when unknown or on hold
	latched netip.AddrPort // the exact source of the first accepted packet
}

func (e *endpoint) dest() netip.AddrPort {
	if e.latched.IsValid() {
		return e.latched
	}
	return e.sdp
}

// leg is everything the relay knows about one side of one stream.
type leg struct {
	allowed netip.Addr // signalling IP: the only source that may latch
	hasSDP  bool
	mux     bool        // the side's SDP carried a=rtcp-mux
	silent  bool        // a=inactive, or c= unspecified (RFC 2543 hold)
	ep      [2]endpoint // by component

	// Counters of what this side sent, as accepted by the relay.
	packets, bytes, rtcp uint64
	dropped              uint64 // strangers on this side's ports
	rx                   seqStats
	// reported is what the other side's RTCP said about this side's media.
	reported reportStats
}

// decision is the outcome of one datagram, fully determined by the stream
// state, the bytes, the source and the time.
type decision struct {
	verdict verdict
	dst     netip.AddrPort
	out     component // socket of the other side's pair to send from
	latched bool      // this packet latched its side
}

// decide runs the forwarding rule for one datagram arriving on side's
// socket comp from src, updating latches and counters. It does no I/O, so
// tests and fuzzers drive it directly; the caller holds s.mu.
//
// The rule: only the side's signalling IP may latch; the first packet that
// looks like media from that IP latches the exact ip:port; afterwards only
// that ip:port is accepted (no RTP bleed, no hijack). Accepted packets leave
// by the other side's socket toward its latched address, or the address its
// SDP names until it latches.
func (s *stream) decide(side Side, comp component, b []byte, src netip.AddrPort, now time.Time) decision {
	if !s.enabled {
		return decision{verdict: verdictDisabled}
	}
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	x, y := &s.legs[side], &s.legs[1-side]
	ep := &x.ep[comp]
	k := classify(b)
	var d decision
	switch {
	case ep.latched.IsValid():
		if src != ep.latched {
			x.dropped++
			return decision{verdict: verdictStranger}
		}
	case !x.allowed.IsValid() || src.Addr() != x.allowed:
		x.dropped++
		return decision{verdict: verdictStranger}
	case k == kindUnknown:
		// Junk from the right IP does not get to pick the port.
		return decision{verdict: verdictMalformed}
	default:
		ep.latched = src
		d.latched = true
	}
	if k == kindUnknown {
		return decision{verdict: verdictMalformed, latched: d.latched}
	}

	x.packets++
	x.bytes += uint64(len(b))
	isRTCP := comp == compRTCP || k == kindRTCP
	switch {
	case k == kindRTP && comp == compRTP:
		x.rx.update(b, now, s.clockFor(b[1]&0x7f))
	case k == kindRTCP:
		x.rtcp++
		if !s.secure {
			// Report blocks sent by x describe the media y sent.
			y.reported.update(b)
		}
	}

	d.out = compRTP
	if isRTCP && !(x.mux && y.mux) {
		d.out = compRTCP
	}
	d.dst = y.ep[d.out].dest()
	if !d.dst.IsValid() {
		d.verdict = verdictNoPeer
		return d
	}
	d.verdict = verdictForward
	return d
}
