package mcsapi

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/z5vrs/z5/internal/floodguard"
	"github.com/z5vrs/z5/internal/relay"
	"github.com/z5vrs/z5/internal/store"
)

// PathProbe opens a network-check probe session on this node's relay.
const PathProbe = "/api/v1/probe"

// Prober is the media relay as the probe route sees it: internal/relay's
// *Relay satisfies it.
type Prober interface {
	// OpenProbe opens n relay ports for ttl that echo datagrams
	// authenticated with token, charged to owner's port quotas, and
	// returns them (relay.ErrQuota when owner holds its share).
	OpenProbe(owner relay.Owner, token []byte, n int, ttl time.Duration) ([]int, error)
	// Advertise is the address clients send media to.
	Advertise() netip.Addr
}

// Probe session parameters: six ports cover the range's ends and four
// points between; fifteen seconds is ample for a check's one-second burst.
// Sessions are limited per device, per customer and per source address
// (IPv6: its /64) in any sliding minute, not per MCS token: every /select
// mints a new token, so a per-token limit limits nothing. A check runs on
// demand, so a customer's or an office's thirty a minute is plenty, and
// the relay's port quotas bound what the open sessions hold.
const (
	probePorts           = 6
	probeTTL             = 15 * time.Second
	probeKeySize         = 32
	probesPerMin         = 3  // per device
	probesPerMinCustomer = 30 // per customer account
	probesPerMinSource   = 30 // per source address
	probeWindow          = time.Minute
	probeKeys            = 4096 // tracked keys before old entries are pruned
)

// probeKey is one counter of the probe limiter and its limit a minute.
type probeKey struct {
	key   string
	limit int
}

// probeKeys are the counters a probe session of sess from src counts
// against.
func probeKeysFor(sess store.Session, src netip.Addr) []probeKey {
	keys := []probeKey{
		{fmt.Sprintf("device:%d:%d", sess.CustomerID, sess.DeviceID), probesPerMin},
		{fmt.Sprintf("customer:%d", sess.CustomerID), probesPerMinCustomer},
	}
	if src.IsValid() {
		keys = append(keys, probeKey{"source:" + floodguard.Key(src).String(), probesPerMinSource})
	}
	return keys
}

// probeLimiter counts probe sessions per key in a sliding minute.
type probeLimiter struct {
	mu   sync.Mutex // guards seen
	seen map[string][]time.Time
}

// allow records a probe at now against every key when each is under its
// limit, or records nothing and says how long to wait.
func (l *probeLimiter) allow(keys []probeKey, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string][]time.Time{}
	}
	if len(l.seen) >= probeKeys {
		for k, ts := range l.seen {
			if now.Sub(ts[len(ts)-1]) >= probeWindow {
				delete(l.seen, k)
			}
		}
	}
	var wait time.Duration
	for _, k := range keys {
		recent := l.seen[k.key][:0:0]
		for _, t := range l.seen[k.key] {
			if now.Sub(t) < probeWindow {
				recent = append(recent, t)
			}
		}
		if len(recent) > 0 {
			l.seen[k.key] = recent
		} else {
			delete(l.seen, k.key)
		}
		if len(recent) >= k.limit {
			wait = max(wait, probeWindow-now.Sub(recent[len(recent)-k.limit]))
		}
	}
	if wait > 0 {
		return false, wait
	}
	for _, k := range keys {
		l.seen[k.key] = append(l.seen[k.key], now)
	}
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
	src := remoteIP(r)
	if ok, wait := s.probeLimit.allow(probeKeysFor(sess, src), now); !ok {
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		return &apiError{status: http.StatusTooManyRequests, code: "rate_limited",
			msg: fmt.Sprintf("at most %d probe sessions per minute per device (%d per account or address); retry in %d s",
				probesPerMin, probesPerMinCustomer, secs)}
	}
	key := make([]byte, probeKeySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("probe key: %w", err)
	}
	owner := relay.Owner{Customer: relay.CustomerKey(sess.CustomerID), Source: src}
	ports, err := s.prober.OpenProbe(owner, key, probePorts, probeTTL)
	if errors.Is(err, relay.ErrQuota) {
		secs := int(probeTTL / time.Second)
		s.log.Info("probe not opened: port quota", "customer_id", sess.CustomerID, "remote_addr", src)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		return &apiError{status: http.StatusTooManyRequests, code: "rate_limited",
			msg: fmt.Sprintf("your account or address holds its share of media relay ports; retry in %d s", secs)}
	}
	if err != nil {
		s.log.Info("probe not opened", "error", err)
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
