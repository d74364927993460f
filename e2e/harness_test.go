// Package e2e drives the real z5d and z5 binaries: built once per run,
// started as processes on loopback, checked with standard tools (dig,
// ffprobe) and the client library, and killed by PID when a test ends.
package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/devstack"
	"github.com/z5vrs/z5/internal/testenv"
)

var (
	binDir   string
	buildErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "z5-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	args := []string{"build", "-o", dir + "/"}
	if os.Getenv("Z5_E2E_RACE") != "" {
		// The binaries themselves run with the race detector: a race makes
		// them exit 66 and print the report, which fails the test.
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "../cmd/z5d", "../cmd/z5")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("go build: %v\n%s", err, out)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func bin(t *testing.T, name string) string {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, name)
}

// loopbackIP returns a random address in 127.0.0.0/8 (all loopback on
// Linux), so each test's stack binds its own ports without colliding. Its
// last byte is 100 or more: the hardening tests' other sources
// (stack.sibling) take the bytes below, and one equal to the stack's own
// address would be the node itself, which is never banned.
func loopbackIP(t *testing.T) string {
	t.Helper()
	for range 50 {
		b := make([]byte, 3)
		rand.Read(b)
		ip := fmt.Sprintf("127.%d.%d.%d", 10+int(b[0])%200, b[1], 100+int(b[2])%150)
		l, err := net.Listen("tcp", ip+":0")
		if err == nil {
			l.Close()
			return ip
		}
	}
	t.Fatal("no usable loopback address")
	return ""
}

// freeTCP is a free TCP port on ip.
func freeTCP(t *testing.T, ip string) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return netip.MustParseAddrPort(l.Addr().String())
}

// stackConfig writes a one-node deployment config on ip with the dev
// ports, and returns its path.
func stackConfig(t *testing.T, dir, ip string, extra string) string {
	t.Helper()
	return writeConfig(t, dir, devstack.Config("Z5 e2e", dir, ip, extra))
}

// writeConfig saves a deployment config as dir/z5.toml and returns its
// path.
func writeConfig(t *testing.T, dir, cfg string) string {
	t.Helper()
	p := filepath.Join(dir, "z5.toml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// proc is a started binary whose output is kept for failure messages.
type proc struct {
	testenv.SyncBuffer // stdout and stderr
	cmd                *exec.Cmd
	done               chan struct{}
}

// Output is what the process has written so far.
func (p *proc) Output() string { return p.String() }

// start runs a binary until the test ends (SIGTERM, then SIGKILL).
func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startPath(t, bin(t, name), args, func(out string) {
		t.Logf("%s %v output:\n%s", name, args, out)
	})
}

// startPath runs path until the test ends, handing its output to onFail
// when the test failed.
func startPath(t *testing.T, path string, args []string, onFail func(out string)) *proc {
	t.Helper()
	return startCmd(t, exec.Command(path, args...), onFail)
}

// startCmd runs cmd (its stdin set, if any) until the test ends, handing
// its output to onFail when the test failed.
func startCmd(t *testing.T, cmd *exec.Cmd, onFail func(out string)) *proc {
	t.Helper()
	p := &proc{cmd: cmd, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		if t.Failed() {
			onFail(p.Output())
		}
	})
	return p
}

func (p *proc) stop(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// kill9 ends the process the hard way, as a crash would.
func (p *proc) kill9() {
	p.cmd.Process.Kill()
	<-p.done
}

// waitReady polls the node's readiness endpoint.
func waitReady(t *testing.T, p *proc, metricsAddr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("z5d exited early:\n%s", p.Output())
		default:
		}
		resp, err := http.Get("http://" + metricsAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("z5d not ready at %s:\n%s", metricsAddr, p.Output())
}

// runCmd runs a binary to completion with stdin and returns its output.
func runCmd(t *testing.T, stdin string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin(t, name), args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustRun(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	out, err := runCmd(t, stdin, name, args...)
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return out
}

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (scripts/deps.sh installs it as root)", name)
	}
	return p
}
