// Package netcheck is `z5 check`: it probes, from the customer's network,
// every outbound rule the provider's list asks the network admin to open
// (the seed's steps 1-5), and reports per rule whether it works, and for a
// blocked one the exact rule to add.
//
// Each rule is judged alone: every nameserver over UDP and separately over
// TCP with a real query; every HTTPS endpoint with a TLS handshake verified
// against the profile's CA and a GET /healthz; SIP with an OPTIONS over TCP
// to each MCS, which also detects a SIP ALG rewriting messages, and SIP over
// TLS (where the provider serves it) with a verified handshake; the RTP
// range with authenticated UDP probes echoed by the MCS relay (a logged-in
// client only), measuring loss, jitter and round-trip time. Probes run
// concurrently with small timeouts, so a fully blocked network is reported
// in a few seconds: a dropped packet costs one timeout, not a retry loop.
package netcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/z5vrs/z5/internal/profile"
)

// Status is a rule's verdict.
type Status string

const (
	// StatusOK: the rule works.
	StatusOK Status = "ok"
	// StatusBlocked: packets do not get through (dropped, rejected or
	// intercepted); the report names the rule to add.
	StatusBlocked Status = "blocked"
	// StatusDegraded: it works, but quality or the answer is poor.
	StatusDegraded Status = "degraded"
	// StatusSlow: it works, but took longer than Thresholds.Slow.
	StatusSlow Status = "slow"
	// StatusNeedsLogin: the RTP probe needs an MCS token (z5 login).
	StatusNeedsLogin Status = "needs-login"
	// StatusSkipped: not testable because something it depends on failed.
	StatusSkipped Status = "skipped"
)

// Thresholds decide degraded and slow.
type Thresholds struct {
	Loss   float64       // fraction of probes lost (default 0.01)
	Jitter time.Duration // RFC 3550 interarrival jitter (default 30ms)
	RTT    time.Duration // median round trip (default 150ms)
	Slow   time.Duration // a handshake or answer slower than this (default 1s)
}

// Options configure Run.
type Options struct {
	Profile *profile.Profile
	// MCSToken (from the client home after z5 login) enables the RTP
	// probes; without it the RTP rules say needs-login.
	MCSToken string
	// Timeout bounds each probe: a connection, a query, an answer
	// (default 2s).
	Timeout time.Duration
	// Concurrency bounds the probes in flight (default 16).
	Concurrency int
	// RTPPackets per relay port (default 50), RTPInterval between them
	// (default 20ms, the rhythm of audio frames), RTPSize bytes each
	// (default 172: a 20 ms G.711 RTP packet).
	RTPPackets  int
	RTPInterval time.Duration
	RTPSize     int
	Thresholds  Thresholds
	UserAgent   string
	Log         *slog.Logger
}

func (o *Options) defaults() error {
	if o.Profile == nil {
		return errors.New("netcheck: no provider profile")
	}
	if err := o.Profile.Validate(); err != nil {
		return fmt.Errorf("netcheck: provider profile: %w", err)
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.RTPPackets <= 0 {
		o.RTPPackets = 50
	}
	o.RTPPackets = min(o.RTPPackets, 500)
	if o.RTPInterval <= 0 {
		o.RTPInterval = 20 * time.Millisecond
	}
	if o.RTPSize <= 0 {
		o.RTPSize = 172
	}
	t := &o.Thresholds
	if t.Loss <= 0 {
		t.Loss = 0.01
	}
	if t.Jitter <= 0 {
		t.Jitter = 30 * time.Millisecond
	}
	if t.RTT <= 0 {
		t.RTT = 150 * time.Millisecond
	}
	if t.Slow <= 0 {
		t.Slow = time.Second
	}
	if o.UserAgent == "" {
		o.UserAgent = "Z5-check/dev"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Millis is a duration that JSON writes as milliseconds, the unit network
// admins read.
type Millis time.Duration

func (m Millis) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(m)/float64(time.Millisecond), 'f', 3, 64), nil
}

func (m *Millis) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*m = Millis(f * float64(time.Millisecond))
	return nil
}

// String is "0.25 ms", "2.1 ms", "404 ms" or "1.25 s": about three
// significant digits.
func (m Millis) String() string {
	d := time.Duration(m)
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0f ms", ms)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1f ms", ms)
	}
	return fmt.Sprintf("%.2f ms", ms)
}

// Result is one rule's verdict.
type Result struct {
	Rule    Rule   `json:"rule"`
	Line    string `json:"line"` // Rule in the seed's format
	Status  Status `json:"status"`
	Elapsed Millis `json:"elapsed_ms"`
	Detail  string `json:"detail,omitempty"`
	// Add and AddNft are the rule to add, for a blocked rule.
	Add    string `json:"add,omitempty"`
	AddNft string `json:"add_nft,omitempty"`
	// Fix is a remedy other than a rule (TLS inspection, SIP ALG).
	Fix string    `json:"fix,omitempty"`
	RTP *RTPStats `json:"rtp,omitempty"`
}

// NameResult is how one provider name resolved through the nameservers
// that answered.
type NameResult struct {
	Name  string       `json:"name"`
	Addrs []netip.Addr `json:"addrs,omitempty"`
	Error string       `json:"error,omitempty"`
}

// Report is the outcome of Run.
type Report struct {
	Provider string         `json:"provider"`
	Started  time.Time      `json:"started"`
	Elapsed  Millis         `json:"elapsed_ms"`
	Names    []NameResult   `json:"names"`
	Results  []Result       `json:"results"`
	ALG      ALGReport      `json:"alg"`
	Quality  []Quality      `json:"quality,omitempty"`
	Counts   map[Status]int `json:"counts"`
	// Blocked: at least one required rule is blocked.
	Blocked bool `json:"blocked"`
}

// BlockedResults are the blocked results, required or not.
func (r *Report) BlockedResults() []Result {
	var out []Result
	for _, res := range r.Results {
		if res.Status == StatusBlocked {
			out = append(out, res)
		}
	}
	return out
}

// Run checks every rule of opts.Profile and returns the report. The error
// is for unusable options only; blocked rules are in the report.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	c := &checker{opts: opts, p: opts.Profile, sem: make(chan struct{}, opts.Concurrency)}
	if err := c.loadCA(); err != nil {
		return nil, err
	}
	start := time.Now()
	rep := &Report{Provider: c.p.Provider, Started: start.UTC(), Counts: map[Status]int{}}

	// Step 1: every nameserver, each transport alone.
	nsRules, err := NameserverRules(c.p)
	if err != nil {
		return nil, err
	}
	dnsRes := make([]Result, len(nsRules))
	c.each(len(nsRules), func(i int) { dnsRes[i] = c.probeDNS(ctx, nsRules[i]) })

	// The names, through the nameservers that answered.
	rep.Names = c.resolveNames(ctx, dnsRes)
	addrs := map[string][]netip.Addr{}
	for _, n := range rep.Names {
		addrs[n.Name] = n.Addrs
	}
	rules, err := Rules(c.p, addrs)
	if err != nil {
		return nil, err
	}

	// Steps 2-5.
	results := make([]Result, len(rules))
	copy(results, dnsRes)
	algs := make([]*algObservation, len(rules))
	c.each(len(rules)-len(dnsRes), func(j int) {
		i := len(dnsRes) + j
		r := rules[i]
		switch {
		case !r.Dest.IsValid():
			results[i] = skipped(r, fmt.Sprintf("%s did not resolve through the provider's nameservers: fix the DNS rules first", r.Name))
		case r.Check == CheckZDial || r.Check == CheckMCS:
			results[i] = c.probeHTTPS(ctx, r)
		case r.Check == CheckSIP:
			results[i], algs[i] = c.probeSIP(ctx, r)
		case r.Check == CheckSIPTLS:
			results[i] = c.probeTLS(ctx, r)
		case r.Check == CheckRTP:
			results[i] = c.probeRTP(ctx, r)
		}
	})
	rep.Results = results
	rep.ALG = summariseALG(results, algs)
	for _, res := range results {
		rep.Counts[res.Status]++
		if res.Status == StatusBlocked && res.Rule.Required {
			rep.Blocked = true
		}
		if res.RTP != nil && res.RTP.Received > 0 {
			rep.Quality = append(rep.Quality, Quality{Name: res.Rule.Name, Dest: res.Rule.Dest, EModel: res.RTP.EModel})
		}
	}
	if err := ctx.Err(); err != nil {
		// An interrupted check would blame the network for the
		// interruption: no report.
		return nil, fmt.Errorf("netcheck: %w", err)
	}
	rep.Elapsed = Millis(time.Since(start))
	return rep, nil
}

// Quality is the E-model estimate for one MCS relay.
type Quality struct {
	Name string     `json:"name"`
	Dest netip.Addr `json:"destination"`
	EModel
}

// checker holds one Run's state.
type checker struct {
	opts Options
	p    *profile.Profile
	sem  chan struct{} // bounds probes in flight
	tls  tlsState
}

// each runs f(0..n-1) on at most Concurrency goroutines and waits.
func (c *checker) each(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		// Even after ctx ends every probe runs: it sees the cancelled
		// context and reports at once, so every rule gets a result.
		c.sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-c.sem; wg.Done() }()
			f(i)
		}()
	}
	wg.Wait()
}

// result builds a Result for r.
func result(r Rule, s Status, elapsed time.Duration, detail string) Result {
	res := Result{Rule: r, Line: r.String(), Status: s, Elapsed: Millis(elapsed), Detail: detail}
	if s == StatusBlocked {
		res.Add = r.String()
		res.AddNft = r.Nft()
	}
	return res
}

func skipped(r Rule, why string) Result { return result(r, StatusSkipped, 0, why) }

// timed is ok or slow depending on elapsed.
func (c *checker) timed(r Rule, elapsed time.Duration, detail string) Result {
	if elapsed > c.opts.Thresholds.Slow {
		return result(r, StatusSlow, elapsed, fmt.Sprintf("%s; took %s (over %s)", detail, Millis(elapsed), Millis(c.opts.Thresholds.Slow)))
	}
	return result(r, StatusOK, elapsed, detail)
}
