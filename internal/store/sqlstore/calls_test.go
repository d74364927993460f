package sqlstore

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/z5vrs/z5/internal/store"
)

func TestLostEnd(t *testing.T) {
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	for _, tt := range []struct {
		name      string
		rec       store.Call
		lastKnown time.Time
		want      store.Call
	}{{
		name:      "answered before the last heartbeat: ends then",
		rec:       store.Call{StartedAt: at(0), AnsweredAt: at(2), Status: 200},
		lastKnown: at(60),
		want:      store.Call{StartedAt: at(0), AnsweredAt: at(2), Status: 200, EndedAt: at(60), EndReason: "node-lost"},
	}, {
		name:      "answered after it: ends at the answer, nothing billed",
		rec:       store.Call{StartedAt: at(0), AnsweredAt: at(61), Status: 200},
		lastKnown: at(60),
		want:      store.Call{StartedAt: at(0), AnsweredAt: at(61), Status: 200, EndedAt: at(61), EndReason: "node-lost"},
	}, {
		name:      "ringing: status kept",
		rec:       store.Call{StartedAt: at(0), Status: 180},
		lastKnown: at(60),
		want:      store.Call{StartedAt: at(0), Status: 180, EndedAt: at(60), EndReason: "node-lost"},
	}, {
		name: "no heartbeat known: ends at its start",
		rec:  store.Call{StartedAt: at(0)},
		want: store.Call{StartedAt: at(0), EndedAt: at(0), EndReason: "node-lost"},
	}, {
		name: "relay call in conversation: session and conversation end too",
		rec: store.Call{StartedAt: at(0), AnsweredAt: at(5), Direction: store.CallOutbound, QueuedAt: at(0),
			SessionStart: at(5), ConversationStart: at(20)},
		lastKnown: at(60),
		want: store.Call{StartedAt: at(0), AnsweredAt: at(5), Direction: store.CallOutbound, QueuedAt: at(0),
			SessionStart: at(5), SessionEnd: at(60), ConversationStart: at(20), ConversationEnd: at(60), EndedAt: at(60), EndReason: "node-lost"},
	}, {
		name: "conversation begun after the last heartbeat: none billed",
		rec: store.Call{StartedAt: at(0), AnsweredAt: at(5), Direction: store.CallInbound,
			SessionStart: at(5), ConversationStart: at(61)},
		lastKnown: at(60),
		want: store.Call{StartedAt: at(0), AnsweredAt: at(5), Direction: store.CallInbound,
			SessionStart: at(5), SessionEnd: at(61), ConversationStart: at(61), ConversationEnd: at(61), EndedAt: at(61), EndReason: "node-lost"},
	}, {
		name: "conversation ended by the second leg's node: kept",
		rec: store.Call{StartedAt: at(0), AnsweredAt: at(5), Direction: store.CallOutbound,
			SessionStart: at(5), ConversationStart: at(20), ConversationEnd: at(30)},
		lastKnown: at(60),
		want: store.Call{StartedAt: at(0), AnsweredAt: at(5), Direction: store.CallOutbound,
			SessionStart: at(5), SessionEnd: at(60), ConversationStart: at(20), ConversationEnd: at(30), EndedAt: at(60), EndReason: "node-lost"},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			if d := cmp.Diff(tt.want, lostEnd(tt.rec, tt.lastKnown)); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}
