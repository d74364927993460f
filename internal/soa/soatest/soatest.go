// Package soatest is a generated month of relay call records and the
// speed-of-answer report worked out for it by hand, shared by the report's
// unit test and the admin command's test. Only tests import it.
package soatest

import (
	"time"

	"github.com/z5vrs/z5/internal/soa"
	"github.com/z5vrs/z5/internal/store"
)

// Month is the month Calls fill.
const Month = "2026-11"

// Calls are November 2026 of relay calls, one queued every 7
// hours from the 1st at 00:00 UTC (100 calls, the last on the 29th), plus
// records the report must leave out. Call i:
//   - direction: emergency when i%25 == 0, else inbound when i is odd,
//     else outbound;
//   - i%10 == 9: the caller abandoned in the queue;
//   - i%20 == 4: the queue gave up (maximum wait);
//   - otherwise answered after 15*(i%10) + i/10 seconds.
func Calls() []store.Call {
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var cs []store.Call
	for i := range 100 {
		c := store.Call{CallID: string(rune('A'+i/26)) + string(rune('a'+i%26)), QueuedAt: start.Add(time.Duration(i) * 7 * time.Hour)}
		switch {
		case i%25 == 0:
			c.Direction = store.CallEmergency
		case i%2 == 1:
			c.Direction = store.CallInbound
		default:
			c.Direction = store.CallOutbound
		}
		switch {
		case i%10 == 9:
			c.EndReason = "abandoned"
		case i%20 == 4:
			c.EndReason, c.Status = "queue-timeout", 480
		default:
			wait := time.Duration(15*(i%10)+i/10) * time.Second
			c.OfferedAt = c.QueuedAt.Add(time.Second)
			c.SessionStart = c.QueuedAt.Add(wait)
			c.EndReason = "bye"
		}
		cs = append(cs, c)
	}
	return append(cs,
		// Queued a second before the month: October's.
		store.Call{CallID: "oct", Direction: store.CallOutbound, QueuedAt: start.Add(-time.Second), SessionStart: start.Add(time.Hour)},
		// Queued at the first instant of December.
		store.Call{CallID: "dec", Direction: store.CallOutbound, QueuedAt: start.AddDate(0, 1, 0), SessionStart: start.AddDate(0, 1, 0)},
		// A point-to-point call is not a relay call.
		store.Call{CallID: "p2p", StartedAt: start.Add(time.Hour), AnsweredAt: start.Add(time.Hour)},
	)
}

// Want is the report on Calls, worked out by hand from their rules:
//   - offered 100: 4 emergency (i = 0, 25, 50, 75), 48 inbound (the 50
//     odd i but 25 and 75), 48 outbound;
//   - abandoned 10 (i%10 == 9), queue timeouts 5 (i = 4, 24, 44, 64, 84),
//     answered 85;
//   - with k = i%10 and j = i/10 the wait is 15k + j s. Within 120 s:
//     every answered k <= 7 (at most 114 s: 40 calls for k = 0..3, 5 for
//     k = 4 with j odd, 30 for k = 5..7) and k = 8 only with j = 0 (120 s):
//     76, so 76% of offered, short of 80%;
//   - mean: for k in {0,1,2,3,5,6,7,8} sum_j (15k + j) = 150k + 45, which
//     adds up to 150*32 + 8*45 = 5160; k = 4, j odd: 5*60 + 25 = 325;
//     5485 / 85 = 64.529... = 64.53 s;
//   - p95 by nearest rank: the ceil(0.95 * 85) = 81st smallest of 85, the
//     5th largest: the largest are k = 8's 129, 128, 127, 126, 125: 125 s.
var Want = soa.Report{
	Month: Month, Offered: 100, Answered: 85, AnsweredWithin: 76, PercentWithin: 76, MeetsStandard: false,
	MeanWait: 64.53, P95Wait: 125, Abandoned: 10, QueueTimeouts: 5,
	ByDirection: map[string]int{store.CallEmergency: 4, store.CallInbound: 48, store.CallOutbound: 48},
}
