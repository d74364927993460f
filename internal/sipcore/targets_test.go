package sipcore

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/z5vrs/z5/internal/store"
)

func TestLocalTargets(t *testing.T) {
	bs := []Binding{
		bound("<sip:5552340001@198.18.0.9;transport=tcp>", "x", 1, "TCP/2"),
		bound("<sip:5552340001@198.18.0.7;transport=tcp>", "x", 1, "TCP/1"),
		bound("<sip:5552340001@198.18.0.8;transport=tcp>", "x", 1, "TCP/3"),
	}
	for _, tc := range []struct {
		caller string
		want   []int
	}{
		{"TCP/1", []int{0, 2}}, // not back to the calling device
		{"TCP/9", []int{0, 1, 2}},
	} {
		if diff := cmp.Diff(tc.want, LocalTargets(bs, tc.caller)); diff != "" {
			t.Errorf("caller on %s (-want +got)\n%s", tc.caller, diff)
		}
	}
	if got := LocalTargets(nil, "TCP/1"); got != nil {
		t.Errorf("no bindings: %v", got)
	}
}

func TestPeerTargets(t *testing.T) {
	reg := func(node string, device int64, age time.Duration) store.Registration {
		return store.Registration{Number: "5552340002", DeviceID: device, Node: node, FlowID: "TCP/x", UpdatedAt: t0.Add(-age)}
	}
	peers := map[string]bool{"b": true, "c": true}
	isPeer := func(n string) bool { return peers[n] }
	local := []Binding{{DeviceID: 1}}
	regs := []store.Registration{
		reg("c", 4, time.Minute),
		reg("a", 1, time.Minute), // this node's own row
		reg("b", 1, time.Minute), // a device bound here too
		reg("b", 2, time.Minute),
		reg("x", 5, time.Minute), // not a peer
		reg("b", 3, time.Hour),
	}
	summary := func(ts []PeerTarget) []string {
		var out []string
		for _, p := range ts {
			s := p.Node
			for _, r := range p.Registrations {
				s += " " + string(rune('0'+r.DeviceID))
			}
			if p.Down {
				s += " down"
			}
			out = append(out, s)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		regs  []store.Registration
		alive func(string) bool
		want  []string
	}{
		{"every peer alive", regs, nil, []string{"b 2 3", "c 4"}},
		{"c down", regs, func(n string) bool { return n != "c" }, []string{"b 2 3", "c 4 down"}},
		{"c down but freshly registered", append(regs, reg("c", 6, 5*time.Second)), func(n string) bool { return n != "c" }, []string{"b 2 3", "c 4 6"}},
		{"nothing elsewhere", []store.Registration{reg("a", 1, 0)}, nil, nil},
	} {
		got := summary(PeerTargets(tc.regs, isPeer, local, tc.alive, t0))
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got)\n%s", tc.name, diff)
		}
	}
}
