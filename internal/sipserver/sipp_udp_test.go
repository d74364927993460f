package sipserver

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
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
	rtpFile := filepath.Join(t.TempDir(), "silence.ulaw")
	if err := os.WriteFile(rtpFile, bytes.Repeat([]byte{0xff}, 8000), 0o644); err != nil {
		t.Fatal(err)
	}
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

	uas := sipp(ctx, t, e, append(udp(), "-sf", scenario(t, e, "uas_register.xml", rtpFile), "-oocsf", scenario(t, e, "uas.xml", rtpFile),
		"-s", bob, "-au", "bob", "-ap", "secret-b", "-set", "wait", "3000")...)
	var uasOut bytes.Buffer
	uas.Stdout, uas.Stderr = &uasOut, &uasOut
	if err := uas.Start(); err != nil {
		t.Fatal(err)
	}
	uasDone := make(chan error, 1)
	go func() { uasDone <- uas.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-uasDone
	})
	waitFor(t, "the SIPp callee registered over UDP", func() bool { return len(e.srv.reg.lookup(bob)) == 1 })

	uac := sipp(ctx, t, e, append(udp(), "-sf", scenario(t, e, "uac.xml", rtpFile), "-s", alice, "-au", "alice", "-ap", "secret-a",
		"-set", "callee", bob)...)
	if out, err := uac.CombinedOutput(); err != nil {
		t.Fatalf("sipp caller over UDP: %v\n%s\n%s", err, sippErrors(uac), tail(out))
	}
	select {
	case err := <-uasDone:
		uasDone <- err
		if err != nil {
			t.Fatalf("sipp callee over UDP: %v\n%s\n%s", err, sippErrors(uas), tail(uasOut.Bytes()))
		}
	case <-ctx.Done():
		t.Fatal("sipp callee did not finish")
	}
	calls, err := e.st.ListCalls(context.Background(), store.CallFilter{Number: bob})
	if err != nil || len(calls) != 1 || calls[0].EndReason != endBye || calls[0].AnsweredAt.IsZero() {
		t.Fatalf("call records: %+v %v", calls, err)
	}
}
