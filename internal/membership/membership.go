// Package membership tracks which MCS nodes are alive. Each MCS node writes
// a heartbeat into the shared store; every node (DNS in particular) reads
// the table and treats a node as healthy while its last heartbeat is recent
// and it has not announced that it is going away. DNS then hands out only
// healthy nodes for lb.mcs and the SIP domain, so clients of a dead node
// re-resolve to the other site.
package membership

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/z5vrs/z5/internal/store"
)

// Config says who we are and how often to beat.
type Config struct {
	// Self is the local MCS node, or empty for a node without the MCS role
	// (it only reads the table).
	Self      store.NodeStatus
	Heartbeat time.Duration
	DeadAfter time.Duration
}

// Store is what membership needs of the provider's store: the node table.
type Store interface {
	Heartbeat(ctx context.Context, n store.NodeStatus) error
	Nodes(ctx context.Context) ([]store.NodeStatus, error)
}

// Deps are injected.
type Deps struct {
	Store Store
	Log   *slog.Logger
	Now   func() time.Time
}

// Membership is the node table as this process sees it.
type Membership struct {
	cfg  Config
	st   Store
	log  *slog.Logger
	now  func() time.Time
	kick chan struct{}

	mu    sync.Mutex // guards nodes and read
	nodes map[string]store.NodeStatus
	read  time.Time
}

// New validates cfg.
func New(cfg Config, deps Deps) (*Membership, error) {
	if cfg.Heartbeat <= 0 || cfg.DeadAfter < cfg.Heartbeat {
		return nil, fmt.Errorf("membership: need 0 < heartbeat (%s) <= dead_after (%s)", cfg.Heartbeat, cfg.DeadAfter)
	}
	if deps.Store == nil {
		return nil, fmt.Errorf("membership: no store")
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return &Membership{cfg: cfg, st: deps.Store, log: deps.Log, now: deps.Now, kick: make(chan struct{}, 1), nodes: map[string]store.NodeStatus{}}, nil
}

// Healthy reports whether node's last heartbeat is within DeadAfter and it
// said it was serving. Safe for concurrent use; it never blocks on I/O.
func (m *Membership) Healthy(node string) bool {
	m.mu.Lock()
	n, ok := m.nodes[node]
	m.mu.Unlock()
	return ok && Alive(n, m.now(), m.cfg.DeadAfter)
}

// Alive is the health rule, a pure function.
func Alive(n store.NodeStatus, now time.Time, deadAfter time.Duration) bool {
	return n.Healthy && now.Sub(n.LastSeen) <= deadAfter
}

// Ready reports whether the node table has been read at least once (and,
// for an MCS node, its first heartbeat written).
func (m *Membership) Ready() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.read.IsZero()
}

// Nodes is the last table read.
func (m *Membership) Nodes() []store.NodeStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]store.NodeStatus, 0, len(m.nodes))
	for _, n := range m.nodes {
		out = append(out, n)
	}
	return out
}

// Serve beats (when Self is set) and refreshes the table every Heartbeat
// until ctx ends; then it announces the node as leaving, so DNS stops
// handing it out at once rather than after DeadAfter.
func (m *Membership) Serve(ctx context.Context) error {
	t := time.NewTicker(m.cfg.Heartbeat)
	defer t.Stop()
	m.tick(ctx, true)
	for {
		select {
		case <-ctx.Done():
			if m.cfg.Self.Name != "" {
				bye := m.cfg.Self
				bye.Healthy, bye.LastSeen = false, m.now()
				bctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				if err := m.st.Heartbeat(bctx, bye); err != nil {
					m.log.Warn("leave announcement failed", "error", err)
				}
				cancel()
			}
			return nil
		case <-t.C:
			m.tick(ctx, true)
		case <-m.kick:
			m.tick(ctx, false)
		}
	}
}

// Refresh asks for an immediate re-read of the table.
func (m *Membership) Refresh() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *Membership) tick(ctx context.Context, beat bool) {
	if beat && m.cfg.Self.Name != "" {
		self := m.cfg.Self
		self.Healthy, self.LastSeen = true, m.now()
		if err := m.st.Heartbeat(ctx, self); err != nil && ctx.Err() == nil {
			m.log.Warn("heartbeat failed", "error", err)
		}
	}
	nodes, err := m.st.Nodes(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("reading node table failed", "error", err)
		}
		return
	}
	fresh := make(map[string]store.NodeStatus, len(nodes))
	for _, n := range nodes {
		fresh[n.Name] = n
	}
	m.mu.Lock()
	for name, n := range fresh {
		if old, ok := m.nodes[name]; ok && Alive(old, m.now(), m.cfg.DeadAfter) != Alive(n, m.now(), m.cfg.DeadAfter) {
			m.log.Info("node health changed", "peer_node", name, "healthy", Alive(n, m.now(), m.cfg.DeadAfter))
		}
	}
	m.nodes, m.read = fresh, m.now()
	m.mu.Unlock()
}
