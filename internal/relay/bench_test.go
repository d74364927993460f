package relay

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/pion/srtp/v3"
	"golang.org/x/net/ipv4"
)

// BenchmarkRelayForward measures datagrams per second through the relay on
// loopback: the caller sends RTP, the callee receives it. The caller sends
// bursts (1 datagram, like audio; 16, like the packets of a video frame)
// and waits for each burst to arrive before the next, so socket buffers
// never overflow; a datagram missing for 200ms counts as lost. Every way of
// reading sockets is measured: the per-core loops, and a goroutine per
// socket with one datagram per system call or recvmmsg/sendmmsg.
//
// The srtp=true runs key the call with SDES (RTP/SAVP, AEAD_AES_128_GCM)
// and send real SRTP: the relay holds no keys and reads only the headers,
// so it must forward SRTP at the same rate as plain RTP.
func BenchmarkRelayForward(b *testing.B) {
	for _, size := range []int{160, 1200} {
		for _, burst := range []int{1, 16} {
			for _, io := range []ioMode{defaultIO, ioPerSocket, ioPerSocketBatch} {
				for _, srtpOn := range []bool{false, true} {
					name := fmt.Sprintf("%dB/burst=%d/io=%v/srtp=%v", size, burst, io, srtpOn)
					b.Run(name, func(b *testing.B) { benchForward(b, size, burst, io, srtpOn) })
				}
			}
		}
	}
}

func benchForward(b *testing.B, size, burst int, io ioMode, srtpOn bool) {
	r, _ := newTestRelay(b, relayOpts{})
	r.io = io
	var cs *callSetup
	if srtpOn {
		cs, _ = setupSRTPCall(b, r)
	} else {
		cs = setupCall(b, r, false, nil)
	}
	src, dst := ipv4.NewPacketConn(cs.a.audio.conn), ipv4.NewPacketConn(cs.b.audio.conn)
	to := net.UDPAddrFromAddrPort(cs.relayAAudio)

	out := make([]ipv4.Message, burst)
	pkt := rtpPacket(0, 0, 0, 0x1234, string(make([]byte, size-12)))
	if srtpOn {
		// One real SRTP packet (payload encrypted, 16-byte tag); the
		// sequence numbers rewritten below break its tag, which the
		// relay never checks.
		var err error
		if pkt, err = srtpCtx(b, srtp.ProtectionProfileAeadAes128Gcm).EncryptRTP(nil, pkt, nil); err != nil {
			b.Fatal(err)
		}
	}
	for i := range out {
		out[i] = ipv4.Message{Buffers: [][]byte{append([]byte(nil), pkt...)}, Addr: to}
	}
	in := make([]ipv4.Message, burst)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, 2048)}
	}
	var sent, recvd, lost int
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	for sent < b.N {
		k := min(burst, b.N-sent)
		for i := range k {
			p := out[i].Buffers[0]
			p[2], p[3] = byte((sent+i)>>8), byte(sent+i)
		}
		for ms := out[:k]; len(ms) > 0; {
			n, err := src.WriteBatch(ms, 0)
			if err != nil {
				b.Fatal(err)
			}
			ms = ms[n:]
		}
		sent += k
		dst.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		for recvd+lost < sent {
			n, err := dst.ReadBatch(in[:sent-recvd-lost], 0)
			if err != nil {
				lost = sent - recvd
				break
			}
			recvd += n
		}
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(recvd)/el.Seconds(), "pps")
	b.ReportMetric(float64(lost), "lost")
}
