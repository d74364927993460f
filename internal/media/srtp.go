package media

import (
	"fmt"
	"sync"

	"github.com/pion/srtp/v3"
)

// Replay windows: RFC 3711 3.3.2 asks for at least 64; video bursts that
// reorder on the way get a wider one.
const (
	srtpReplayWindow  = 256
	srtcpReplayWindow = 64
)

// SRTPContext protects what one stream sends with our key and unprotects
// what arrives with the peer's (pion/srtp), SRTCP included, with replay
// protection both ways. A Session keeps one per encrypted stream; a stream
// run outside a Session (real-time text) makes its own. A pion context is
// not safe for concurrent use, and a stream sends from two goroutines
// (media, reports) and may read from two (RTP and RTCP sockets), so each
// direction has a lock.
type SRTPContext struct {
	txMu sync.Mutex
	tx   *srtp.Context
	rxMu sync.Mutex
	rx   *srtp.Context
}

// NewSRTPContext keys a stream's two directions from the SDP exchange.
func NewSRTPContext(k *SRTPKeys) (*SRTPContext, error) {
	profile, size, ok := suiteProfile(k.Suite)
	if !ok {
		return nil, fmt.Errorf("srtp suite %q: %w", k.Suite, ErrBadConfig)
	}
	if len(k.Local) != size || len(k.Remote) != size {
		return nil, fmt.Errorf("srtp %s keys of %d and %d bytes, want %d: %w", k.Suite, len(k.Local), len(k.Remote), size, ErrBadConfig)
	}
	keyLen, _ := profile.KeyLen()
	tx, err := srtp.CreateContext(k.Local[:keyLen], k.Local[keyLen:], profile)
	if err != nil {
		return nil, fmt.Errorf("srtp send context: %w", err)
	}
	rx, err := srtp.CreateContext(k.Remote[:keyLen], k.Remote[keyLen:], profile,
		srtp.SRTPReplayProtection(srtpReplayWindow), srtp.SRTCPReplayProtection(srtcpReplayWindow))
	if err != nil {
		return nil, fmt.Errorf("srtp receive context: %w", err)
	}
	return &SRTPContext{tx: tx, rx: rx}, nil
}

// ProtectRTP encrypts and authenticates one marshalled RTP packet.
func (s *SRTPContext) ProtectRTP(pkt []byte) ([]byte, error) {
	s.txMu.Lock()
	defer s.txMu.Unlock()
	return s.tx.EncryptRTP(nil, pkt, nil)
}

// ProtectRTCP encrypts one compound RTCP packet into SRTCP.
func (s *SRTPContext) ProtectRTCP(pkt []byte) ([]byte, error) {
	s.txMu.Lock()
	defer s.txMu.Unlock()
	return s.tx.EncryptRTCP(nil, pkt, nil)
}

// UnprotectRTP checks and decrypts one SRTP packet into dst; a forged,
// corrupted or replayed packet is an error.
func (s *SRTPContext) UnprotectRTP(dst, pkt []byte) ([]byte, error) {
	s.rxMu.Lock()
	defer s.rxMu.Unlock()
	return s.rx.DecryptRTP(dst, pkt, nil)
}

// UnprotectRTCP checks and decrypts one SRTCP packet into dst.
func (s *SRTPContext) UnprotectRTCP(dst, pkt []byte) ([]byte, error) {
	s.rxMu.Lock()
	defer s.rxMu.Unlock()
	return s.rx.DecryptRTCP(dst, pkt, nil)
}
