package sipserver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/siptest"
	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/testenv"
)

// A call between two baresip instances (Debian baresip-core) over TCP
// through the MCS, audio from baresip's ausine generator, no sound card.
//
// baresip will not use a loopback address as its own, and the test must
// not use the host's real interfaces, so it runs in a network namespace of
// its own (root only) with a veth pair carrying 198.18.0.1/24 (RFC 2544
// benchmarking range). The MCS itself stays on 127.0.0.1.
//
// baresip 1.0 (libre 1.1) computes only MD5 digests and gives up on the
// first challenge it cannot answer, so the server offers MD5 alone here.
func TestBaresipCall(t *testing.T) {
	if os.Getenv("Z5_BARESIP_NETNS") == "1" {
		runBaresipCall(t)
		return
	}
	if _, err := exec.LookPath("baresip"); err != nil {
		t.Skip("baresip not installed (Debian package baresip-core): baresip test skipped")
	}
	reexecInNetns(t, "TestBaresipCall", "Z5_BARESIP_NETNS",
		"ip link add v0 type veth peer name v1 && ip addr add 198.18.0.1/24 dev v0 && ip link set v0 up && ip link set v1 up")
}

// reexecInNetns runs the named test again inside `unshare --net` with lo
// up, after setup (shell), with envVar=1 set; it skips when not root.
func reexecInNetns(t *testing.T, test, envVar, setup string) {
	t.Helper()
	testenv.NeedNetns(t)
	script := "ip link set lo up"
	if setup != "" {
		script += " && " + setup
	}
	testenv.ReexecInNetns(t, "^"+test+"$", envVar, script, 3*time.Minute)
}

// baresipConfig writes a headless baresip config and account for number
// registering with e, and returns its directory.
func baresipConfig(t *testing.T, e *env, name, number, user, pass string, rtpLo int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	err := siptest.Baresip{Name: name, Listen: fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp")), RTPPorts: rtpLo,
		AOR: "sip:" + number + "@" + testDomain, User: user, Pass: pass, Outbound: e.addr.String()}.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func runBaresipCall(t *testing.T) {
	e := newEnv(t, nil) // default algorithms: kind "sip" devices are offered MD5 first
	e.provision(alice, store.DeviceSIP, "alice", "secret-a")
	e.provision(bob, store.DeviceSIP, "bob", "secret-b")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Bob answers automatically and quits after 12s.
	bobCmd := exec.CommandContext(ctx, "baresip", "-f", baresipConfig(t, e, "bob", bob, "bob", "secret-b", 41000), "-t", "12")
	bobOut, err := os.Create(filepath.Join(t.TempDir(), "bob.log"))
	if err != nil {
		t.Fatal(err)
	}
	bobCmd.Stdout, bobCmd.Stderr = bobOut, bobOut
	bobCmd.WaitDelay = 2 * time.Second
	if err := bobCmd.Start(); err != nil {
		t.Fatal(err)
	}
	bobDone := make(chan error, 1)
	go func() { bobDone <- bobCmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-bobDone
	})
	waitFor(t, "bob's baresip registered", func() bool { return len(e.srv.reg.lookup(bob)) == 1 })

	// Alice dials at once and quits (hanging up) after 6s.
	aliceCmd := exec.CommandContext(ctx, "baresip", "-f", baresipConfig(t, e, "alice", alice, "alice", "secret-a", 41100),
		"-t", "6", "-e", "/dial sip:"+bob+"@"+testDomain)
	aliceCmd.WaitDelay = 2 * time.Second
	aliceOut, err := aliceCmd.CombinedOutput()
	bobLog, _ := os.ReadFile(bobOut.Name())
	if err != nil {
		t.Fatalf("alice's baresip: %v\n%s", err, tail(aliceOut))
	}

	var rec store.Call
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		calls, _ := e.st.ListCalls(context.Background(), store.CallFilter{Number: bob})
		if len(calls) == 1 && !calls[0].EndedAt.IsZero() {
			rec = calls[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ended call record: %+v\nalice:\n%s\nbob:\n%s", calls, tail(aliceOut), tail(bobLog))
		}
	}
	legs := map[string]uint64{}
	for _, s := range rec.MediaStats {
		legs[s.Leg] += s.Packets
	}
	if rec.AnsweredAt.IsZero() || rec.EndReason != endBye || legs["caller"] == 0 || legs["callee"] == 0 {
		t.Fatalf("call record %+v\nalice:\n%s\nbob:\n%s", rec, tail(aliceOut), tail(bobLog))
	}
	t.Logf("baresip call: %s, caller leg %d packets, callee leg %d packets", rec.EndedAt.Sub(rec.AnsweredAt).Round(time.Millisecond), legs["caller"], legs["callee"])
}
