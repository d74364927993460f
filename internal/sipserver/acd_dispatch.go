package sipserver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/acd"
	"github.com/z5vrs/z5/internal/promset"
)

// The dispatcher: one per node. On every event that may change a pairing
// (a call queued or released, an interpreter ready: wakeDispatcher) and on
// a short tick (events on other nodes: interpreters signing in there,
// wrap-ups running out), it reads the shared queue and agents, pairs them
// (acd.Pair over the whole queue, so every node sees one order), claims in
// the store the offers of the calls this node holds, and hands each
// claim to its call. It also tells every waiting caller its position.

// dispatchTick bounds how late a change on another node is noticed.
const dispatchTick = 500 * time.Millisecond

// acdQueue are the first legs this node holds in the queue, by Call-ID.
type acdQueue struct {
	wake chan struct{}
	// pass is held by each dispatch pass, so a change of several agents
	// made under it is seen whole.
	pass sync.Mutex

	mu   sync.Mutex // guards byID and requeues
	byID map[string]*call
	// requeues are the re-queue tokens handed to callers whose
	// interpreter vanished mid-call, by token; each used once, or
	// dropped once expired.
	requeues map[string]acd.Requeue
}

func newACDQueue() *acdQueue {
	return &acdQueue{wake: make(chan struct{}, 1), byID: map[string]*call{}, requeues: map[string]acd.Requeue{}}
}

// keepRequeue stores r, dropping the expired ones (so the map holds only
// the tokens of the last window's lost calls).
func (q *acdQueue) keepRequeue(r acd.Requeue, now time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for k, v := range q.requeues {
		if !now.Before(v.Expires) {
			delete(q.requeues, k)
		}
	}
	q.requeues[r.Token] = r
}

// takeRequeue uses token once: the call it continues, when acd.RequeueGrant
// allows user's call of this direction to take the front of the queue.
func (q *acdQueue) takeRequeue(token, user, direction string, now time.Time) (acd.Requeue, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	r, found := q.requeues[token]
	if !acd.RequeueGrant(r, found, token, user, direction, now) {
		return acd.Requeue{}, false
	}
	delete(q.requeues, token)
	return r, true
}

func (q *acdQueue) add(c *call) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.byID[c.id] = c
}

func (q *acdQueue) remove(c *call) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.byID[c.id] == c {
		delete(q.byID, c.id)
	}
}

func (q *acdQueue) get(id string) *call {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.byID[id]
}

// wakeDispatcher asks for a dispatch pass soon.
func (s *Server) wakeDispatcher() {
	select {
	case s.acdq.wake <- struct{}{}:
	default:
	}
}

// WakeACD asks the dispatcher for a pass: an interpreter's state changed
// (the MCS API calls it).
func (s *Server) WakeACD() { s.wakeDispatcher() }

// acdMetrics are the interpreter center's series.
type acdMetrics struct {
	depth         prometheus.Gauge
	interpreters  *prometheus.GaugeVec
	wait          prometheus.Histogram
	abandoned     prometheus.Counter
	trunkFailures *prometheus.CounterVec
}

func newACDMetrics(reg prometheus.Registerer) (*acdMetrics, error) {
	set := promset.New("z5", "acd")
	tr := promset.New("z5", "trunk")
	m := &acdMetrics{
		depth:     set.Gauge("queue_depth", "Relay calls waiting for an interpreter (every node's)."),
		abandoned: set.Counter("abandoned_total", "Relay calls whose caller hung up while queued on this node."),
		interpreters: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "z5", Subsystem: "acd", Name: "interpreters",
			Help: "Interpreters by state (every node's)."}, []string{"state"}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "z5", Subsystem: "acd", Name: "wait_seconds",
			Help:    "Time from queued to answered by an interpreter, of calls answered on this node.",
			Buckets: []float64{1, 5, 10, 20, 30, 60, 120, 300, 600}}),
		trunkFailures: tr.CounterVec("failures_total", "Legs to the voice trunk that failed, by reason.", "reason"),
	}
	if err := set.Register(reg); err != nil {
		return nil, fmt.Errorf("acd metrics: %w", err)
	}
	if err := tr.Register(reg); err != nil {
		return nil, fmt.Errorf("trunk metrics: %w", err)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.interpreters, m.wait} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("acd metrics: %w", err)
			}
		}
	}
	return m, nil
}

// dispatchACD runs the dispatcher until the server closes.
func (s *Server) dispatchACD() {
	tick := time.NewTicker(dispatchTick)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.acdq.wake:
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		if err := s.dispatchOnce(ctx); err != nil && s.ctx.Err() == nil {
			s.log.Warn("dispatch pass failed", "error", err)
		}
		cancel()
	}
}

// staleOffer is how long past its ring timeout an agent may stay offered
// before the dispatcher frees it (the node offering the call is gone).
func (s *Server) staleOffer() time.Duration { return 2*s.cfg.ACD.RingTimeout + 10*time.Second }

// dispatchOnce is one pass.
func (s *Server) dispatchOnce(ctx context.Context) error {
	s.acdq.pass.Lock()
	defer s.acdq.pass.Unlock()
	now := s.now()
	agents, err := s.store.Agents(ctx)
	if err != nil {
		return err
	}
	if len(acd.WrapUpDone(agents, s.cfg.ACD.WrapUp, now)) > 0 {
		// A write only when there is one to make: the pass runs twice a
		// second on every node.
		if _, err := s.store.FinishWrapUp(ctx, now.Add(-s.cfg.ACD.WrapUp), now); err != nil {
			return err
		}
		if agents, err = s.store.Agents(ctx); err != nil {
			return err
		}
	}
	q, err := s.store.Queue(ctx)
	if err != nil {
		return err
	}
	s.acdm.depth.Set(float64(len(q)))
	for st, n := range acd.Counts(agents) {
		s.acdm.interpreters.WithLabelValues(st).Set(float64(n))
	}
	queued := map[string]bool{}
	for _, e := range q {
		queued[e.CallID] = true
	}
	for _, a := range agents {
		// An offer whose node vanished would hold the interpreter forever.
		if a.State == acd.Offered && (!queued[a.CallID] || now.Sub(a.Since) > s.staleOffer()) && now.Sub(a.Since) > s.cfg.ACD.RingTimeout {
			if _, err := s.store.SetAgentState(ctx, a.CAID, acd.Ready, "", now); err != nil {
				return err
			}
			s.log.Info("stale offer cleared", "ca_id", a.CAID, "call_id", a.CallID)
		}
	}
	for id, pos := range acd.Positions(q) {
		if c := s.acdq.get(id); c != nil {
			select { // latest position only
			case <-c.relay.positions:
			default:
			}
			c.relay.positions <- pos
		}
	}
	for _, e := range q {
		// A call this node queued but no longer holds (the node
		// restarted) is dropped; its caller's transaction is gone.
		if e.Node == s.cfg.Node && s.acdq.get(e.CallID) == nil && now.Sub(e.QueuedAt) > 5*time.Second {
			if err := s.store.Dequeue(ctx, e.CallID); err != nil {
				return err
			}
		}
	}
	for _, o := range acd.Pair(q, agents) {
		if o.Node != s.cfg.Node {
			continue
		}
		c := s.acdq.get(o.CallID)
		if c == nil {
			continue
		}
		ids, err := s.store.ClaimOffer(ctx, o.CallID, o.CAIDs, now)
		if errors.Is(err, acd.ErrTaken) {
			continue
		} else if err != nil {
			return err
		}
		select {
		case c.relay.offers <- ids:
		default: // never: a call is offered one claim at a time
			for _, id := range ids {
				s.release(c, id, acd.Ready)
			}
		}
	}
	return nil
}

// release ends one agent's offer of c, the agent going to state.
func (s *Server) release(c *call, caID, state string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.store.ReleaseOffer(ctx, c.id, caID, state, s.now()); err != nil {
		s.log.Error("offer not released", "call_id", c.id, "ca_id", caID, "error", err)
	}
}
