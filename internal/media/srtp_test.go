package media

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// keyPair draws the two directions' keys of suite and returns the two
// ends' views of them.
func keyPair(t testing.TB, suite string) (a, b *SRTPKeys) {
	t.Helper()
	_, size, ok := suiteProfile(suite)
	if !ok {
		t.Fatalf("suite %s", suite)
	}
	ka, kb := make([]byte, size), make([]byte, size)
	rand.Read(ka)
	rand.Read(kb)
	return &SRTPKeys{Suite: suite, Local: ka, Remote: kb}, &SRTPKeys{Suite: suite, Local: kb, Remote: ka}
}

func TestSRTPRoundTrip(t *testing.T) {
	for _, suite := range []string{SuiteAEADAES128GCM, SuiteAESCM128HMACSHA1_80} {
		t.Run(suite, func(t *testing.T) {
			ka, kb := keyPair(t, suite)
			a, err := NewSRTPContext(ka)
			if err != nil {
				t.Fatal(err)
			}
			b, err := NewSRTPContext(kb)
			if err != nil {
				t.Fatal(err)
			}
			payload := bytes.Repeat([]byte{0xff}, 160) // PCMU silence
			var sent [][]byte
			for i := range 5 {
				p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(65533 + i),
					Timestamp: uint32(160 * i), SSRC: 0x1234}, Payload: payload}
				raw, err := p.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				enc, err := a.ProtectRTP(raw)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(enc[:12], raw[:12]) {
					t.Fatal("the RTP header must stay in clear for the relay")
				}
				if bytes.Contains(enc, payload[:16]) || len(enc) <= len(raw) {
					t.Fatalf("payload not encrypted or no tag: %x", enc)
				}
				dec, err := b.UnprotectRTP(nil, enc)
				if err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
				if !bytes.Equal(dec, raw) {
					t.Fatalf("round trip changed the packet:\n%x\n%x", dec, raw)
				}
				sent = append(sent, enc)
			}
			// The same packet again, an old one, and a forged one.
			if _, err := b.UnprotectRTP(nil, sent[4]); err == nil {
				t.Error("replayed SRTP packet accepted")
			}
			if _, err := b.UnprotectRTP(nil, sent[1]); err == nil {
				t.Error("replayed older SRTP packet accepted")
			}
			forged := bytes.Clone(sent[0])
			forged[2], forged[3] = 0, 9 // a new sequence number, the rest as sent
			forged[len(forged)-1] ^= 1
			if _, err := b.UnprotectRTP(nil, forged); err == nil {
				t.Error("tampered SRTP packet accepted")
			}
			// The key of the other direction does not open it.
			if _, err := a.UnprotectRTP(nil, sent[0]); err == nil {
				t.Error("our own packet decrypted with the peer's key")
			}

			report, err := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: 0x1234},
				rtcp.NewCNAMESourceDescription(0x1234, "z5-test-cname")})
			if err != nil {
				t.Fatal(err)
			}
			enc, err := a.ProtectRTCP(report)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc[:8], report[:8]) || bytes.Contains(enc, []byte("z5-test-cname")) {
				t.Fatalf("SRTCP: header must be clear, the rest encrypted: %x", enc)
			}
			dec, err := b.UnprotectRTCP(nil, enc)
			if err != nil || !bytes.Equal(dec, report) {
				t.Fatalf("SRTCP round trip: %v", err)
			}
			if _, err := b.UnprotectRTCP(nil, enc); err == nil {
				t.Error("replayed SRTCP packet accepted")
			}
		})
	}
	if _, err := NewSRTPContext(&SRTPKeys{Suite: "AES_CM_128_HMAC_SHA1_32", Local: make([]byte, 30), Remote: make([]byte, 30)}); !errors.Is(err, ErrBadConfig) {
		t.Errorf("unsupported suite: %v", err)
	}
	if _, err := NewSRTPContext(&SRTPKeys{Suite: SuiteAEADAES128GCM, Local: make([]byte, 30), Remote: make([]byte, 28)}); !errors.Is(err, ErrBadConfig) {
		t.Errorf("short key: %v", err)
	}
}

// constSource sends the same PCMU frame every 20 ms.
type constSource struct{ frame []byte }

func (s constSource) Next() ([]byte, time.Duration, error) {
	return s.frame, 20 * time.Millisecond, nil
}

// tap sits between two sessions like the relay: it forwards what each
// side sends to the other, keeps a copy of a's datagrams, and replays one
// of them once b has had some.
type tap struct {
	conn   *net.UDPConn
	a, b   netip.AddrPort
	mu     sync.Mutex
	fromA  [][]byte
	replay int // datagrams from a replayed to b
}

func (tp *tap) run(ctx context.Context) {
	buf := make([]byte, 1<<16)
	go func() { <-ctx.Done(); tp.conn.SetReadDeadline(time.Now()) }()
	for {
		n, from, err := tp.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		pkt := bytes.Clone(buf[:n])
		to := tp.a
		if from == tp.a {
			to = tp.b
			tp.mu.Lock()
			tp.fromA = append(tp.fromA, pkt)
			if len(tp.fromA) == 20 {
				// An old RTP packet, sent again from the right address.
				for _, old := range tp.fromA[:10] {
					if classifyRTP(old) {
						tp.conn.WriteToUDPAddrPort(old, tp.b)
						tp.replay++
						break
					}
				}
			}
			tp.mu.Unlock()
		}
		tp.conn.WriteToUDPAddrPort(pkt, to)
	}
}

// classifyRTP tells RTP from RTCP on a muxed port (RFC 5761 4).
func classifyRTP(b []byte) bool { return len(b) >= 12 && (b[1] < 192 || b[1] > 223) }

// TestSessionSRTP runs two sessions with SRTP through a tap: media flows
// both ways, nothing on the wire carries the plain frames, the replayed
// packet is rejected, and the stats say encrypted.
func TestSessionSRTP(t *testing.T) {
	for _, suite := range []string{SuiteAEADAES128GCM, SuiteAESCM128HMACSHA1_80} {
		t.Run(suite, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			ka, kb := keyPair(t, suite)
			ca, cb := listenLoopback(t), listenLoopback(t)
			tp := &tap{conn: listenLoopback(t), a: addrOf(ca), b: addrOf(cb)}
			done := make(chan struct{})
			go func() { defer close(done); tp.run(ctx) }()
			defer func() { cancel(); <-done }()

			frame := bytes.Repeat([]byte{0x7e, 0xff}, 80)
			sinks := [2]*lockedSink{{}, {}}
			var sess [2]*Session
			for i, c := range []*net.UDPConn{ca, cb} {
				keys := []*SRTPKeys{ka, kb}[i]
				s, err := NewSession(SessionConfig{RTCPInterval: 100 * time.Millisecond, Streams: []StreamConfig{{
					Kind: KindAudio, PT: PTPCMU, ClockRate: ClockPCMU, Local: c, Remote: addrOf(tp.conn),
					Source: constSource{frame}, Sink: sinks[i], SRTP: keys,
				}}})
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Start(ctx); err != nil {
					t.Fatal(err)
				}
				sess[i] = s
			}
			deadline := time.Now().Add(10 * time.Second)
			for sinks[0].count() < 30 || sinks[1].count() < 30 {
				if time.Now().After(deadline) {
					t.Fatalf("media did not flow: a got %d frames, b %d", sinks[0].count(), sinks[1].count())
				}
				time.Sleep(20 * time.Millisecond)
			}
			for _, s := range sess {
				if err := s.Stop(); err != nil {
					t.Fatal(err)
				}
			}
			st := [2]StreamStats{sess[0].Stats()[0], sess[1].Stats()[0]}
			for i, s := range st {
				if !s.Encrypted || s.Malformed != 0 || s.RemoteReports == 0 {
					t.Errorf("side %d stats %+v: want encrypted, no malformed, SRTCP reports read", i, s)
				}
				for _, f := range sinks[i].all() {
					if !bytes.Equal(f, frame) {
						t.Fatalf("side %d recorded %x, want the frame sent", i, f)
					}
				}
			}
			tp.mu.Lock()
			defer tp.mu.Unlock()
			if tp.replay != 1 || st[1].SRTPRejected < 1 {
				t.Errorf("replayed %d, b rejected %d: want the replay rejected", tp.replay, st[1].SRTPRejected)
			}
			if st[0].SRTPRejected != 0 {
				t.Errorf("a rejected %d of b's packets", st[0].SRTPRejected)
			}
			for _, p := range tp.fromA {
				if bytes.Contains(p, frame[:16]) {
					t.Fatalf("plain media on the wire: %x", p)
				}
			}
		})
	}
}

// lockedSink records frames for a test reading them while they arrive.
type lockedSink struct {
	mu     sync.Mutex
	frames [][]byte
}

func (s *lockedSink) WriteFrame(p []byte, _ uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames = append(s.frames, bytes.Clone(p))
	return nil
}

func (s *lockedSink) Close() error { return nil }

func (s *lockedSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.frames)
}

func (s *lockedSink) all() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frames
}

// BenchmarkSRTPVideo protects and unprotects 1,200-byte video packets, the
// client's per-packet SRTP cost: at 1.5 Mb/s (about 156 packets a second)
// the CPU share is 156 × the ns/op reported.
func BenchmarkSRTPVideo(b *testing.B) {
	for _, suite := range []string{SuiteAEADAES128GCM, SuiteAESCM128HMACSHA1_80} {
		b.Run(suite, func(b *testing.B) {
			ka, kb := keyPair(b, suite)
			tx, err := NewSRTPContext(ka)
			if err != nil {
				b.Fatal(err)
			}
			rx, err := NewSRTPContext(kb)
			if err != nil {
				b.Fatal(err)
			}
			payload := bytes.Repeat([]byte{0x5a}, 1200)
			plain := make([]byte, 1500)
			b.SetBytes(int64(len(payload)))
			for i := 0; b.Loop(); i++ {
				p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(i),
					Timestamp: uint32(i / 5 * 3000), SSRC: 0x5678}, Payload: payload}
				raw, err := p.Marshal()
				if err != nil {
					b.Fatal(err)
				}
				enc, err := tx.ProtectRTP(raw)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := rx.UnprotectRTP(plain, enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
