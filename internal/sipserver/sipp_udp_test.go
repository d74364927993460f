package sipserver

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/store"
)

// Standard SIP devices over UDP still register and call through the
// relay with the defences against UDP amplification in place: challenges
// answered statelessly, nonces bound to the source ip:port, the ACK of a
// stateless 407 finding no transaction.
func TestSIPpOverUDP(t *testing.T) {
	sippPath(t)
	e := newEnv(t, nil)
	e.provision(alice, store.DeviceSIP, "alice", "secret-a")
	e.provision(bob, store.DeviceSIP, "bob", "secret-b")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	// Later options win: UDP on a free UDP port.
	udp := func() []string { return []string{"-t", "u1", "-p", strconv.Itoa(freePort(t, "udp"))} }

	reg := sipp(ctx, t, e, append(udp(), "-sf", scenario(t, e, "register.xml", ""), "-s", alice, "-au", "alice", "-ap", "secret-a")...)
	if out, err := reg.CombinedOutput(); err != nil {
		t.Fatalf("sipp register over UDP: %v\n%s\n%s", err, sippErrors(reg), tail(out))
	}
	// (register.xml registers, then unregisters.)
	if n := metricValue(e, "z5_sip_responses_total", "code", "200"); n < 2 {
		t.Fatalf("%v 200 OK sent, want one per REGISTER", n)
	}

	sippCall(t, e, " over UDP", "3000", udp)
}
