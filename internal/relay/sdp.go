package relay

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

const (
	// maxSDPSize bounds the body the relay parses; real offers are a few KiB.
	maxSDPSize = 32 << 10
	// maxStreams bounds the m-lines of one description; Config.MaxStreams
	// (at most this) bounds those that get ports.
	maxStreams = 16
	// maxSSRCs bounds the a=ssrc values kept per m-line.
	maxSSRCs = 8
)

// sdpStream is what one m-line tells the relay about the side that sent it.
type sdpStream struct {
	media    string
	port     int  // 0: the m-line is disabled
	udp      bool // a transport the relay can carry
	secure   bool // SRTP: RTCP report blocks are encrypted
	addr     netip.Addr
	rtcp     netip.AddrPort // from a=rtcp; invalid when absent
	mux      bool
	inactive bool             // a=inactive, or a c= of 0.0.0.0 (RFC 2543 hold)
	clocks   map[uint8]uint32 // payload type -> clock rate from a=rtpmap
	ssrcs    []uint32         // a=ssrc (RFC 5576): the sources the side sends
	dtls     bool             // UDP/TLS/... with a=fingerprint (RFC 5763)
	zrtp     bool             // a=zrtp-hash (RFC 6189)
	// encrypted: the endpoints key the stream themselves, SDES
	// (RTP/SAVP(F) with a=crypto, RFC 4568) or DTLS (a=fingerprint); the
	// relay never sees the keys and forwards the packets as they come.
	encrypted bool
}

// enabled reports whether the relay should carry this m-line.
func (m *sdpStream) enabled() bool { return m.port != 0 && m.udp }

// rtpPeer is the address the side wants RTP sent to.
func (m *sdpStream) rtpPeer() netip.AddrPort {
	if !m.enabled() || !m.addr.IsValid() {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(m.addr, uint16(m.port))
}

// rtcpPeer is the address the side wants RTCP sent to when not muxed:
// a=rtcp (RFC 3605) or else port+1.
func (m *sdpStream) rtcpPeer() netip.AddrPort {
	if m.rtcp.IsValid() {
		return m.rtcp
	}
	if !m.enabled() || !m.addr.IsValid() || m.port >= 65535 {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(m.addr, uint16(m.port+1))
}

// parsedSDP is a parsed body and what the relay learnt from each m-line.
type parsedSDP struct {
	desc    *sdp.SessionDescription
	ice     bool // the body carried ICE attributes
	streams []sdpStream
}

// iceAttributes are dropped: the relay is the only candidate either client
// gets, and it does not answer connectivity checks.
var iceAttributes = []string{
	"candidate", "remote-candidates", "end-of-candidates",
	"ice-ufrag", "ice-pwd", "ice-options", "ice-lite", "ice-mismatch", "ice-pacing",
}

// parseSDP parses and checks an offer or answer. Every error wraps
// ErrBadSDP and says which line is at fault.
func parseSDP(body []byte) (*parsedSDP, error) {
	if len(body) > maxSDPSize {
		return nil, fmt.Errorf("%w: body of %d bytes exceeds %d", ErrBadSDP, len(body), maxSDPSize)
	}
	// The parser accepts an empty body as an empty description; an offer
	// without v= is no offer (RFC 4566 section 5).
	if !bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("v=")) {
		return nil, fmt.Errorf("%w: body does not start with v=", ErrBadSDP)
	}
	// RFC 4566 text never holds NUL or a CR outside a line's CRLF; the
	// parser would keep such a byte inside a value and the rewrite would
	// write out a description no one parses back.
	for i, b := range body {
		if b == 0 || (b == '\r' && (i+1 == len(body) || body[i+1] != '\n')) {
			return nil, fmt.Errorf("%w: stray control byte at offset %d", ErrBadSDP, i)
		}
	}
	desc := new(sdp.SessionDescription)
	if err := desc.UnmarshalString(string(body)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSDP, err)
	}
	if len(desc.MediaDescriptions) > maxStreams {
		return nil, fmt.Errorf("%w: %d m-lines, at most %d", ErrBadSDP, len(desc.MediaDescriptions), maxStreams)
	}
	// With ICE, c=0.0.0.0 means "see the candidates" (RFC 8839), not hold:
	// the candidates go, and the relay waits for the client to latch.
	ice := hasICE(desc.Attributes)
	for _, md := range desc.MediaDescriptions {
		ice = ice || hasICE(md.Attributes)
	}
	p := &parsedSDP{desc: desc, ice: ice, streams: make([]sdpStream, len(desc.MediaDescriptions))}
	var sessAddr netip.Addr
	sessHold := false
	if c := desc.ConnectionInformation; c != nil {
		a, hold, err := connAddr(c)
		if err != nil {
			return nil, fmt.Errorf("%w: session c= line: %w", ErrBadSDP, err)
		}
		sessAddr, sessHold = a, hold && !ice
	}
	sessInactive := hasAttr(desc.Attributes, "inactive")

	for i, md := range desc.MediaDescriptions {
		st := &p.streams[i]
		st.media = md.MediaName.Media
		st.port = md.MediaName.Port.Value
		st.udp = !slices.Contains(md.MediaName.Protos, "TCP")
		st.secure = slices.Contains(md.MediaName.Protos, "SAVP") || slices.Contains(md.MediaName.Protos, "SAVPF")
		st.mux = hasAttr(md.Attributes, "rtcp-mux")
		st.dtls = slices.Contains(md.MediaName.Protos, "TLS") &&
			(hasAttr(md.Attributes, "fingerprint") || hasAttr(desc.Attributes, "fingerprint"))
		st.zrtp = hasAttr(md.Attributes, "zrtp-hash") || hasAttr(desc.Attributes, "zrtp-hash")
		st.encrypted = (st.secure && hasAttr(md.Attributes, "crypto")) || st.dtls ||
			(slices.Contains(md.MediaName.Protos, "DTLS") && (hasAttr(md.Attributes, "fingerprint") || hasAttr(desc.Attributes, "fingerprint")))
		st.inactive = hasAttr(md.Attributes, "inactive") || (sessInactive && !hasDirection(md.Attributes))
		where := fmt.Sprintf("m-line %d (%s)", i+1, st.media)

		addr, hold := sessAddr, sessHold
		if c := md.ConnectionInformation; c != nil {
			a, h, err := connAddr(c)
			if err != nil {
				return nil, fmt.Errorf("%w: %s c= line: %w", ErrBadSDP, where, err)
			}
			addr, hold = a, h && !ice
		} else if desc.ConnectionInformation == nil && st.port != 0 {
			return nil, fmt.Errorf("%w: %s has no c= line and there is no session c= line", ErrBadSDP, where)
		}
		st.addr = addr
		st.inactive = st.inactive || hold

		for _, a := range md.Attributes {
			switch a.Key {
			case "rtcp":
				ap, err := parseRTCPAttr(a.Value, addr)
				if err != nil {
					return nil, fmt.Errorf("%w: %s a=rtcp:%s: %w", ErrBadSDP, where, a.Value, err)
				}
				st.rtcp = ap
			case "rtpmap":
				pt, clock, ok := parseRtpmap(a.Value)
				if !ok {
					return nil, fmt.Errorf("%w: %s a=rtpmap:%s: want <payload type> <encoding>/<clock rate>", ErrBadSDP, where, a.Value)
				}
				if st.clocks == nil {
					st.clocks = make(map[uint8]uint32)
				}
				st.clocks[pt] = clock
			case "ssrc":
				id, _, _ := strings.Cut(a.Value, " ")
				// A malformed value proves nothing, so it is ignored rather
				// than refused: the leg then latches without SSRC proof.
				n, err := strconv.ParseUint(id, 10, 32)
				if err == nil && !slices.Contains(st.ssrcs, uint32(n)) && len(st.ssrcs) < maxSSRCs {
					st.ssrcs = append(st.ssrcs, uint32(n))
				}
			}
		}
	}
	return p, nil
}

// requireSRTP is the [relay] require_srtp decision on one description:
// every stream the relay would carry must be encrypted end to end (see
// sdpStream.encrypted); a disabled (port 0) m-line carries nothing and
// passes. ZRTP over RTP/AVP is refused: nothing in the SDP proves it.
func (p *parsedSDP) requireSRTP() error {
	for i, st := range p.streams {
		if st.enabled() && !st.encrypted {
			proto := strings.Join(p.desc.MediaDescriptions[i].MediaName.Protos, "/")
			return fmt.Errorf("%w: m-line %d (%s) over %s without a=crypto or a=fingerprint", ErrSRTPRequired, i+1, st.media, proto)
		}
	}
	return nil
}

// connAddr reads a c= line. A FQDN is allowed (RFC 4566) but gives no
// address: the relay then waits for the side to latch. 0.0.0.0 is hold.
func connAddr(c *sdp.ConnectionInformation) (addr netip.Addr, hold bool, err error) {
	if c.Address == nil || c.Address.Address == "" {
		return netip.Addr{}, false, fmt.Errorf("no address")
	}
	// "224.2.1.1/127": the parser keeps TTL and range in the address.
	host, _, _ := strings.Cut(c.Address.Address, "/")
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false, nil
	}
	if a.IsMulticast() {
		return netip.Addr{}, false, fmt.Errorf("multicast address %s cannot be relayed", a)
	}
	if a.IsUnspecified() {
		return netip.Addr{}, true, nil
	}
	return a.Unmap(), false, nil
}

// parseRTCPAttr reads "port [nettype addrtype address]" (RFC 3605).
func parseRTCPAttr(v string, def netip.Addr) (netip.AddrPort, error) {
	f := strings.Fields(v)
	if len(f) != 1 && len(f) != 4 {
		return netip.AddrPort{}, fmt.Errorf("want port or port, nettype, addrtype and address")
	}
	port, err := strconv.ParseUint(f[0], 10, 16)
	if err != nil || port == 0 {
		return netip.AddrPort{}, fmt.Errorf("bad port %q", f[0])
	}
	addr := def
	if len(f) == 4 {
		if a, err := netip.ParseAddr(f[3]); err == nil {
			addr = a.Unmap()
		}
	}
	if !addr.IsValid() || addr.IsUnspecified() {
		return netip.AddrPort{}, nil
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// parseRtpmap reads "96 H264/90000" or "111 opus/48000/2".
func parseRtpmap(v string) (pt uint8, clock uint32, ok bool) {
	ptS, enc, found := strings.Cut(strings.TrimSpace(v), " ")
	if !found {
		return 0, 0, false
	}
	n, err := strconv.ParseUint(ptS, 10, 7)
	if err != nil {
		return 0, 0, false
	}
	parts := strings.Split(strings.TrimSpace(enc), "/")
	if len(parts) < 2 {
		return 0, 0, false
	}
	c, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil || c == 0 {
		return 0, 0, false
	}
	return uint8(n), uint32(c), true
}

func hasAttr(as []sdp.Attribute, key string) bool {
	for _, a := range as {
		if a.Key == key {
			return true
		}
	}
	return false
}

func hasICE(as []sdp.Attribute) bool {
	return hasAttr(as, "candidate") || hasAttr(as, "ice-ufrag")
}

func hasDirection(as []sdp.Attribute) bool {
	for _, a := range as {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return true
		}
	}
	return false
}

// rewrite anchors the description on the relay: every c= that names a
// host becomes adv (a c= of 0.0.0.0 stays, so RFC 2543 hold still means
// hold), m-line i gets port ports[i] (0 disables it), a=rtcp names ports[i]+1,
// ICE attributes go, and o= names adv with the given session version. All
// other lines pass unchanged. It modifies p.desc.
func (p *parsedSDP) rewrite(ports []int, adv netip.Addr, version uint64) ([]byte, error) {
	d := p.desc
	addrType := "IP4"
	if adv.Is6() {
		addrType = "IP6"
	}
	anchor := func(c *sdp.ConnectionInformation) {
		if c == nil || c.Address == nil {
			return
		}
		if a, err := netip.ParseAddr(c.Address.Address); err == nil && a.IsUnspecified() && !p.ice {
			return
		}
		c.NetworkType, c.AddressType = "IN", addrType
		c.Address = &sdp.Address{Address: adv.String()}
	}

	d.Origin.NetworkType = "IN"
	d.Origin.AddressType = addrType
	d.Origin.UnicastAddress = adv.String()
	d.Origin.SessionVersion = version
	anchor(d.ConnectionInformation)
	d.Attributes = stripICE(d.Attributes)

	for i, md := range d.MediaDescriptions {
		md.MediaName.Port = sdp.RangedPort{Value: ports[i]}
		anchor(md.ConnectionInformation)
		attrs := stripICE(md.Attributes)
		for j, a := range attrs {
			if a.Key != "rtcp" || ports[i] == 0 {
				continue
			}
			v := strconv.Itoa(ports[i] + 1)
			if len(strings.Fields(a.Value)) == 4 {
				v += " IN " + addrType + " " + adv.String()
			}
			attrs[j].Value = v
		}
		md.Attributes = attrs
	}
	out, err := d.Marshal()
	if err != nil {
		return nil, fmt.Errorf("%w: marshal: %w", ErrBadSDP, err)
	}
	return out, nil
}

func stripICE(as []sdp.Attribute) []sdp.Attribute {
	return slices.DeleteFunc(as, func(a sdp.Attribute) bool {
		return slices.Contains(iceAttributes, a.Key)
	})
}
