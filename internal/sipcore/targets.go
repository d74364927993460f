package sipcore

import (
	"maps"
	"slices"
	"time"

	"github.com/z5vrs/z5/internal/store"
)

// Target selection: where an INVITE for a number forks. Bindings on this
// node are reached over their own flows; devices registered on another
// node (the shared location table says which) are reached through it.

// FreshRegistration is how recent a registration must be to outweigh the
// membership table: a node that took a REGISTER moments ago is alive even
// if our copy of the table (read every heartbeat) has not seen it yet, as
// right after both nodes start. A wrong guess costs a connect attempt,
// which then drops the registrations as stale.
const FreshRegistration = 10 * time.Second

// LocalTargets are the bindings an INVITE forks to on this node: every
// live binding of the callee (bindings, most recent first) except those on
// the caller's own flow, so a call never goes back to the calling device.
// It returns their indexes.
func LocalTargets(bindings []Binding, callerFlowID string) []int {
	var out []int
	for i, b := range bindings {
		if b.FlowID != callerFlowID {
			out = append(out, i)
		}
	}
	return out
}

// PeerTarget is another node the callee is registered on, with its rows
// of the location table.
type PeerTarget struct {
	Node          string
	Registrations []store.Registration
	// Down: membership counts the node as dead and none of its rows is
	// fresh; the call is not forwarded there.
	Down bool
}

// PeerTargets groups the callee's location-table rows (regs) by node, in
// node name order: only nodes that are peers, only devices not bound here
// (local), each node marked Down when alive says it is not and none of its
// rows is fresh. alive nil: every peer counts as alive.
func PeerTargets(regs []store.Registration, isPeer func(node string) bool, local []Binding, alive func(node string) bool, now time.Time) []PeerTarget {
	here := map[int64]bool{}
	for _, b := range local {
		here[b.DeviceID] = true
	}
	byNode := map[string][]store.Registration{}
	for _, r := range regs {
		if isPeer(r.Node) && !here[r.DeviceID] {
			byNode[r.Node] = append(byNode[r.Node], r)
		}
	}
	var out []PeerTarget
	for _, node := range slices.Sorted(maps.Keys(byNode)) {
		rs := byNode[node]
		down := alive != nil && !alive(node) && !slices.ContainsFunc(rs, func(r store.Registration) bool {
			return now.Sub(r.UpdatedAt) < FreshRegistration
		})
		out = append(out, PeerTarget{Node: node, Registrations: rs, Down: down})
	}
	return out
}
