// Package rtpprobe is the wire format of the UDP probes `z5 check` sends
// into the MCS relay's RTP port range, and of the relay's echo. Both ends
// use these pure functions; the relay answers only what Reply accepts.
//
// A probe session starts with an authenticated HTTPS request to the MCS,
// which opens a few relay ports for a few seconds and hands the client a
// random session key. Every datagram carries an HMAC under that key, so the
// open ports answer nobody else; the reply is never larger than the request,
// so they cannot amplify a spoofed flood either.
package rtpprobe

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Wire layout, all integers big-endian:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|              magic "Z5PR" (0x5a 0x35 0x50 0x52)               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  version = 1  |     kind      |        reserved = 0           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                        sequence number                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          client send time (Unix nanoseconds, 64 bits)         |
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   server receive time (Unix nanoseconds; 0 in a request)      |
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  HMAC-SHA256(key, bytes 0-27), first 16 bytes                 |
//	|                                                               |
//	|                                                               |
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  padding (requests only, any bytes, not authenticated)  ...   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// A request may be padded up to MaxSize so it is as large as real media
// (firewalls that police by size see what a call sends); the reply is the
// bare 44-byte header.
const (
	Magic      = "Z5PR"
	Version    = 1
	HeaderSize = 28 // bytes the HMAC covers
	MACSize    = 16
	Size       = HeaderSize + MACSize // a reply, and the smallest request
	// MaxSize is the largest request accepted: an Ethernet MTU's UDP
	// payload over IPv4.
	MaxSize = 1472
	// MinKeySize is the shortest session key accepted.
	MinKeySize = 16
)

// Kind tells requests from replies, so a reply bounced back at the relay
// is never answered (two relay ports cannot be made to echo each other).
type Kind uint8

const (
	KindRequest Kind = 1
	KindReply   Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindRequest:
		return "request"
	case KindReply:
		return "reply"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Errors of Parse; every one means "drop silently" to the relay.
var (
	ErrShort   = errors.New("rtpprobe: datagram too short")
	ErrLong    = errors.New("rtpprobe: datagram too long")
	ErrMagic   = errors.New("rtpprobe: not a probe (bad magic)")
	ErrVersion = errors.New("rtpprobe: unsupported version")
	ErrKind    = errors.New("rtpprobe: unexpected kind")
	ErrMAC     = errors.New("rtpprobe: authentication failed")
	ErrKey     = errors.New("rtpprobe: session key too short")
)

// Packet is a probe's header.
type Packet struct {
	Kind     Kind
	Seq      uint32
	Sent     int64 // client clock, Unix ns
	Received int64 // server clock, Unix ns; zero in requests
}

// SentTime and ReceivedTime convert the timestamps.
func (p Packet) SentTime() time.Time     { return time.Unix(0, p.Sent) }
func (p Packet) ReceivedTime() time.Time { return time.Unix(0, p.Received) }

// MarshalTo writes p, authenticated with key, into buf[:Size] and returns
// Size. Padding, if the caller wants it, is the caller's to append.
func (p Packet) MarshalTo(buf []byte, key []byte) (int, error) {
	if len(key) < MinKeySize {
		return 0, ErrKey
	}
	if len(buf) < Size {
		return 0, fmt.Errorf("rtpprobe: buffer of %d bytes, need %d", len(buf), Size)
	}
	copy(buf[0:4], Magic)
	buf[4] = Version
	buf[5] = byte(p.Kind)
	buf[6], buf[7] = 0, 0
	binary.BigEndian.PutUint32(buf[8:12], p.Seq)
	binary.BigEndian.PutUint64(buf[12:20], uint64(p.Sent))
	binary.BigEndian.PutUint64(buf[20:28], uint64(p.Received))
	sum := mac(key, buf[:HeaderSize])
	copy(buf[HeaderSize:Size], sum[:MACSize])
	return Size, nil
}

// Request builds a request of size bytes (Size..MaxSize; smaller sizes are
// raised to Size) with zero padding.
func Request(seq uint32, sent time.Time, size int, key []byte) ([]byte, error) {
	size = min(max(size, Size), MaxSize)
	buf := make([]byte, size)
	if _, err := (Packet{Kind: KindRequest, Seq: seq, Sent: sent.UnixNano()}).MarshalTo(buf, key); err != nil {
		return nil, err
	}
	return buf, nil
}

// Parse checks b's framing and HMAC under key and returns its header.
// want is the kind the caller expects: a relay parses requests, a client
// replies. Replies must be exactly Size bytes; requests may be padded.
func Parse(b []byte, key []byte, want Kind) (Packet, error) {
	if len(key) < MinKeySize {
		return Packet{}, ErrKey
	}
	if len(b) < Size {
		return Packet{}, ErrShort
	}
	if len(b) > MaxSize || (want == KindReply && len(b) != Size) {
		return Packet{}, ErrLong
	}
	if string(b[0:4]) != Magic {
		return Packet{}, ErrMagic
	}
	if b[4] != Version {
		return Packet{}, ErrVersion
	}
	p := Packet{
		Kind:     Kind(b[5]),
		Seq:      binary.BigEndian.Uint32(b[8:12]),
		Sent:     int64(binary.BigEndian.Uint64(b[12:20])),
		Received: int64(binary.BigEndian.Uint64(b[20:28])),
	}
	if p.Kind != want || b[6] != 0 || b[7] != 0 {
		return Packet{}, ErrKind
	}
	sum := mac(key, b[:HeaderSize])
	if !hmac.Equal(sum[:MACSize], b[HeaderSize:Size]) {
		return Packet{}, ErrMAC
	}
	if want == KindRequest && p.Received != 0 {
		return Packet{}, ErrKind
	}
	return p, nil
}

// Reply is the relay's decision for one datagram: when req is a valid
// request under key it writes the reply (the request's header with the
// server's receive time and kind reply, re-authenticated) into out and
// returns its length, which is Size and so never more than len(req).
// Anything else returns an error and the datagram is dropped.
func Reply(req []byte, key []byte, now time.Time, out []byte) (int, error) {
	p, err := Parse(req, key, KindRequest)
	if err != nil {
		return 0, err
	}
	p.Kind = KindReply
	p.Received = now.UnixNano()
	if p.Received == 0 {
		p.Received = 1 // zero means "no receive time"
	}
	return p.MarshalTo(out, key)
}

func mac(key, data []byte) [sha256.Size]byte {
	h := hmac.New(sha256.New, key)
	h.Write(data)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
