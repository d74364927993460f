package t140

import (
	"context"
	"time"
)

// Send drives enc: text from typed goes out as enc's packets through
// send, at the times enc says. It returns when ctx ends, or once typed is
// closed and every redundant generation has gone. A send error does not
// stop the stream: the redundancy of later packets covers one lost send.
func Send(ctx context.Context, enc *Encoder, typed <-chan []byte, send func([]byte) error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		var fire <-chan time.Time
		due, busy := enc.Due()
		if busy {
			d := time.Until(due)
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			fire = timer.C
		} else if typed == nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case p, ok := <-typed:
			if !ok {
				typed = nil
				continue
			}
			enc.Write(p)
		case now := <-fire:
			if pkt, ok := enc.Packet(now); ok {
				send(pkt)
			}
		}
	}
}
