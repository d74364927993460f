package relay

import (
	"net/netip"
	"slices"
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
	kindSTUN // never carried: ICE is stripped from the SDP
	kindZRTP // carried only when both sides' SDP announced ZRTP
	kindDTLS // carried only when both sides negotiated DTLS-SRTP
	kindTURN // never carried
)

// classify sorts a datagram by its header, checking each kind's fixed
// fields and lengths, so a payload of another protocol that happens to
// start with the right byte (an SNMP or syslog message, a SIP request) is
// kindUnknown. It never fails.
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
	switch c := b[0]; {
	case c <= 3:
		// Magic cookie, and a length that is the rest (RFC 8489 6).
		if len(b) >= 20 && be32(b[4:]) == 0x2112a442 && 20+int(be16(b[2:])) == len(b) {
			return kindSTUN
		}
	case c >= 16 && c <= 19:
		if len(b) >= 12 && string(b[4:8]) == "ZRTP" { // magic cookie (RFC 6189 5)
			return kindZRTP
		}
	case c >= 20 && c <= 63:
		// A DTLS record: version 1.0 (feff) or 1.2 (fefd), and a length
		// that fits (RFC 6347 4.1). Records may be packed in a datagram.
		if len(b) >= 13 && b[1] == 0xfe && (b[2] == 0xff || b[2] == 0xfd) && 13+int(be16(b[11:])) <= len(b) {
			return kindDTLS
		}
	case c >= 64 && c <= 79:
		if len(b) >= 4 && 4+int(be16(b[2:])) <= len(b) {
			return kindTURN
		}
	case c >= 128 && c <= 191:
		return classifyRTP(b)
	}
	return kindUnknown
}

// classifyRTP checks an RTP header (CSRC list and extension included) or
// the first RTCP packet's length (RFC 3550 5.1, 6.4). Payloads and trailers
// are not looked at: SRTP and SRTCP encrypt them.
func classifyRTP(b []byte) kind {
	if len(b) < 8 {
		return kindUnknown
	}
	if pt := b[1]; pt >= 192 && pt <= 223 {
		if 4*(int(be16(b[2:]))+1) > len(b) {
			return kindUnknown
		}
		return kindRTCP
	}
	n := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 {
		if len(b) < n+4 {
			return kindUnknown
		}
		n += 4 + 4*int(be16(b[n+2:]))
	}
	if len(b) < n {
		return kindUnknown
	}
	return kindRTP
}

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

func be32(b []byte) uint32 { return uint32(be16(b))<<16 | uint32(be16(b[2:])) }

// ssrcOf is the SSRC of an RTP packet or the sender SSRC of an RTCP one
// (classify checked the length).
func ssrcOf(k kind, b []byte) uint32 {
	if k == kindRTCP {
		return be32(b[4:])
	}
	return be32(b[8:])
}

// carries reports whether the relay forwards datagrams of kind k on s:
// RTP and RTCP always, DTLS and ZRTP only where both sides' SDP negotiated
// them, nothing else (a relay that forwards any payload is a UDP
// reflector for whatever protocol the bytes speak).
func (s *stream) carries(k kind) bool {
	switch k {
	case kindRTP, kindRTCP:
		return true
	case kindDTLS:
		return s.legs[SideA].dtls && s.legs[SideB].dtls
	case kindZRTP:
		return s.legs[SideA].zrtp && s.legs[SideB].zrtp
	}
	return false
}

// verdict is what becomes of a datagram.
type verdict int

const (
	verdictForward   verdict = iota
	verdictStranger          // source may not latch, or is not the latched address
	verdictNoPeer            // the other side has no address the relay may send to yet
	verdictDisabled          // the stream's m-line has port 0
	verdictMalformed         // not RTP, RTCP or a protocol the call negotiated
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

// leg is everything the relay knows about one side of one stream.
type leg struct {
	allowed netip.Addr // signalling IP: the only source that may latch
	hasSDP  bool
	mux     bool     // the side's SDP carried a=rtcp-mux
	silent  bool     // a=inactive, or c= unspecified (RFC 2543 hold)
	ssrcs   []uint32 // a=ssrc: a latching RTP/RTCP packet must carry one
	dtls    bool     // the side's SDP negotiated DTLS-SRTP
	zrtp    bool     // the side's SDP announced ZRTP
	// encrypted: the side's SDP keyed the stream itself (SDES or DTLS).
	encrypted bool
	ep        [2]endpoint // by component

	// Counters of what this side sent, as accepted by the relay.
	packets, bytes, rtcp uint64
	dropped              uint64 // strangers on this side's ports
	rx                   seqStats
	// reported is what the other side's RTCP said about this side's media.
	reported reportStats
	// kern is what the kernel forwarded for this side (kernel.go).
	kern kernFolded
}

// dest is where packets for this side's component go: the address it
// latched, else the address its SDP names only when that is the side's
// signalling IP (so an SDP cannot aim the relay at a third party) and the
// policy allows it; else nowhere yet.
func (x *leg) dest(comp component, pol *dstPolicy) netip.AddrPort {
	e := &x.ep[comp]
	if e.latched.IsValid() {
		return e.latched // allowed by the policy when it latched
	}
	if e.sdp.IsValid() && e.sdp.Addr() == x.allowed && pol.allows(e.sdp) {
		return e.sdp
	}
	return netip.AddrPort{}
}

// proves reports whether a packet of kind k from src, the side's
// signalling IP, may latch the side: src must be an address the relay may
// send to; when the SDP announced SSRCs an RTP/RTCP packet must carry one
// of them; when the SDP names the signalling IP, src must be a port the
// SDP announced. Without either (a device behind NAT that announces no
// SSRC), the first packet from the signalling IP latches and no later one
// can: the learning window is one packet wide.
func (x *leg) proves(k kind, b []byte, src netip.AddrPort, pol *dstPolicy) bool {
	if !pol.allows(src) {
		return false
	}
	if len(x.ssrcs) > 0 && (k == kindRTP || k == kindRTCP) && !slices.Contains(x.ssrcs, ssrcOf(k, b)) {
		return false
	}
	if rtp := x.ep[compRTP].sdp; rtp.IsValid() && rtp.Addr() == x.allowed {
		return src == rtp || src == x.ep[compRTCP].sdp
	}
	return true
}

// decision is the outcome of one datagram, fully determined by the stream
// state, the bytes, the source and the time.
type decision struct {
	verdict verdict
	dst     netip.AddrPort
	out     component // socket of the other side's pair to send from
	latched bool      // this packet latched its side
	// steady: the direction is settled (RTP between two latched ends)
	// and may move to the kernel (kernel.go).
	steady bool
}

// decide runs the forwarding rule for one datagram arriving on side's
// socket comp from src, updating latches and counters. It does no I/O, so
// tests and fuzzers drive it directly; the caller holds s.mu.
//
// The rule: only the side's signalling IP may latch, with a packet that
// proves it belongs to the leg (see proves); that exact ip:port is then
// the only one accepted (no RTP bleed, no hijack). Only RTP, RTCP and the
// protocols the call negotiated cross. Accepted packets leave by the other
// side's socket toward its latched address, or its SDP address when that
// is its signalling IP, or are dropped (no_peer) until it latches.
func (s *stream) decide(side Side, comp component, b []byte, src netip.AddrPort, now time.Time) decision {
	if !s.enabled {
		return decision{verdict: verdictDisabled}
	}
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	x, y := &s.legs[side], &s.legs[1-side]
	ep := &x.ep[comp]
	k := classify(b)
	if !s.carries(k) {
		k = kindUnknown
	}
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
	case !x.proves(k, b, src, s.policy):
		x.dropped++
		return decision{verdict: verdictStranger}
	default:
		ep.latched = src
		d.latched = true
	}
	if k == kindUnknown {
		return decision{verdict: verdictMalformed}
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
	d.dst = y.dest(d.out, s.policy)
	if !d.dst.IsValid() {
		d.verdict = verdictNoPeer
		return d
	}
	d.verdict = verdictForward
	d.steady = s.steady(side, comp, k, d.out, d.dst)
	return d
}
