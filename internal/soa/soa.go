// Package soa is the speed-of-answer report over a month of relay calls:
// how many calls were offered, how many an interpreter answered within
// the US standard (80% within 120 seconds, measured monthly), the mean
// and 95th percentile wait, and how many callers gave up in the queue.
// Report is a pure function of the month's records.
package soa

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/z5vrs/z5/internal/store"
)

// The US standard for VRS speed of answer.
const (
	Threshold = 120 * time.Second
	Standard  = 80.0 // percent of offered calls answered within Threshold
)

// Report is one month's speed of answer.
type Report struct {
	Month          string `json:"month"`    // YYYY-MM, UTC
	Offered        int    `json:"offered"`  // relay calls queued in the month
	Answered       int    `json:"answered"` // an interpreter answered (SessionStart set)
	AnsweredWithin int    `json:"answered_within_120s"`
	// PercentWithin is AnsweredWithin of Offered: calls abandoned or
	// timed out in the queue count against it. 100 when nothing was
	// offered.
	PercentWithin float64        `json:"percent_within_120s"`
	MeetsStandard bool           `json:"meets_standard"`    // PercentWithin >= 80
	MeanWait      float64        `json:"mean_wait_seconds"` // answered calls: SessionStart - QueuedAt
	P95Wait       float64        `json:"p95_wait_seconds"`  // nearest rank
	Abandoned     int            `json:"abandoned"`         // caller hung up in the queue
	QueueTimeouts int            `json:"queue_timeouts"`    // gave up after the maximum wait
	ByDirection   map[string]int `json:"offered_by_direction"`
	// Requeued are calls that continue one whose interpreter vanished
	// (RequeueOf set): the caller was already offered and answered once,
	// so they are not offered again, and their short wait is not counted.
	Requeued int `json:"requeued"`
}

// Month returns the UTC bounds [from, to) of a YYYY-MM month.
func Month(s string) (from, to time.Time, err error) {
	from, err = time.Parse("2006-01", s)
	if err != nil || from.Format("2006-01") != s {
		return time.Time{}, time.Time{}, fmt.Errorf("month %q: want YYYY-MM, e.g. 2026-11", s)
	}
	return from, from.AddDate(0, 1, 0), nil
}

// Compute reports on the relay calls of month (YYYY-MM): the records
// queued in it by QueuedAt in UTC; others in calls are ignored.
func Compute(month string, calls []store.Call) (Report, error) {
	from, to, err := Month(month)
	if err != nil {
		return Report{}, err
	}
	r := Report{Month: month, ByDirection: map[string]int{}}
	var waits []time.Duration
	for _, c := range calls {
		if c.Direction == "" || c.QueuedAt.Before(from) || !c.QueuedAt.Before(to) {
			continue
		}
		if c.RequeueOf != "" {
			r.Requeued++
			continue
		}
		r.Offered++
		r.ByDirection[c.Direction]++
		switch {
		case !c.SessionStart.IsZero():
			w := max(c.SessionStart.Sub(c.QueuedAt), 0)
			waits = append(waits, w)
			if w <= Threshold {
				r.AnsweredWithin++
			}
		case c.EndReason == "abandoned":
			r.Abandoned++
		case c.EndReason == "queue-timeout":
			r.QueueTimeouts++
		}
	}
	r.Answered = len(waits)
	r.PercentWithin = 100
	if r.Offered > 0 {
		r.PercentWithin = round2(100 * float64(r.AnsweredWithin) / float64(r.Offered))
	}
	r.MeetsStandard = r.PercentWithin >= Standard
	if len(waits) > 0 {
		var sum time.Duration
		for _, w := range waits {
			sum += w
		}
		r.MeanWait = round2(sum.Seconds() / float64(len(waits)))
		slices.Sort(waits)
		rank := (95*len(waits)+99)/100 - 1 // nearest rank: ceil(0.95 n), 1-based
		r.P95Wait = round2(waits[rank].Seconds())
	}
	return r, nil
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }
