package acd

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func TestPair(t *testing.T) {
	for _, tc := range []struct {
		name   string
		queue  []Entry
		agents []Agent
		want   []Offer
	}{
		{
			name:   "nobody ready",
			queue:  []Entry{{CallID: "a", QueuedAt: at(0), State: Waiting}},
			agents: []Agent{{CAID: "1", State: InCall}, {CAID: "2", State: NotReady}},
		},
		{
			name: "oldest call to the longest idle",
			queue: []Entry{
				{CallID: "late", Node: "b", QueuedAt: at(5), State: Waiting},
				{CallID: "early", Node: "a", QueuedAt: at(1), State: Waiting},
			},
			agents: []Agent{
				{CAID: "fresh", State: Ready, Since: at(3)},
				{CAID: "idle", State: Ready, Since: at(0)},
			},
			want: []Offer{{CallID: "early", Node: "a", CAIDs: []string{"idle"}}, {CallID: "late", Node: "b", CAIDs: []string{"fresh"}}},
		},
		{
			name: "one interpreter busy, three waiting, one ready: only the first is offered",
			queue: []Entry{
				{CallID: "c3", QueuedAt: at(3), State: Waiting},
				{CallID: "c1", QueuedAt: at(1), State: Waiting},
				{CallID: "c2", QueuedAt: at(2), State: Waiting},
			},
			agents: []Agent{{CAID: "busy", State: InCall, CallID: "x"}, {CAID: "r", State: Ready, Since: at(0)}},
			want:   []Offer{{CallID: "c1", CAIDs: []string{"r"}}},
		},
		{
			name: "emergency first, offered to every ready agent",
			queue: []Entry{
				{CallID: "c1", QueuedAt: at(1), State: Waiting},
				{CallID: "911", QueuedAt: at(9), State: Waiting, Priority: PriorityEmergency},
			},
			agents: []Agent{
				{CAID: "a", State: Ready, Since: at(2)},
				{CAID: "b", State: Ready, Since: at(1)},
				{CAID: "w", State: WrapUp, Since: at(0)},
			},
			want: []Offer{{CallID: "911", CAIDs: []string{"b", "a"}}},
		},
		{
			name: "a call being offered takes no second agent and keeps its turn",
			queue: []Entry{
				{CallID: "c1", QueuedAt: at(1), State: Offering},
				{CallID: "c2", QueuedAt: at(2), State: Waiting},
			},
			agents: []Agent{{CAID: "o", State: Offered, CallID: "c1"}, {CAID: "r", State: Ready, Since: at(0)}},
			want:   []Offer{{CallID: "c2", CAIDs: []string{"r"}}},
		},
		{
			name: "equal times: Call-ID and CA ID decide, the same on every node",
			queue: []Entry{
				{CallID: "y", QueuedAt: at(1), State: Waiting},
				{CallID: "x", QueuedAt: at(1), State: Waiting},
			},
			agents: []Agent{{CAID: "2", State: Ready, Since: at(0)}, {CAID: "1", State: Ready, Since: at(0)}},
			want:   []Offer{{CallID: "x", CAIDs: []string{"1"}}, {CallID: "y", CAIDs: []string{"2"}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Pair(tc.queue, tc.agents)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Pair = %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestPositions(t *testing.T) {
	q := []Entry{
		{CallID: "c3", QueuedAt: at(3), State: Waiting},
		{CallID: "c1", QueuedAt: at(1), State: Offering},
		{CallID: "c2", QueuedAt: at(2), State: Waiting},
	}
	want := map[string]int{"c1": 1, "c2": 2, "c3": 3}
	if got := Positions(q); !reflect.DeepEqual(got, want) {
		t.Errorf("Positions = %v, want %v", got, want)
	}
	q = append(q, Entry{CallID: "911", QueuedAt: at(9), Priority: PriorityEmergency, State: Waiting})
	want = map[string]int{"911": 1, "c1": 2, "c2": 3, "c3": 4}
	if got := Positions(q); !reflect.DeepEqual(got, want) {
		t.Errorf("Positions with 911 = %v, want %v", got, want)
	}
}

func TestNext(t *testing.T) {
	for _, tc := range []struct {
		st, ev string
		want   string
		act    Action
		bad    bool
	}{
		{st: NotReady, ev: EvReady, want: Ready},
		{st: Ready, ev: EvNotReady, want: NotReady},
		{st: Ready, ev: EvOffer, want: Offered},
		{st: NotReady, ev: EvOffer, want: NotReady, bad: true},
		{st: InCall, ev: EvOffer, want: InCall, bad: true},
		{st: Offered, ev: EvAnswer, want: InCall},
		{st: Ready, ev: EvAnswer, want: Ready, bad: true},
		{st: Offered, ev: EvRingTimeout, want: NotReady, act: Action{CancelOffer: true, Requeue: true}},
		{st: Offered, ev: EvReject, want: NotReady, act: Action{CancelOffer: true, Requeue: true}},
		{st: Offered, ev: EvLost, want: Ready, act: Action{CancelOffer: true}},
		{st: Offered, ev: EvNotReady, want: NotReady, act: Action{CancelOffer: true, Requeue: true}},
		{st: InCall, ev: EvNotReady, want: InCall},
		{st: InCall, ev: EvCallEnd, want: WrapUp, act: Action{StartWrapUp: true}},
		{st: Ready, ev: EvCallEnd, want: Ready, bad: true},
		{st: WrapUp, ev: EvWrapUpDone, want: Ready},
		{st: WrapUp, ev: EvReady, want: Ready},
		{st: NotReady, ev: EvWrapUpDone, want: NotReady, bad: true},
		{st: InCall, ev: EvVanished, want: NotReady, act: Action{RequeueHead: true}},
		{st: Offered, ev: EvVanished, want: NotReady, act: Action{Requeue: true}},
		{st: Ready, ev: EvVanished, want: NotReady},
		{st: Ready, ev: "nonsense", want: Ready, bad: true},
	} {
		got, act, err := Next(tc.st, tc.ev)
		if got != tc.want || act != tc.act || (err != nil) != tc.bad {
			t.Errorf("Next(%s, %s) = %s %+v %v; want %s %+v bad=%v", tc.st, tc.ev, got, act, err, tc.want, tc.act, tc.bad)
		}
		if tc.bad && !errors.Is(err, ErrTransition) {
			t.Errorf("Next(%s, %s) error %v, want ErrTransition", tc.st, tc.ev, err)
		}
	}
}

func TestWrapUpDoneAndCounts(t *testing.T) {
	agents := []Agent{
		{CAID: "done", State: WrapUp, Since: at(0)},
		{CAID: "exact", State: WrapUp, Since: at(5)},
		{CAID: "not yet", State: WrapUp, Since: at(6)},
		{CAID: "r", State: Ready, Since: at(0)},
	}
	if got, want := WrapUpDone(agents, 5*time.Second, at(10)), []string{"done", "exact"}; !reflect.DeepEqual(got, want) {
		t.Errorf("WrapUpDone = %v, want %v", got, want)
	}
	want := map[string]int{NotReady: 0, Ready: 1, Offered: 0, InCall: 0, WrapUp: 3}
	if got := Counts(agents); !reflect.DeepEqual(got, want) {
		t.Errorf("Counts = %v, want %v", got, want)
	}
}

func TestRequeueOrderAndGrant(t *testing.T) {
	// A re-queued caller goes ahead of everyone waiting longer, but not
	// ahead of 911.
	q := []Entry{
		{CallID: "old", QueuedAt: at(0), State: Waiting},
		{CallID: "again", QueuedAt: at(8), State: Waiting, Priority: PriorityRequeue},
		{CallID: "911", QueuedAt: at(9), State: Waiting, Priority: PriorityEmergency},
	}
	pos := Positions(q)
	if pos["911"] != 1 || pos["again"] != 2 || pos["old"] != 3 {
		t.Errorf("Positions = %v, want 911 1, again 2, old 3", pos)
	}
	// Only the emergency call is offered to every free agent.
	offers := Pair(q, []Agent{{CAID: "a", State: Ready, Since: at(0)}, {CAID: "b", State: Ready, Since: at(1)}})
	if len(offers) != 1 || offers[0].CallID != "911" || len(offers[0].CAIDs) != 2 {
		t.Errorf("Pair = %+v, want 911 to both", offers)
	}
	offers = Pair(q[:2], []Agent{{CAID: "a", State: Ready, Since: at(0)}})
	if len(offers) != 1 || offers[0].CallID != "again" {
		t.Errorf("Pair = %+v, want the re-queued call first", offers)
	}

	r := Requeue{Token: "tok", CallID: "c1", User: "2025550100", Direction: "outbound", Expires: at(60)}
	for _, tc := range []struct {
		name                   string
		found                  bool
		token, user, direction string
		now                    time.Time
		want                   bool
	}{
		{"kept, same user and direction, in time", true, "tok", "2025550100", "outbound", at(59), true},
		{"not kept (used or never issued)", false, "tok", "2025550100", "outbound", at(1), false},
		{"another token", true, "forged", "2025550100", "outbound", at(1), false},
		{"empty token", true, "", "2025550100", "outbound", at(1), false},
		{"another user", true, "tok", "2025550199", "outbound", at(1), false},
		{"another direction", true, "tok", "2025550100", "emergency", at(1), false},
		{"expired", true, "tok", "2025550100", "outbound", at(60), false},
	} {
		if got := RequeueGrant(r, tc.found, tc.token, tc.user, tc.direction, tc.now); got != tc.want {
			t.Errorf("%s: RequeueGrant = %v, want %v", tc.name, got, tc.want)
		}
	}
}
