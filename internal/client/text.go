package client

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/z5vrs/z5/internal/media"
	"github.com/z5vrs/z5/internal/t140"
)

// TextOptions turn on the user's side of real-time text (RFC 4103). The
// text stream is negotiated in every call; without TextOptions it only
// goes to the transcript.
type TextOptions struct {
	// Typed is what the user types, as typed (DEL or BS erases, CR or LF
	// ends a line); nil sends nothing.
	Typed <-chan []byte
	// Out shows arriving text live: characters, "\b \b" for an erase and
	// "\n" for a new line. nil shows nothing.
	Out io.Writer
	// Echo also shows on Out what is typed (a terminal does not echo
	// it), each side's lines labelled "you: " and "them: ".
	Echo bool
}

// transcriptName is the call's text transcript in the record directory:
// both directions, one timestamped line each, appended call after call.
const transcriptName = "text.log"

// textStream runs one call's text: a sender from the typed channel and a
// receiver that shows and transcribes what arrives.
type textStream struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex // guards the following
	transcript *os.File   // nil without a record dir
	rx, tx     t140.Editor
	out        io.Writer
	echo       bool
	side       byte // with echo, whose line the screen is on: '>', '<', or 0 at a line start
	rec        *media.Recorder
	lost       int
}

// newTextSSRC draws the text stream's SSRC (announced in the SDP).
func newTextSSRC() (uint32, error) {
	var b [4]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("media: random text ssrc: %w", err)
		}
		if s := binary.BigEndian.Uint32(b[:]); s != 0 {
			return s, nil
		}
	}
}

// startText starts the text stream on conn toward tp.Remote.
func startText(ctx context.Context, conn *net.UDPConn, ssrc uint32, tp *media.TextParams, mo MediaOptions, rec *media.Recorder, label string) (*textStream, error) {
	gens := t140.Generations
	if tp.RedPT == 0 {
		gens = 0
	}
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, fmt.Errorf("media: random text sequence: %w", err)
	}
	enc, err := t140.NewEncoder(t140.EncoderConfig{T140PT: tp.PT, RedPT: tp.RedPT, Generations: gens,
		Interval: t140.Interval, SSRC: ssrc, Seq: binary.BigEndian.Uint16(r[:2]), TS: binary.BigEndian.Uint32(r[2:]),
		Start: time.Now()})
	if err != nil {
		return nil, err
	}
	dec, err := t140.NewDecoder(t140.DecoderConfig{T140PT: tp.PT, RedPT: tp.RedPT, Red: tp.RedPT != 0})
	if err != nil {
		return nil, err
	}
	var sec *media.SRTPContext // the SDP keyed the text stream: SRTP
	if tp.SRTP != nil {
		if sec, err = media.NewSRTPContext(tp.SRTP); err != nil {
			return nil, fmt.Errorf("text srtp: %w", err)
		}
	}
	ts := &textStream{rec: rec}
	if mo.Text != nil {
		ts.out, ts.echo = mo.Text.Out, mo.Text.Echo
	}
	if mo.RecordDir != "" {
		f, err := os.OpenFile(filepath.Join(mo.RecordDir, transcriptName), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("text transcript: %w", err)
		}
		ts.transcript = f
		fmt.Fprintf(f, "%s # %s\n", stamp(time.Now()), label)
	}
	ctx, ts.cancel = context.WithCancel(ctx)
	typed := make(chan []byte)
	if mo.Text != nil && mo.Text.Typed != nil && tp.Send {
		// Typing is turned into T.140 and noted before it is sent.
		ts.wg.Go(func() {
			defer close(typed)
			var conv t140.Typed
			for {
				select {
				case <-ctx.Done():
					return
				case p, ok := <-mo.Text.Typed:
					if !ok {
						return
					}
					p = conv.Convert(nil, p)
					ts.local(p, time.Now())
					select {
					case typed <- p:
					case <-ctx.Done():
						return
					}
				}
			}
		})
	} else {
		close(typed)
	}
	remote := net.UDPAddrFromAddrPort(tp.Remote)
	ts.wg.Go(func() {
		t140.Send(ctx, enc, typed, func(pkt []byte) error {
			if sec != nil {
				var err error
				if pkt, err = sec.ProtectRTP(pkt); err != nil {
					return err
				}
			}
			_, err := conn.WriteToUDP(pkt, remote)
			return err
		})
	})
	ts.wg.Go(func() {
		buf := make([]byte, 1500)
		var text, plain []byte
		if sec != nil {
			plain = make([]byte, len(buf))
		}
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return // the socket closed: the call ended
			}
			// Only the relay sends us this stream.
			if from.Addr().Unmap() != tp.Remote.Addr() || !tp.Recv {
				continue
			}
			pkt := buf[:n]
			if sec != nil {
				if pkt, err = sec.UnprotectRTP(plain, pkt); err != nil {
					continue // forged, corrupted, replayed, or SRTCP
				}
			}
			text, err = dec.Decode(text[:0], pkt)
			if err != nil || len(text) == 0 {
				continue
			}
			ts.remote(text, time.Now(), dec.Lost)
		}
	})
	return ts, nil
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// local notes what this side typed.
func (ts *textStream) local(p []byte, at time.Time) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	before := ts.tx.Line()
	ops, lines := ts.tx.Feed(p, at)
	if ts.echo {
		ts.show('>', before, ops)
	}
	for _, l := range lines {
		ts.writeLine(">", l)
	}
}

// remote shows and notes what arrived.
func (ts *textStream) remote(p []byte, at time.Time, lost int) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.lost = lost
	before := ts.rx.Line()
	ops, lines := ts.rx.Feed(p, at)
	ts.show('<', before, ops)
	for _, l := range lines {
		ts.writeLine("<", l)
		if ts.rec != nil {
			ts.rec.WriteText(l.Text, l.At, 3*time.Second)
		}
	}
}

// show puts one side's edits on the screen. With echo, both sides share
// it: when the other side's text comes, the line starts anew with its
// label and that side's unfinished line (line, before ops), so its erases
// still land on it.
func (ts *textStream) show(side byte, line string, ops []t140.Op) {
	if ts.out == nil || len(ops) == 0 {
		return
	}
	cur := []rune(line)
	var b []byte
	for _, op := range ops {
		if ts.echo && ts.side != side {
			if ts.side != 0 {
				b = append(b, '\n')
			}
			b = append(append(b, label(side)...), string(cur)...)
			ts.side = side
		}
		switch op.Kind {
		case t140.Insert:
			b = utf8.AppendRune(b, op.Rune)
			cur = append(cur, op.Rune)
		case t140.Erase:
			b = append(b, "\b \b"...)
			cur = cur[:max(len(cur)-1, 0)]
		case t140.NewLine:
			b = append(b, '\n')
			cur = cur[:0]
			ts.side = 0
		}
	}
	ts.out.Write(b)
}

func label(side byte) string {
	if side == '>' {
		return "you: "
	}
	return "them: "
}

// writeLine adds one transcript line: when it was begun, who wrote it
// (> this side, < the other), the text.
func (ts *textStream) writeLine(who string, l t140.Line) {
	if ts.transcript != nil {
		fmt.Fprintf(ts.transcript, "%s %s %s\n", stamp(l.At), who, l.Text)
	}
}

// stop ends the stream once the sockets are closed (the receiver is then
// done): unfinished lines go to the transcript.
func (ts *textStream) stop() {
	ts.cancel()
	ts.wg.Wait()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if l, ok := ts.tx.Flush(); ok {
		ts.writeLine(">", l)
	}
	if l, ok := ts.rx.Flush(); ok {
		ts.writeLine("<", l)
		if ts.rec != nil {
			ts.rec.WriteText(l.Text, l.At, 3*time.Second)
		}
	}
	if ts.transcript != nil {
		ts.transcript.Close()
	}
}
