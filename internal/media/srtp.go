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

// srtpStream protects what one stream sends with our key and unprotects
// what arrives with the peer's (pion/srtp), SRTCP included, with replay
// protection both ways. A pion context is not safe for concurrent use, and
// a stream sends from two goroutines (media, reports) and may read from
// two (RTP and RTCP sockets), so each direction has a lock.
type srtpStream struct {
	txMu sync.Mutex
	tx   *srtp.Context
	rxMu sync.Mutex
	rx   *srtp.Context
}

func newSRTPStream(k *SRTPKeys) (*srtpStream, error) {
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
	return &srtpStream{tx: tx, rx: rx}, nil
}

// protectRTP encrypts and authenticates one marshalled RTP packet.
func (s *srtpStream) protectRTP(pkt []byte) ([]byte, error) {
	s.txMu.Lock()
	defer s.txMu.Unlock()
	return s.tx.EncryptRTP(nil, pkt, nil)
}

// protectRTCP encrypts one compound RTCP packet into SRTCP.
func (s *srtpStream) protectRTCP(pkt []byte) ([]byte, error) {
	s.txMu.Lock()
	defer s.txMu.Unlock()
	return s.tx.EncryptRTCP(nil, pkt, nil)
}

// unprotectRTP checks and decrypts one SRTP packet into dst; a forged,
// corrupted or replayed packet is an error.
func (s *srtpStream) unprotectRTP(dst, pkt []byte) ([]byte, error) {
	s.rxMu.Lock()
	defer s.rxMu.Unlock()
	return s.rx.DecryptRTP(dst, pkt, nil)
}

// unprotectRTCP checks and decrypts one SRTCP packet into dst.
func (s *srtpStream) unprotectRTCP(dst, pkt []byte) ([]byte, error) {
	s.rxMu.Lock()
	defer s.rxMu.Unlock()
	return s.rx.DecryptRTCP(dst, pkt, nil)
}
