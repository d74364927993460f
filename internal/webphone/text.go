package webphone

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/z5vrs/z5/internal/media"
	"github.com/z5vrs/z5/internal/t140"
)

// maxTextChunk bounds the text one page message adds (a paste goes out in
// pieces over a few packets anyway).
const maxTextChunk = 1024

// textLeg is a call's real-time text (RFC 4103) toward the relay: the page
// sends and receives it as plain text over its WebSocket, the relay side
// is T.140 in RED, as every Z5 client speaks it.
type textLeg struct {
	rtp, rtcp *net.UDPConn
	ssrc      uint32
	typed     chan []byte // the page's typing, already T.140
	conv      t140.Typed  // guarded by mu
	mu        sync.Mutex
	cancel    context.CancelFunc // set by start, before running
	running   atomic.Bool
	wg        sync.WaitGroup
}

func newTextLeg(b *bridge) (*textLeg, error) {
	rtpc, rtcpc, err := media.ListenRTPPair(b.g.cfg.Bind)
	if err != nil {
		return nil, err
	}
	if b.g.deps.Relay != nil {
		for _, c := range []*net.UDPConn{rtpc, rtcpc} {
			b.releases = append(b.releases, b.g.deps.Relay.AllowLocal(c.LocalAddr().(*net.UDPAddr).AddrPort()))
		}
	}
	b.releases = append(b.releases, func() { rtpc.Close(); rtcpc.Close() })
	var r [4]byte
	for {
		if _, err := rand.Read(r[:]); err != nil {
			return nil, err
		}
		if s := binary.BigEndian.Uint32(r[:]); s != 0 {
			return &textLeg{rtp: rtpc, rtcp: rtcpc, ssrc: s, typed: make(chan []byte, 64)}, nil
		}
	}
}

// write queues what the page typed (browser text: LF for a new line, BS
// for an erased character); false when the stream is backed up.
func (x *textLeg) write(p []byte) bool {
	if len(p) > maxTextChunk {
		p = p[:maxTextChunk]
	}
	x.mu.Lock()
	p = x.conv.Convert(nil, p)
	x.mu.Unlock()
	select {
	case x.typed <- p:
		return true
	default:
		return false
	}
}

// start runs the text stream toward tp.Remote: the page's typing out as
// T.140 packets (SRTP when the SDP keyed the stream), arriving text to
// onText. It ends with stop.
func (x *textLeg) start(tp *media.TextParams, onText func(text []byte, lost int)) error {
	gens := t140.Generations
	if tp.RedPT == 0 {
		gens = 0
	}
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		return err
	}
	enc, err := t140.NewEncoder(t140.EncoderConfig{T140PT: tp.PT, RedPT: tp.RedPT, Generations: gens,
		Interval: t140.Interval, SSRC: x.ssrc, Seq: binary.BigEndian.Uint16(r[:2]), TS: binary.BigEndian.Uint32(r[2:]),
		Start: time.Now()})
	if err != nil {
		return fmt.Errorf("text: %w", err)
	}
	dec, err := t140.NewDecoder(t140.DecoderConfig{T140PT: tp.PT, RedPT: tp.RedPT, Red: tp.RedPT != 0})
	if err != nil {
		return fmt.Errorf("text: %w", err)
	}
	var sec *media.SRTPContext
	if tp.SRTP != nil {
		if sec, err = media.NewSRTPContext(tp.SRTP); err != nil {
			return fmt.Errorf("text srtp: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	x.cancel = cancel
	remote := tp.Remote
	x.wg.Go(func() {
		typed := x.typed
		if !tp.Send {
			typed = nil
		}
		t140.Send(ctx, enc, typed, func(pkt []byte) error {
			if sec != nil {
				var err error
				if pkt, err = sec.ProtectRTP(pkt); err != nil {
					return err
				}
			}
			_, err := x.rtp.WriteToUDPAddrPort(pkt, remote)
			return err
		})
	})
	x.wg.Go(func() {
		buf := make([]byte, 1500)
		plain := make([]byte, 1500)
		var text []byte
		for {
			n, from, err := x.rtp.ReadFromUDPAddrPort(buf)
			if err != nil {
				return // the socket closed: the call ended
			}
			if from.Addr().Unmap() != remote.Addr() || !tp.Recv || isRTCP(buf[:n]) {
				continue // only the relay sends this stream; reports (muxed) are not text
			}
			pkt := buf[:n]
			if sec != nil {
				if pkt, err = sec.UnprotectRTP(plain[:0], pkt); err != nil {
					continue
				}
			}
			if text, err = dec.Decode(text[:0], pkt); err != nil || len(text) == 0 {
				continue
			}
			onText(text, dec.Lost)
		}
	})
	x.running.Store(true)
	return nil
}

// stop ends the stream's goroutines; the sockets close with the bridge.
func (x *textLeg) stop() {
	if x.cancel != nil {
		x.cancel()
	}
}
