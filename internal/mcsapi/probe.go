package mcsapi

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/z5vrs/z5/internal/store"
)

// PathProbe opens a network-check probe session on this node's relay.
const PathProbe = "/api/v1/probe"

// Prober is the media relay as the probe route sees it: internal/relay's
// *Relay satisfies it.
type Prober interface {
	// OpenProbe opens n relay ports for ttl that echo datagrams
	// authenticated with token, and returns them.
	OpenProbe(token []byte, n int, ttl time.Duration) ([]int, error)
	// Advertise is the address clients send media to.
	Advertise() netip.Addr
}

// Probe session parameters: six ports cover the range's ends and four
// points between; fifteen seconds is ample for a check's one-second burst.
const (
	probePorts    = 6
	probeTTL      = 15 * time.Second
	probeKeySize  = 32
	probesPerMin  = 3
	probeWindow   = time.Minute
	probeSessions = 4096 // tracked MCS sessions before old entries are pruned
)

// probeLimiter allows probesPerMin probe sessions per MCS session (token)
// in any sliding minute.
type probeLimiter struct {
	mu   sync.Mutex // guards seen
	seen map[string][]time.Time
}

// allow records a probe at now for key, or says how long to wait.
func (l *probeLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string][]time.Time{}
	}
	if len(l.seen) >= probeSessions {
		for k, ts := range l.seen {
			if now.Sub(ts[len(ts)-1]) >= probeWindow {
				delete(l.seen, k)
			}
		}
	}
	recent := l.seen[key][:0:0]
	for _, t := range l.seen[key] {
		if now.Sub(t) < probeWindow {
			recent = append(recent, t)
		}
	}
	if len(recent) >= probesPerMin {
		l.seen[key] = recent
		return false, probeWindow - now.Sub(recent[0])
	}
	l.seen[key] = append(recent, now)
	return true, 0
}

// probeResponse is the body of a successful POST /api/v1/probe.
type probeResponse struct {
	Token     string    `json:"token"` // base64 (standard, padded) session key
	Ports     []int     `json:"ports"`
	ExpiresAt time.Time `json:"expires_at"`
	Relay     string    `json:"relay"` // address to send the probes to
}

// handleProbe opens a probe session on the relay for an authenticated
// client. The request body, if any, is ignored.
func (s *Service) handleProbe(w http.ResponseWriter, r *http.Request, sess store.Session) error {
	if s.prober == nil {
		return &apiError{status: http.StatusServiceUnavailable, code: "probes_unavailable",
			msg: "probes unavailable: this MCS node runs no media relay"}
	}
	now := s.now()
	if ok, wait := s.probeLimit.allow(string(sess.TokenHash), now); !ok {
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		return &apiError{status: http.StatusTooManyRequests, code: "rate_limited",
			msg: fmt.Sprintf("at most %d probe sessions per minute; retry in %d s", probesPerMin, secs)}
	}
	key := make([]byte, probeKeySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("probe key: %w", err)
	}
	ports, err := s.prober.OpenProbe(key, probePorts, probeTTL)
	if err != nil {
		s.log.Info("probe not opened", "err", err)
		w.Header().Set("Retry-After", "5")
		return &apiError{status: http.StatusServiceUnavailable, code: "probes_unavailable",
			msg: "probes unavailable: the media relay cannot spare ports right now; retry shortly"}
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, r, http.StatusOK, probeResponse{
		Token:     base64.StdEncoding.EncodeToString(key),
		Ports:     ports,
		ExpiresAt: now.Add(probeTTL).UTC().Truncate(time.Second),
		Relay:     s.prober.Advertise().String(),
	})
}
