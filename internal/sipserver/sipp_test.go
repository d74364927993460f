package sipserver

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/store"
)

// SIPp (Debian sip-tester) against the server, over TCP with one
// connection per SIPp process (-t t1), each run bounded in calls (-m) and
// time (-timeout). SIPp 3.6 computes only MD5 digests and takes the first
// challenge, so the server offers MD5 alone here.

func sippPath(t *testing.T) string {
	p, err := exec.LookPath("sipp")
	if err != nil {
		t.Skip("SIPp not installed (Debian package sip-tester): SIPp tests skipped")
	}
	return p
}

// freePort returns a port that was free on loopback for network a moment
// ago (SIPp needs fixed local ports on its command line).
func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		for i := 0; i < 50; i++ {
			c, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			p := c.LocalAddr().(*net.UDPAddr).Port
			c.Close()
			// SIPp's media uses the port and the ones after it.
			if p%2 == 0 && p < 65000 {
				if c2, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p+2)); err == nil {
					c2.Close()
					return p
				}
			}
		}
		t.Fatal("no free UDP port pair")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// scenario writes a testdata scenario with its placeholders filled in.
func scenario(t *testing.T, e *env, name, rtpFile string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	portRE := strconv.Itoa(e.ports.Min/100) + "[0-9][0-9]" // relayPorts: 100 ports from a multiple of 100
	b = bytes.ReplaceAll(b, []byte("@RELAY_PORT_RE@"), []byte(portRE))
	b = bytes.ReplaceAll(b, []byte("@RTP_FILE@"), []byte(rtpFile))
	out := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// sipp runs SIPp with a bounded call count and time.
func sipp(ctx context.Context, t *testing.T, e *env, args ...string) *exec.Cmd {
	dir := t.TempDir()
	base := []string{e.addr.String(), "-t", "t1", "-i", "127.0.0.1", "-mi", "127.0.0.1",
		"-p", strconv.Itoa(freePort(t, "tcp")), "-mp", strconv.Itoa(freePort(t, "udp")),
		"-m", "1", "-timeout", "20s", "-timeout_error", "-nostdin", "-max_recv_loops", "100",
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
		"-set", "domain", testDomain}
	cmd := exec.CommandContext(ctx, sippPath(t), append(base, args...)...)
	cmd.Dir = dir
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

func sippErrors(cmd *exec.Cmd) string {
	b, _ := os.ReadFile(filepath.Join(cmd.Dir, "errors.log"))
	return string(b)
}

func TestSIPpRegister(t *testing.T) {
	sippPath(t)
	e := newEnv(t, nil) // default algorithms: kind "sip" devices are offered MD5 first
	e.provision(alice, store.DeviceSIP, "alice", "secret-a")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := sipp(ctx, t, e, "-sf", scenario(t, e, "register.xml", ""), "-s", alice, "-au", "alice", "-ap", "secret-a")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sipp register: %v\n%s\n%s", err, sippErrors(cmd), tail(out))
	}
	// And a wrong password fails.
	cmd = sipp(ctx, t, e, "-sf", scenario(t, e, "register.xml", ""), "-s", alice, "-au", "alice", "-ap", "wrong", "-timeout", "3s")
	if err := cmd.Run(); err == nil {
		t.Fatal("sipp registered with a wrong password")
	}
}

func TestSIPpCallThroughRelay(t *testing.T) {
	sippPath(t)
	e := newEnv(t, nil) // default algorithms: kind "sip" devices are offered MD5 first
	e.provision(alice, store.DeviceSIP, "alice", "secret-a")
	e.provision(bob, store.DeviceSIP, "bob", "secret-b")
	rec := sippCall(t, e, "", "4000", nil)
	legs := map[string]uint64{}
	for _, s := range rec.MediaStats {
		legs[s.Leg] += s.Packets
	}
	if legs["caller"] == 0 || legs["callee"] == 0 {
		t.Fatalf("RTP did not flow through the relay both ways: %+v", rec.MediaStats)
	}
}

// sippCall has a SIPp callee (bob, answering after calleeWait ms) register
// with e and a SIPp caller (alice) call it, each sending one second of
// PCMU silence. transport gives each SIPp its first options (nil: TCP),
// over names the transport in failures. The one call record must say
// answered and ended by BYE; it is returned.
func sippCall(t *testing.T, e *env, over, calleeWait string, transport func() []string) store.Call {
	t.Helper()
	if transport == nil {
		transport = func() []string { return nil }
	}
	rtpFile := filepath.Join(t.TempDir(), "silence.ulaw")
	if err := os.WriteFile(rtpFile, bytes.Repeat([]byte{0xff}, 8000), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()

	uas := sipp(ctx, t, e, append(transport(), "-sf", scenario(t, e, "uas_register.xml", rtpFile), "-oocsf", scenario(t, e, "uas.xml", rtpFile),
		"-s", bob, "-au", "bob", "-ap", "secret-b", "-set", "wait", calleeWait)...)
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
	for deadline := time.Now().Add(5 * time.Second); len(e.srv.reg.lookup(bob)) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			cancel()
			<-uasDone
			uasDone <- nil
			t.Fatalf("SIPp callee did not register%s\n%s\n%s", over, sippErrors(uas), tail(uasOut.Bytes()))
		}
	}
	if n := len(e.srv.reg.lookup(bob)); n != 1 {
		t.Fatalf("SIPp callee has %d bindings%s, want 1", n, over)
	}

	uac := sipp(ctx, t, e, append(transport(), "-sf", scenario(t, e, "uac.xml", rtpFile), "-s", alice, "-au", "alice", "-ap", "secret-a",
		"-set", "callee", bob)...)
	if out, err := uac.CombinedOutput(); err != nil {
		t.Fatalf("sipp caller%s: %v\n%s\n%s", over, err, sippErrors(uac), tail(out))
	}
	select {
	case err := <-uasDone:
		uasDone <- err
		if err != nil {
			t.Fatalf("sipp callee%s: %v\n%s\n%s", over, err, sippErrors(uas), tail(uasOut.Bytes()))
		}
	case <-ctx.Done():
		t.Fatal("sipp callee did not finish")
	}

	calls, err := e.st.ListCalls(context.Background(), store.CallFilter{Number: bob})
	if err != nil || len(calls) != 1 || calls[0].EndReason != endBye || calls[0].AnsweredAt.IsZero() {
		t.Fatalf("call records%s: %+v %v", over, calls, err)
	}
	return calls[0]
}

func tail(b []byte) string {
	s := string(b)
	if len(s) > 3000 {
		s = "..." + s[len(s)-3000:]
	}
	return strings.TrimSpace(s)
}
