package sipserver

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestFlowEntriesKeepsOrder: whatever the removals, a flow's bindings are
// those of a plain slice with the same appends and deletions, in the same
// order, through compactions.
func TestFlowEntriesKeepsOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var f flowEntries
	var want []*entry
	got := func() []*entry {
		var out []*entry
		for _, e := range f.l {
			if e != nil {
				out = append(out, e)
			}
		}
		return out
	}
	for step := range 5000 {
		if len(want) == 0 || rng.IntN(3) > 0 {
			e := &entry{}
			f.add(e)
			want = append(want, e)
		} else {
			e := want[rng.IntN(len(want))]
			if !f.del(e) {
				t.Fatalf("step %d: del of a present entry reported false", step)
			}
			want = slices.DeleteFunc(want, func(x *entry) bool { return x == e })
		}
		if g := got(); !slices.Equal(g, want) || f.live != len(want) || f.firstOrNil() != firstOf(want) {
			t.Fatalf("step %d: %d live, %d listed; want %d in order", step, f.live, len(g), len(want))
		}
		if len(f.l) > 2*f.live+8 {
			t.Fatalf("step %d: %d slots for %d bindings, not compacted", step, len(f.l), f.live)
		}
	}
	// An entry that is not on the flow (removed already) is refused.
	e := want[0]
	f.del(e)
	if f.del(e) {
		t.Error("a second del of the same entry reported true")
	}
}

func firstOf(l []*entry) *entry {
	if len(l) == 0 {
		return nil
	}
	return l[0]
}
