package t140

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/pion/rtp"
)

// RFC 4103 figures.
const (
	// ClockRate is the RTP clock of t140 and red text (RFC 4103 3).
	ClockRate = 1000
	// Interval is the transmission interval RFC 4103 5.1 recommends:
	// text typed within it goes in one packet.
	Interval = 300 * time.Millisecond
	// Generations is the redundancy RFC 4103 6 recommends: each T140block
	// is sent once as primary and twice more as redundant data.
	Generations = 2
	// maxPrimary bounds one packet's new text (a paste goes out over a
	// few intervals); it fits the 10-bit RED block length.
	maxPrimary = 512
)

// EncoderConfig sets up one sending text stream.
type EncoderConfig struct {
	// T140PT is the payload type of t140/1000; RedPT that of red/1000.
	// Generations 0 sends plain t140 packets (a peer without red).
	T140PT, RedPT uint8
	Generations   int
	// Interval between packets (RFC 4103 5.1: 300 ms).
	Interval time.Duration
	SSRC     uint32
	// Seq and TS are the first sequence number and the timestamp at
	// Start; RFC 3550 wants both random.
	Seq   uint16
	TS    uint32
	Start time.Time
}

func (c EncoderConfig) validate() error {
	switch {
	case c.T140PT > 127 || c.RedPT > 127:
		return fmt.Errorf("%w: payload types %d/%d", ErrBadConfig, c.T140PT, c.RedPT)
	case c.Generations < 0 || c.Generations > maxRedBlocks:
		return fmt.Errorf("%w: %d redundant generations", ErrBadConfig, c.Generations)
	case c.Generations > 0 && c.RedPT == c.T140PT:
		return fmt.Errorf("%w: red and t140 share payload type %d", ErrBadConfig, c.RedPT)
	case c.Interval <= 0:
		return fmt.Errorf("%w: transmission interval %v", ErrBadConfig, c.Interval)
	}
	return nil
}

// generation is a T140block already sent as primary, kept to be repeated.
type generation struct {
	ts   uint32
	data []byte
	used bool // false for the empty slots before the first packets
}

// Encoder is the sending side of RFC 4103 as a state machine: Write
// buffers typed text, Due says when the next packet may go, Packet builds
// it. It sends at most one packet per interval, and nothing at all once
// every T140block has gone out as primary and as each redundant
// generation; the first packet after such an idle period has the marker
// bit set (RFC 4103 3). Not safe for concurrent use.
type Encoder struct {
	cfg     EncoderConfig
	seq     uint16
	pending []byte
	hist    []generation // the last Generations primaries, oldest first
	sent    bool
	last    time.Time // when the last packet went
	idle    bool      // no packet in flight: the next one is marked
}

// NewEncoder starts a sending text stream.
func NewEncoder(cfg EncoderConfig) (*Encoder, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Encoder{cfg: cfg, seq: cfg.Seq, idle: true, hist: make([]generation, cfg.Generations)}, nil
}

// Write queues T.140 text (UTF-8; a rune cut at the end of p waits for
// the rest of it in the next Write).
func (e *Encoder) Write(p []byte) { e.pending = append(e.pending, p...) }

// Pending is how many bytes of text wait for a packet.
func (e *Encoder) Pending() int { return len(e.pending) }

// Due reports when the next packet should go; ok is false when the
// stream is idle: nothing typed and all redundancy sent.
func (e *Encoder) Due() (at time.Time, ok bool) {
	if !e.busy() {
		return time.Time{}, false
	}
	if !e.sent {
		return e.cfg.Start, true
	}
	return e.last.Add(e.cfg.Interval), true
}

// busy: a complete character waits, or a sent block still owes redundant
// copies.
func (e *Encoder) busy() bool {
	if len(e.pending) > 0 && complete(e.pending) > 0 {
		return true
	}
	for _, g := range e.hist {
		if len(g.data) > 0 {
			return true
		}
	}
	return false
}

// complete is the length of p's prefix that holds whole runes, at most
// maxPrimary bytes.
func complete(p []byte) int {
	n := 0
	for n < len(p) {
		if !utf8.FullRune(p[n:]) {
			break
		}
		_, size := utf8.DecodeRune(p[n:])
		if n+size > maxPrimary {
			break
		}
		n += size
	}
	return n
}

// Packet builds the RTP packet due at now, or reports false when none is
// due yet or the stream is idle.
func (e *Encoder) Packet(now time.Time) ([]byte, bool) {
	due, ok := e.Due()
	if !ok || now.Before(due) {
		return nil, false
	}
	n := complete(e.pending)
	primary := toValidUTF8(e.pending[:n])
	e.pending = append(e.pending[:0], e.pending[n:]...)
	ts := e.cfg.TS + uint32(now.Sub(e.cfg.Start).Milliseconds())

	h := rtp.Header{Version: 2, Marker: e.idle, SequenceNumber: e.seq, Timestamp: ts, SSRC: e.cfg.SSRC}
	var payload []byte
	if e.cfg.Generations == 0 {
		h.PayloadType = e.cfg.T140PT
		payload = primary
	} else {
		h.PayloadType = e.cfg.RedPT
		blocks := make([]Block, 0, len(e.hist)+1)
		for _, g := range e.hist {
			b := Block{PT: e.cfg.T140PT}
			// A block older than the 14-bit offset can carry goes
			// empty (RFC 4103 4.2): it is long sent by then.
			if off := ts - g.ts; g.used && off <= maxTSOffset {
				b.TSOffset, b.Data = uint16(off), g.data
			}
			blocks = append(blocks, b)
		}
		blocks = append(blocks, Block{PT: e.cfg.T140PT, Data: primary})
		var err error
		if payload, err = AppendRED(nil, blocks); err != nil {
			return nil, false // not reached: sizes are bounded above
		}
		copy(e.hist, e.hist[1:])
		e.hist[len(e.hist)-1] = generation{ts: ts, data: primary, used: true}
	}
	pkt, err := (&rtp.Packet{Header: h, Payload: payload}).Marshal()
	if err != nil {
		return nil, false
	}
	e.seq++
	e.sent, e.last = true, now
	e.idle = !e.busy()
	return pkt, true
}

// toValidUTF8 copies p with each invalid byte as U+FFFD: a T140block
// carries whole UTF-8 characters only.
func toValidUTF8(p []byte) []byte {
	out := make([]byte, 0, len(p))
	for len(p) > 0 {
		r, size := utf8.DecodeRune(p)
		if r == utf8.RuneError && size <= 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, p[:size]...)
		}
		p = p[size:]
	}
	return out
}
